"""HTTP-level fault injection: 5xx answers, slow answers, connection resets.

Rules are added at run time through `POST /fakecloud/chaos` (admin token):

    {"rule": {"service": "compute", "method": "GET", "path": "/servers/",
              "kind": "status", "status": 503, "probability": 0.5, "count": 10}}

`kind` is `status` (answer with that code), `delay` (sleep `delay` seconds,
then answer normally: a client timeout shorter than that fails) or `reset`
(close the connection with a TCP reset, no answer).

`freeze` is not about HTTP: it stops the state machine of the next `count`
resources of `service` whose name matches the regular expression `name`, so a
server stays in BUILD (or wherever it is) until it is deleted or the rule is
removed (`DELETE /fakecloud/chaos` thaws everything):

    {"rule": {"service": "compute", "kind": "freeze", "name": "^ns-1a2b3c-", "count": 1}}
"""
from __future__ import annotations

import random
import re
import threading
import uuid
from dataclasses import asdict, dataclass, field

KINDS = ("status", "delay", "reset", "freeze")


@dataclass
class ChaosRule:
    kind: str
    service: str | None = None
    method: str | None = None
    path: str | None = None
    status: int = 500
    delay: float = 0.0
    probability: float = 1.0
    count: int | None = None
    name: str | None = None      # freeze: regular expression of the resource names
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    hits: int = 0
    frozen: list[str] = field(default_factory=list)   # freeze: ids of the resources it holds

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown chaos kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if not 0.0 <= float(self.probability) <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.kind == "status" and not 400 <= int(self.status) <= 599:
            raise ValueError("status must be a 4xx or 5xx code")
        try:
            self._regex = re.compile(self.path) if self.path else None
        except re.error as exc:
            raise ValueError(f"path is not a valid regular expression: {exc}") from None
        try:
            self._name = re.compile(self.name) if self.name else None
        except re.error as exc:
            raise ValueError(f"name is not a valid regular expression: {exc}") from None
        if self.kind == "freeze" and not self.service:
            raise ValueError("a freeze rule needs the service whose resources it freezes")

    def matches(self, service: str, method: str, path: str) -> bool:
        if self.kind == "freeze":
            return False
        if self.count is not None and self.hits >= self.count:
            return False
        if self.service and self.service != service:
            return False
        if self.method and self.method.upper() != method:
            return False
        return not self._regex or bool(self._regex.search(path))

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class Chaos:
    """The active rules; the first matching rule whose dice roll true applies."""

    def __init__(self, seed: int | None) -> None:
        self.rules: list[ChaosRule] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, spec: dict) -> ChaosRule:
        allowed = {"kind", "service", "method", "path", "status", "delay", "probability", "count", "name"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown chaos rule field(s): {', '.join(sorted(unknown))}")
        rule = ChaosRule(**spec)
        with self._lock:
            self.rules.append(rule)
        return rule

    def remove(self, rule_id: str | None = None) -> int:
        with self._lock:
            before = len(self.rules)
            self.rules = [r for r in self.rules if rule_id is not None and r.id != rule_id]
            return before - len(self.rules)

    def pick(self, service: str, method: str, path: str) -> ChaosRule | None:
        if not self.rules:  # the common case costs one check
            return None
        with self._lock:
            for rule in self.rules:
                if rule.matches(service, method, path) and self._rng.random() < rule.probability:
                    rule.hits += 1
                    return rule
        return None

    def frozen(self, service: str, resource_id: str, name: str | None) -> bool:
        """Is this resource's state machine held by a freeze rule? (the first match takes it)"""
        if not self.rules:
            return False
        with self._lock:
            freezes = [r for r in self.rules if r.kind == "freeze" and r.service == service]
            if any(resource_id in rule.frozen for rule in freezes):
                return True
            for rule in freezes:
                if rule.count is not None and rule.hits >= rule.count:
                    continue
                if rule._name and not rule._name.search(name or ""):
                    continue
                rule.hits += 1
                rule.frozen.append(resource_id)
                return True
        return False
