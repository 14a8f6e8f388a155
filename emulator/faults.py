"""Seeded fault injection (implements core.Faults).

Every rule owns a random.Random derived from the emulator seed and the rule's
position, so the same seed and the same request sequence give the same
decisions, and adding a rule never shifts another rule's dice.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Decided by the server for each request, in this order.
REQUEST_KINDS = ("drop", "throttle", "error500", "error503")
# Decided by the Batch AI model through Faults.roll.
MODEL_KINDS = ("node_unusable", "allocation_failure", "preemption")
KINDS = REQUEST_KINDS + MODEL_KINDS
SERVICE_NAMES = ("arm", "files")
DEFAULT_RETRY_AFTER = 1


class FaultRuleError(ValueError):
    """A rule is malformed; `field` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass
class FaultRule:
    kind: str
    rate: float
    operations: list[str] = field(default_factory=lambda: ["*"])
    count: int | None = None  # max hits; None = unlimited
    retry_after: int = DEFAULT_RETRY_AFTER
    hits: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rate": self.rate,
            "operations": list(self.operations),
            "count": self.count,
            "retry_after": self.retry_after,
            "hits": self.hits,
        }


def parse_rule(obj: Any, index: int = 0) -> FaultRule:
    """Validate one JSON rule; FaultRuleError names the bad field (e.g. rules[0].rate)."""
    where = f"rules[{index}]"
    if not isinstance(obj, dict):
        raise FaultRuleError(where, "must be an object")
    unknown = set(obj) - {"kind", "rate", "operations", "count", "retry_after"}
    if unknown:
        raise FaultRuleError(f"{where}.{sorted(unknown)[0]}", "unknown field")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise FaultRuleError(f"{where}.kind", f"must be one of {', '.join(KINDS)}")
    rate = obj.get("rate")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise FaultRuleError(f"{where}.rate", "must be a number between 0 and 1")
    operations = obj.get("operations", ["*"])
    if (
        not isinstance(operations, list)
        or not operations
        or not all(isinstance(op, str) and op for op in operations)
    ):
        raise FaultRuleError(f"{where}.operations", "must be a non-empty list of strings")
    count = obj.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise FaultRuleError(f"{where}.count", "must be a non-negative integer")
    retry_after = obj.get("retry_after", DEFAULT_RETRY_AFTER)
    if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
        raise FaultRuleError(f"{where}.retry_after", "must be a non-negative integer")
    return FaultRule(str(kind), float(rate), list(operations), count, retry_after)


def parse_rules(obj: Any) -> list[FaultRule]:
    if not isinstance(obj, dict) or not isinstance(obj.get("rules"), list):
        raise FaultRuleError("rules", "body must be an object with a list field 'rules'")
    return [parse_rule(item, i) for i, item in enumerate(obj["rules"])]


def parse_flag(text: str) -> FaultRule:
    """KIND:RATE[:OP1,OP2] as given to `orchestrator emulator --fault`."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise FaultRuleError("--fault", f"expected KIND:RATE[:OPERATIONS], got {text!r}")
    try:
        rate: Any = float(parts[1])
    except ValueError:
        rate = parts[1]
    rule: dict[str, Any] = {"kind": parts[0], "rate": rate}
    if len(parts) == 3:
        rule["operations"] = [op for op in parts[2].split(",") if op]
    try:
        return parse_rule(rule)
    except FaultRuleError as exc:
        raise FaultRuleError("--fault", f"{text!r}: {exc}") from exc


class FaultInjector:
    def __init__(self, seed: int, service_of: Callable[[str], str | None] | None = None) -> None:
        self._seed = seed
        self._service_of = service_of or (lambda _operation: None)
        self._lock = threading.Lock()
        self._rules: list[tuple[FaultRule, random.Random]] = []

    def set_service_lookup(self, service_of: Callable[[str], str | None]) -> None:
        self._service_of = service_of

    def set_rules(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = [
                (rule, random.Random(f"{self._seed}:{i}:{rule.kind}"))
                for i, rule in enumerate(rules)
            ]

    def add_rule(self, rule: FaultRule) -> None:
        with self._lock:
            i = len(self._rules)
            self._rules.append((rule, random.Random(f"{self._seed}:{i}:{rule.kind}")))

    def clear(self) -> None:
        self.set_rules([])

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule, _ in self._rules]

    def roll(self, kind: str, operation: str) -> bool:
        return self._first_hit((kind,), operation) is not None

    def decide_request(self, operation: str) -> FaultRule | None:
        """The request-level fault (drop/throttle/error500/error503) hitting this request."""
        return self._first_hit(REQUEST_KINDS, operation)

    def _first_hit(self, kinds: tuple[str, ...], operation: str) -> FaultRule | None:
        service = self._service_of(operation)
        with self._lock:
            for kind in kinds:
                for rule, dice in self._rules:
                    if rule.kind != kind or not _applies(rule, operation, service):
                        continue
                    if rule.count is not None and rule.hits >= rule.count:
                        continue
                    if dice.random() < rule.rate:
                        rule.hits += 1
                        return rule
        return None


def _applies(rule: FaultRule, operation: str, service: str | None) -> bool:
    return any(op in ("*", operation) or op == service for op in rule.operations)
