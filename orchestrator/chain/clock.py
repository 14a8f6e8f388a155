"""The chain clock: every worker runs one, beside its task pool.

Each tick it claims the due index's messages that fell due and sends them;
every `redrive_interval_seconds` one worker (whoever takes the turn, a key
with a TTL) runs the re-driver, and every RETENTION_PASS_SECONDS one worker
deletes the ended runs older than `run_retention_seconds` (store/retention.py).
Nothing here waits on Azure, and nothing depends on beat or on any single
worker: while one worker lives, waits fall due and lost steps are re-driven.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis

from orchestrator.chain.redrive import redrive
from orchestrator.chain.runner import Dispatch
from orchestrator.chain.schedules import fire_due_schedules
from orchestrator.chain.steps import StepContext
from orchestrator.domain.status import Step
from orchestrator.observability.logs import get_logger

SendNow = Callable[[Dispatch], None]
# Sends the task of one sweep's tick (batchai.sweep_tick).
SendSweepTick = Callable[[str], None]
# How often due messages are looked for: the lateness of a wait at worst.
TICK_SECONDS = 0.25
REDIS_DOWN_PAUSE_SECONDS = 2.0
# The next re-drive pass (by any worker) waits at least this many times as long
# as the last one took.
REDRIVE_SPACING = 5.0
# How often expired runs are looked for (one worker per interval), and how many
# one pass deletes at most: a backlog (a retention just shortened) drains over
# several passes instead of holding up one tick.
RETENTION_PASS_SECONDS = 60.0
RETENTION_BATCH = 500


def deliver(ctx: StepContext, dispatch: Dispatch, send_now: SendNow) -> None:
    """Send `dispatch` now, or put it in the due index when it has a countdown."""
    if dispatch.countdown <= 0:
        send_now(dispatch)
        return
    message = {
        "step": dispatch.step.value,
        "run_id": dispatch.run_id,
        "task_id": dispatch.task_id,
        "retries": dispatch.retries,
    }
    ctx.store.due.schedule(dispatch.task_id, message, ctx.clock() + dispatch.countdown)


def send_due(ctx: StepContext, send_now: SendNow) -> int:
    """Send every message that fell due; returns how many."""
    claimed = ctx.store.due.claim(ctx.clock())
    for message in claimed:
        # A claimer that dies here loses the message; its step then has no
        # lease and nothing scheduled, which is what the re-driver looks for.
        send_now(
            Dispatch(
                Step(message["step"]),
                message["run_id"],
                message["task_id"],
                retries=int(message.get("retries", 0)),
            )
        )
    return len(claimed)


def send_due_sweeps(ctx: StepContext, send_tick: SendSweepTick) -> int:
    """Send a tick for every sweep whose tick is due; each claim holds the sweep
    for CLAIM_SECONDS, so a tick lost with its worker is sent again after that."""
    claimed = ctx.store.sweeps.claim_due(ctx.clock())
    for sweep_id in claimed:
        send_tick(sweep_id)
    return len(claimed)


def redrive_if_my_turn(ctx: StepContext, send_now: SendNow, worker: str) -> int:
    """Run the re-driver unless another worker did within the interval.

    A pass reads every active run, so with many (10,000 take seconds) the turn
    is held for REDRIVE_SPACING times as long as the pass took: the re-driver
    keeps to a fifth of one clock, and waits still fall due on time."""
    interval_ms = max(1, int(ctx.settings.redrive_interval_seconds * 1000))
    turn = ctx.store.keys.redrive_turn
    if not ctx.store.redis.set(turn, worker, nx=True, px=interval_ms):
        return 0
    started = time.monotonic()
    dispatches = redrive(ctx)
    spaced_ms = int((time.monotonic() - started) * REDRIVE_SPACING * 1000)
    if spaced_ms > interval_ms:
        ctx.store.redis.pexpire(turn, spaced_ms)
    for dispatch in dispatches:
        send_now(dispatch)
    return len(dispatches)


def expire_runs_if_my_turn(ctx: StepContext, worker: str) -> list[str]:
    """Delete the ended runs past their retention, unless another worker's
    pass did within RETENTION_PASS_SECONDS; returns the deleted run ids."""
    retention = ctx.settings.run_retention_seconds
    if retention is None:
        return []  # kept forever
    interval_ms = int(RETENTION_PASS_SECONDS * 1000)
    if not ctx.store.redis.set(ctx.store.keys.retention_turn, worker, nx=True, px=interval_ms):
        return []
    deleted = ctx.store.delete_expired_runs(ctx.clock() - retention, limit=RETENTION_BATCH)
    if deleted:
        get_logger(component="retention").info("expired_runs_deleted", count=len(deleted))
    expired_sweeps = ctx.store.sweeps.delete_expired(ctx.clock() - retention, limit=RETENTION_BATCH)
    if expired_sweeps:
        get_logger(component="retention").info("expired_sweeps_deleted", count=len(expired_sweeps))
    return deleted


class ChainClock:
    """The background thread of one worker process."""

    def __init__(
        self,
        context: Callable[[], StepContext],
        send_now: SendNow,
        worker: str,
        send_sweep_tick: SendSweepTick | None = None,
    ) -> None:
        self._context = context
        self._send_now = send_now
        self._send_sweep_tick = send_sweep_tick
        self._worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chain-clock", daemon=True)
        self._next_redrive = 0.0
        self._next_retention = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def tick(self) -> None:
        """One pass of the clock (the thread runs one every TICK_SECONDS)."""
        ctx = self._context()
        send_due(ctx, self._send_now)
        if self._send_sweep_tick is not None:
            send_due_sweeps(ctx, self._send_sweep_tick)
        # Every worker looks; a per-tick claim lets only one fire each tick.
        fire_due_schedules(ctx, ctx.clock(), worker=self._worker)
        if ctx.clock() >= self._next_redrive:
            self._next_redrive = ctx.clock() + ctx.settings.redrive_interval_seconds
            redrive_if_my_turn(ctx, self._send_now, self._worker)
        if ctx.clock() >= self._next_retention:
            self._next_retention = ctx.clock() + RETENTION_PASS_SECONDS
            expire_runs_if_my_turn(ctx, self._worker)

    def _run(self) -> None:
        log = get_logger(component="chain_clock", worker=self._worker)
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick()
            except redis.RedisError as exc:
                # Redis restarting: the clock resumes when it answers again,
                # and says so once every REDIS_DOWN_PAUSE, not every tick.
                log.warning("chain_clock_redis_error", error=str(exc))
                self._stop.wait(REDIS_DOWN_PAUSE_SECONDS)
            except Exception:
                log.exception("chain_clock_failed")
