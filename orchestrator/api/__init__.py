"""The HTTP API: `create_app(settings)` builds it; `orchestrator api` serves it with uvicorn.

Routes (OpenAPI at /docs and /openapi.json):

- ``POST /v1/runs`` body ``{"spec": {...RunSpec...}, "parameters": {...}, "run_id": "..."}``
  (only ``spec`` is required; ``parameters`` are merged over ``spec.parameters``;
  inputs are ``upload:<id>``, ``share:<path>`` or a path under ORCH_INPUT_ROOTS). Optional
  header ``Idempotency-Key``: the same key and body give the same run (200), another
  body 409. Answers 202 ``{run_id, status, links: {self, events, outputs, cancel}}``.
- ``GET /v1/runs`` (``status``, ``tag=key=value``, ``name``, ``limit`` 1..200,
  ``cursor``) -> ``{items, next_cursor}``; ``GET /v1/runs/{id}`` the run record.
- ``POST /v1/runs/{id}/cancel`` 202 (a queued run ends at once, a started one is
  flagged for the chain), 409 once the run has ended.
- ``GET /v1/runs/{id}/events`` Server-Sent Events: replay after ``Last-Event-ID``,
  then live, ending after the run's terminal status event.
- ``POST /v1/uploads`` a manifest ``{files: [{path, sha256, size}]}`` ->
  ``{upload_id, committed, missing}``; ``PUT /v1/uploads/content/{sha256}`` streams one
  missing content into the file share.
- ``GET /v1/runs/{id}/outputs`` ``{run_id, files: [{path, size}]}`` and
  ``GET /v1/runs/{id}/outputs/{path}`` one recorded file, streamed from the file share.
- ``GET /healthz`` (open) 200 when Redis and the broker answer PING, else 503;
  ``GET /metrics`` Prometheus text (see orchestrator.observability.prometheus).

Everything but /healthz and the docs needs ``Authorization: Bearer <ORCH_API_TOKEN>``.
Errors are ``{"message": "<field>: <problem>", "detail": ...}``: 4xx for bad input
(422 naming the field, 413 over ORCH_API_MAX_BODY_BYTES), 503 with Retry-After
while Redis is unreachable.
"""

from orchestrator.api.app import ApiConfigError, create_app

__all__ = ["ApiConfigError", "create_app"]
