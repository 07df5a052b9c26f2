"""Planted race bugs and the ground truth of what fired.

Each fault has an id, a one-line description, a default probability and a
trigger in the service code that depends on timing or concurrency (a delete
landing while a build is in flight, two boots racing for the last capacity…).
When a trigger rolls true the service writes the ERROR/traceback lines a real
Nova bug would and leaves the same wrong state behind, then calls `fired()`:
that record is what tests and benchmarks measure detection against.
"""
from __future__ import annotations

import random
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class FaultSpec:
    id: str
    description: str
    probability: float


CATALOGUE: dict[str, FaultSpec] = {spec.id: spec for spec in (
    FaultSpec("delete-during-build",
              "DELETE while the server is still building: compute raises "
              "UnexpectedDeletingTaskStateError with a traceback; deleting the ERROR server "
              "later leaks its Placement allocations", 0.5),
    FaultSpec("scheduler-capacity-race",
              "two boots race for the last capacity of a host: the loser goes to ERROR "
              "with a NoValidHost fault", 0.05),
    FaultSpec("attach-during-delete",
              "volume attach racing a server delete: the volume stays 'in-use' attached "
              "to a server that is gone", 0.5),
    FaultSpec("floating-ip-delete-race",
              "floating IP association racing the server delete: the floating IP keeps "
              "pointing at a port that no longer exists", 0.5),
    FaultSpec("quota-usage-drift",
              "concurrent create/delete in one project: the instance usage counter drifts "
              "from the real count", 0.2),
    FaultSpec("state-change-race",
              "two state-changing actions on one server inside the API's check-then-save window: "
              "the second answers 500 (UnexpectedTaskStateError from instance.save) with a "
              "nova-api traceback", 0.3),
    FaultSpec("delete-preempts-action",
              "DELETE landing while an action is in flight on the compute host: the action's "
              "thread raises UnexpectedDeletingTaskStateError with a traceback in nova-compute", 0.3),
    FaultSpec("unshelve-delete-allocations",
              "unshelve racing a delete: the unshelve's claim re-creates the server's Placement "
              "allocations after the delete removed them; a periodic task heals them later", 0.3),
    FaultSpec("resize-delete-migration-leak",
              "DELETE while a resize is in flight: the migration's allocation on the source host is "
              "never freed; the source's periodic task only logs that its consumer is not in the database",
              0.5),
    FaultSpec("quota-recheck-skipped",
              "boots racing past nova-api's quota check: the conductor skips its re-check and "
              "builds the excess, the project stays over its instance quota without an error", 0.5),
    FaultSpec("group-policy-burst",
              "simultaneous boots into an anti-affinity group: two members land on one host, "
              "the policy violated without an error", 0.1),
)}


@dataclass
class FiredFault:
    fault: str
    time: float
    request_ids: list[str]
    resource_id: str | None = None
    detail: str = ""
    log: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Faults:
    """Which faults are armed, their probabilities, their seeded dice, and what fired."""

    armed: set[str] = field(default_factory=set)
    probability: dict[str, float] = field(default_factory=dict)
    seed: int | None = None
    fired_faults: list[FiredFault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        # one generator per fault: a fault's decisions do not shift when another fires
        self._dice = {fid: random.Random(None if self.seed is None
                                         else self.seed * 1_000_003 + zlib.crc32(fid.encode()))
                      for fid in CATALOGUE}

    @classmethod
    def from_selection(cls, selection: list[str] | str, probability: dict[str, float],
                       seed: int | None) -> "Faults":
        if selection == "all":
            armed = set(CATALOGUE)
        elif selection in ("none", "", None):
            armed = set()
        else:
            names = selection.split(",") if isinstance(selection, str) else list(selection)
            unknown = [n for n in names if n.strip() and n.strip() not in CATALOGUE]
            if unknown:
                raise ValueError(f"unknown fault id(s) {', '.join(unknown)}; known: "
                                 f"{', '.join(sorted(CATALOGUE))}")
            armed = {n.strip() for n in names if n.strip()}
        for fid in probability:
            if fid not in CATALOGUE:
                raise ValueError(f"unknown fault id {fid}; known: {', '.join(sorted(CATALOGUE))}")
        return cls(armed, dict(probability), seed)

    def chance(self, fault_id: str) -> float:
        return self.probability.get(fault_id, CATALOGUE[fault_id].probability)

    def roll(self, fault_id: str) -> bool:
        """True when an armed fault fires at this trigger."""
        if fault_id not in self.armed:
            return False
        with self._lock:
            return self._dice[fault_id].random() < self.chance(fault_id)

    def fired(self, fault_id: str, request_ids: list[str], resource_id: str | None = None,
              detail: str = "", log: str = "") -> FiredFault:
        record = FiredFault(fault_id, time.time(), [r for r in request_ids if r], resource_id,
                            detail, log)
        with self._lock:
            self.fired_faults.append(record)
        return record

    def configure(self, fault_id: str, armed: bool | None = None,
                  probability: float | None = None) -> None:
        if fault_id not in CATALOGUE:
            raise KeyError(fault_id)
        if armed is True:
            self.armed.add(fault_id)
        elif armed is False:
            self.armed.discard(fault_id)
        if probability is not None:
            self.probability[fault_id] = float(probability)

    def catalogue(self) -> list[dict]:
        return [{"id": spec.id, "description": spec.description, "armed": spec.id in self.armed,
                 "probability": self.chance(spec.id)} for spec in CATALOGUE.values()]
