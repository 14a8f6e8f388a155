"""Celery application and the thin tasks of the orchestration chain."""
