"""The run store: records, events and indexes in Redis (see keys.py for the layout).

Import from here; the modules split the store by concern, not by audience.
"""

from orchestrator.store.errors import (
    IdempotencyConflict,
    IllegalTransition,
    InvalidCursor,
    RunNotFound,
    StoreContention,
    StoreError,
)
from orchestrator.store.keys import DEFAULT_NAMESPACE, Keys
from orchestrator.store.records import (
    Ending,
    InputRecord,
    RunEvent,
    RunRecord,
    StepRecord,
    StoredOutput,
)
from orchestrator.store.runs import RunStore

__all__ = [
    "DEFAULT_NAMESPACE",
    "Ending",
    "IdempotencyConflict",
    "IllegalTransition",
    "InputRecord",
    "InvalidCursor",
    "Keys",
    "RunEvent",
    "RunNotFound",
    "RunRecord",
    "RunStore",
    "StepRecord",
    "StoreContention",
    "StoreError",
    "StoredOutput",
]
