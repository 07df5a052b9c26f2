"""--server-timings: where the time of a server action went, from Nova's own records.

    GET /servers/{id}/os-instance-actions/{request id}     # microversion 2.62: events, hostId

Nova records every server action with the events of its services, each with a start and a
finish time: `compute__do_build_and_run_instance` (a boot's one event when it succeeds; the
conductor adds `conductor_schedule_and_build_instances` when scheduling fails),
`compute_reboot_instance`, `compute_resize_instance`, `compute_finish_resize`... Each becomes a
`NOVA` row of its own, `<event> on <host>` (the host's name for an admin, the first 8
characters of its hostId for a member), timed start to finish by Nova, failed when Nova says
Error: what Rally needs OSProfiler for. Nova keeps these times in its database: a Nova on MySQL
or MariaDB (DATETIME columns without fractions) gives whole seconds, so a phase is known to
the second. It costs one GET per server action, a second when an event had not finished when
the action's wait ended.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import gevent

MICROVERSION = "2.62"     # events for members since 2.51, their host's hostId since 2.62
NEEDS = "2.51"            # an older compute API shows a member no events: nothing to report


def microversion(newest: str | None) -> str:
    """What to ask for of a compute API that goes up to `newest` (2.62, or the newest below it)."""
    if not newest:
        return MICROVERSION
    major, _, minor = newest.partition(".")
    return newest if major == "2" and minor.isdigit() and int(minor) < 62 else MICROVERSION


@dataclass(frozen=True)
class Phase:
    event: str
    host: str
    seconds: float
    error: str | None       # Nova's details (or "Error") when the event failed

    @property
    def row(self) -> str:
        return f"{self.event} on {self.host}" if self.host else self.event


def read(client, server_id: str, request_id: str, retry_after: float, version: str = MICROVERSION) -> list[Phase]:
    """The finished events of the action `request_id` on the server, read once more after
    `retry_after` seconds when one had not finished; [] when Nova keeps no record of it."""
    compute = client.service("compute", "compute", {"OpenStack-API-Version": f"compute {version}"})
    for attempt in range(2):
        response = compute.get(f"/servers/{server_id}/os-instance-actions/{request_id}", expect=(200, 404))
        if response.status_code == 404:
            return []
        events = response.json().get("instanceAction", {}).get("events") or []
        if attempt or all(event.get("finish_time") for event in events):
            break
        gevent.sleep(retry_after)
    return [Phase(str(event.get("event")), _host(event), _seconds(event),
                  None if event.get("result") != "Error" else str(event.get("details") or "Error"))
            for event in events if event.get("start_time") and event.get("finish_time")]


def report(events, phases: list[Phase]) -> None:
    """Each phase as a Locust request of type NOVA, timed by Nova."""
    for phase in phases:
        events.request.fire(request_type="NOVA", name=phase.row, response_time=phase.seconds * 1000,
                            response_length=0, context={},
                            exception=None if phase.error is None else NovaEventError(phase.error))


class NovaEventError(Exception):
    """An instance-action event Nova finished with Error; str() is its details."""


def _host(event: dict) -> str:
    if event.get("host"):
        return str(event["host"])
    return f"host {str(event['hostId'])[:8]}" if event.get("hostId") else ""


def _seconds(event: dict) -> float:
    started, finished = (datetime.fromisoformat(str(event[key]).replace("Z", "+00:00"))
                         for key in ("start_time", "finish_time"))
    return max(0.0, (finished - started).total_seconds())
