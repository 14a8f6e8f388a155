"""batchai-orchestrator: asynchronous, idempotent Azure Batch AI training runs."""

__version__ = "0.1.0"
