"""Contention storms: users of a process share a pool of servers and race actions on them.

    from novastress_locust.actions.storm import storm
    from novastress_locust.storm import StormUser

    class Storm(StormUser):
        tasks = [storm]

Each storm round picks a random pool member and fires a random lifecycle action at it
(soft/hard reboot, stop/start, pause/unpause, suspend/resume, lock/unlock, shelve/unshelve,
rebuild, resize and its confirm/revert, a snapshot (createImage; its image is deleted once
written, or by Nova when a racing DELETE cuts it short), a volume attach, a floating-IP association) with one
of two credentials — the run's own and a
peer (`--storm-peer`: the admin, or a second user of the project); a fraction of them
(`--storm-double-ratio`) goes out together with a second state change by the other
credential, inside the API's check-then-save window. A fraction of the accepted
actions (`--storm-delete-ratio`) is raced by a DELETE 0–2 s later (`--storm-delete-delay-*`), at a
random moment or while the action is still seen in progress (`--storm-delete-timing`);
the pool refills with fresh servers. `attach_volume` creates a volume and attaches it to the
member without waiting; `associate_floating_ip` allocates a floating IP and binds it to the
member's port without waiting (raced, the association is re-sent until the port is gone, so one
is in flight when the delete releases it). Either round takes its volume / floating IP back —
detached or unbound, then deleted — even when the server is gone. Some rounds
(`--storm-group-ratio`) are server-group bursts: N simultaneous boots into an affinity or
anti-affinity group, checked against the policy and (admin) the host count; an anti-affinity
burst has one member more than the cloud has hosts, so two of them must race for one host. Some
(`--storm-plan-ratio`) run a race plan, the races random rounds seldom line up: the member is
shelved and, once it is, unshelved and deleted while the unshelve is in flight; or a volume
attach / floating-IP association is deleted while it is in flight.

A 409 is the API correctly refusing a racing request: it is counted on its own `CONFLICT`
row, not as a failure (`--storm-conflict-fails` makes it one). A 5xx fails the action with
its request id. Every deleted server is handed to the invariant checks (`invariants.py`),
with the volumes and floating IPs the storm put on it: they must come off it once it is gone.

The package, from the bottom up: `pool` (the pool, one `Round` at a member, the racing DELETE,
the peer credential), `catalog` (the actions, what each needs, how one is fired), `resources`
(volumes and floating IPs put on members and taken back), `bursts` (server-group bursts), `rounds`
(one round, race plans, StormUser, the options' checks).
"""
from __future__ import annotations

from .bursts import burst_size, server_group_burst
from .catalog import ACTIONS, NEEDS, RESOURCE_ACTIONS, enabled_actions, fit_actions
from .rounds import StormUser, storm_round

__all__ = ["StormUser", "storm_round", "server_group_burst", "ACTIONS", "RESOURCE_ACTIONS", "enabled_actions",
           "fit_actions", "burst_size", "NEEDS"]
