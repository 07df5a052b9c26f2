"""The contention storm as scenario actions (the logic lives in `novastress_locust.storm`).

    - action: storm              # shared pool, random lifecycle actions, racing deletes
      threads: 8
    - action: server_group_burst # N simultaneous boots into one server group
      threads: 1

Either turns the invariant checks on for the run; options `--storm-*` and `--invariant-*`.
"""
from __future__ import annotations

from ..storm import fit_actions, server_group_burst as _burst, storm_round
from ..user import NovaUser
from . import stress_action


@stress_action(types=("compute", "storm"), adapt=fit_actions)
def storm(user: NovaUser) -> None:
    """One storm round on the process's shared server pool (refill, group burst or a raced action)."""
    storm_round(user)


@stress_action(types=("compute", "storm"))
def server_group_burst(user: NovaUser) -> None:
    """Boot --storm-group-size servers at once into a new (anti-)affinity group; check the policy."""
    _burst(user)


storm.invariants = True
server_group_burst.invariants = True
