"""Every Redis key this project writes, built here and nowhere else.

Layout (``ns`` is the namespace, DEFAULT_NAMESPACE unless configured):

- ``ns:run:<run_id>``            HASH  ``data`` (RunRecord as JSON), ``version`` (int,
                                        +1 on every write), ``fingerprint`` (spec hash)
- ``ns:runs``                    ZSET  run_id scored by created_at (all runs; newest first)
- ``ns:idx:status:<status>``     ZSET  run_id by created_at, one per RunStatus
- ``ns:idx:name:<spec.name>``    ZSET  run_id by created_at
- ``ns:idx:tag:<sha1(k\\0v)>``    ZSET  run_id by created_at, one per tag key/value pair
- ``ns:idem:<sha256(key)>``      STRING the run_id created under an idempotency key
- ``ns:events:<run_id>``         STREAM fields ``kind``, ``ts``, ``data`` (JSON)
- ``ns:lock:<run_id>``           STRING the task id holding the run's step lease (PX ttl)
- ``ns:due``                     ZSET  task id by the time its message falls due
- ``ns:due:messages``            HASH  task id -> {step, run_id, retries} (JSON)
- ``ns:redrive:turn``            STRING (PX ttl) the worker whose turn it is to re-drive
- ``ns:retention:turn``          STRING (PX ttl) the worker whose turn it is to delete expired runs
- ``ns:stats:azure_requests``    HASH  "<operation>|<outcome>" -> count, over all workers
- ``ns:schedule:<name>``         HASH  ``definition`` (ScheduleSpec JSON), ``trigger`` (its JSON),
                                        ``next_tick`` (epoch s, '' when none left), ``last_run_id``,
                                        ``last_tick``, ``created_at``, ``updated_at``
- ``ns:schedules``               ZSET  schedule name by created_at (all schedules)
- ``ns:schedules:due``           ZSET  name by next tick (schedules not paused)
- ``ns:schedule:<name>:tick:<tick ISO>`` STRING (PX ttl) the worker firing that tick
- ``ns:schedule:<name>:history``  HASH tick ISO -> entry JSON; ``...:history:order`` ZSET by tick
- ``ns:stats:schedule_ticks``    HASH  outcome -> count; ``ns:stats:schedule_latency`` HASH
                                        histogram of tick -> enqueue seconds (bucket, sum, count)
- ``ns:sweep:<sweep_id>``         STRING the sweep's record (SweepRecord JSON)
- ``ns:sweeps``                  ZSET  sweep id by created_at (all sweeps)
- ``ns:sweeps:due``              ZSET  sweep id by its next tick (sweeps not ended)
- ``ns:sweep:<sweep_id>:poll``    STRING what the sweep's last listing saw (job states,
                                        cluster nodes, JSON), read by its trials' steps
- ``ns:sweep:<sweep_id>:slots``   SET   trial run ids holding a slot: allowed to submit their
                                        job (at most ``...:slots:limit``, max_concurrent_trials);
  ``ns:sweep:<sweep_id>:slots:queue`` ZSET run id -> trial index, trials waiting for a slot
- ``ns:sweepidem:<sha256(key)>`` STRING the sweep id created under an idempotency key
- ``ns:lock:sweep:<sweep_id>``   STRING the worker ticking the sweep (a lease, like a run's)
- ``ns:upload:<upload_id>``      STRING an upload's manifest (canonical JSON), kept while used
- ``ns:uploads``                 ZSET  upload id by its last use (commit, or a run naming it)
- ``ns:uploads:blobs``           ZSET  content digest by its last use (written, or uploaded again)
- ``ns:idx:submitter:<name>``   ZSET  run_id by created_at, per submitted_by (a key's name)
- ``ns:apikey:<sha256(key)>``    HASH  ``name``, ``scopes`` (comma-separated), ``rate`` ('' = none),
                                        ``created_at``, ``last_used_at``, ``signing_secret``,
                                        ``notify`` (default webhook, JSON or ''); the
                                        key itself is never stored, only its digest
- ``ns:apikey:name:<name>``      STRING the digest of the key named so
- ``ns:apikeys``                 ZSET  key name by created_at (all live keys)
- ``ns:audit``                   STREAM fields ``kind``, ``ts``, ``data`` (JSON): key changes
- ``ns:webhook:sent:<run_id>:<event>`` STRING the webhook id, set once when the run's
                                        ending is announced (so it is delivered once)
- ``ns:deliveries:<run_id>``     LIST  delivery attempts (JSON: id, attempt, status code,
                                        latency, error type; never a body)
- ``ns:webhook:failures:<sha256(url)>`` STRING failed deliveries in a row to that URL;
  ``ns:webhook:disabled:<sha256(url)>`` STRING set when it passed the threshold
- ``ns:ui:session:<sha256(id)>`` STRING (EX ttl) a dashboard session (JSON: caller name,
                                        key digest or '', CSRF token); never the token
- ``ns:ratelimit:...``           the ``limits`` library's moving windows, one per key name
- ``ns:test:held:<run_id>``, ``ns:test:release:<run_id>``: the test worker's hold
  (tests/support), never written by a production worker

The Celery broker's own keys (the queues ``batchai`` and ``batchai.webhooks``, kombu's
``unacked*``) are kombu's, in the same database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.domain.status import RunStatus

DEFAULT_NAMESPACE = "orch"


@dataclass(frozen=True)
class Keys:
    namespace: str = DEFAULT_NAMESPACE

    def run(self, run_id: str) -> str:
        return f"{self.namespace}:run:{run_id}"

    def events(self, run_id: str) -> str:
        return f"{self.namespace}:events:{run_id}"

    @property
    def runs(self) -> str:
        return f"{self.namespace}:runs"

    def status_index(self, status: RunStatus) -> str:
        return f"{self.namespace}:idx:status:{status.value}"

    def name_index(self, name: str) -> str:
        return f"{self.namespace}:idx:name:{name}"

    def tag_index(self, key: str, value: str) -> str:
        digest = hashlib.sha1(f"{key}\0{value}".encode(), usedforsecurity=False).hexdigest()
        return f"{self.namespace}:idx:tag:{digest}"

    def run_indexes(
        self, name: str, tags: Mapping[str, str], submitted_by: str | None = None
    ) -> list[str]:
        """Every index a run is in besides its status index: written together
        when the run is created, cleaned together when it is deleted."""
        return [
            self.runs,
            self.name_index(name),
            *(self.tag_index(k, v) for k, v in tags.items()),
            *([self.submitter_index(submitted_by)] if submitted_by else []),
        ]

    def submitter_index(self, name: str) -> str:
        return f"{self.namespace}:idx:submitter:{name}"

    def idempotency(self, key: str) -> str:
        return f"{self.namespace}:idem:{hashlib.sha256(key.encode()).hexdigest()}"

    def job_runtimes(self, name: str) -> str:
        """The last job runtimes of runs named `name` (store/runtimes.py)."""
        return f"{self.namespace}:runtimes:{name}"

    def lock(self, run_id: str) -> str:
        return f"{self.namespace}:lock:{run_id}"

    @property
    def due(self) -> str:
        return f"{self.namespace}:due"

    @property
    def due_messages(self) -> str:
        return f"{self.namespace}:due:messages"

    @property
    def redrive_turn(self) -> str:
        return f"{self.namespace}:redrive:turn"

    @property
    def retention_turn(self) -> str:
        return f"{self.namespace}:retention:turn"

    @property
    def azure_requests(self) -> str:
        return f"{self.namespace}:stats:azure_requests"

    def schedule(self, name: str) -> str:
        return f"{self.namespace}:schedule:{name}"

    @property
    def schedules(self) -> str:
        return f"{self.namespace}:schedules"

    @property
    def schedules_due(self) -> str:
        return f"{self.namespace}:schedules:due"

    def schedule_tick_claim(self, name: str, tick_iso: str) -> str:
        return f"{self.namespace}:schedule:{name}:tick:{tick_iso}"

    def schedule_history(self, name: str) -> tuple[str, str]:
        """(hash tick -> entry, zset of ticks by time)."""
        return (
            f"{self.namespace}:schedule:{name}:history",
            f"{self.namespace}:schedule:{name}:history:order",
        )

    @property
    def schedule_tick_stats(self) -> str:
        return f"{self.namespace}:stats:schedule_ticks"

    @property
    def schedule_latency_stats(self) -> str:
        return f"{self.namespace}:stats:schedule_latency"

    def sweep(self, sweep_id: str) -> str:
        return f"{self.namespace}:sweep:{sweep_id}"

    @property
    def sweeps(self) -> str:
        return f"{self.namespace}:sweeps"

    @property
    def sweeps_due(self) -> str:
        return f"{self.namespace}:sweeps:due"

    def sweep_poll(self, sweep_id: str) -> str:
        return f"{self.namespace}:sweep:{sweep_id}:poll"

    def sweep_slots(self, sweep_id: str) -> str:
        return f"{self.namespace}:sweep:{sweep_id}:slots"

    def sweep_slot_queue(self, sweep_id: str) -> str:
        return f"{self.namespace}:sweep:{sweep_id}:slots:queue"

    def sweep_slot_limit(self, sweep_id: str) -> str:
        return f"{self.namespace}:sweep:{sweep_id}:slots:limit"

    def sweep_idempotency(self, key: str) -> str:
        return f"{self.namespace}:sweepidem:{hashlib.sha256(key.encode()).hexdigest()}"

    def upload(self, upload_id: str) -> str:
        return f"{self.namespace}:upload:{upload_id}"

    @property
    def uploads(self) -> str:
        return f"{self.namespace}:uploads"

    @property
    def upload_blobs(self) -> str:
        return f"{self.namespace}:uploads:blobs"

    def api_key(self, digest: str) -> str:
        """The hash of the key whose SHA-256 hex digest is `digest`."""
        return f"{self.namespace}:apikey:{digest}"

    def api_key_name(self, name: str) -> str:
        return f"{self.namespace}:apikey:name:{name}"

    @property
    def api_keys(self) -> str:
        return f"{self.namespace}:apikeys"

    @property
    def audit(self) -> str:
        return f"{self.namespace}:audit"

    def webhook_sent(self, run_id: str, event: str) -> str:
        return f"{self.namespace}:webhook:sent:{run_id}:{event}"

    def deliveries(self, run_id: str) -> str:
        return f"{self.namespace}:deliveries:{run_id}"

    def webhook_receiver(self, url: str) -> tuple[str, str]:
        """(failures in a row, disabled flag) of the receiver at `url`."""
        digest = hashlib.sha256(url.encode()).hexdigest()
        return (
            f"{self.namespace}:webhook:failures:{digest}",
            f"{self.namespace}:webhook:disabled:{digest}",
        )

    def ui_session(self, digest: str) -> str:
        """The dashboard session whose cookie's SHA-256 hex digest is `digest`."""
        return f"{self.namespace}:ui:session:{digest}"

    @property
    def rate_limit_prefix(self) -> str:
        """The prefix of the rate limiter's keys (the limits library builds the rest)."""
        return f"{self.namespace}:ratelimit"

    def test_hold(self, run_id: str) -> tuple[str, str]:
        """(key set while a test worker holds the run, list it waits on to be released)."""
        return f"{self.namespace}:test:held:{run_id}", f"{self.namespace}:test:release:{run_id}"
