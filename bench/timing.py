"""How far an ATOMIC wait's end is from the moment the server really changed.

    .venv/bin/python bench/timing.py [--loops 40] [--seconds 20] [--interval 1.0]

One embedded cloud (its transitions take Nova-like random times; its API, like a MariaDB-backed
Nova, shows whole seconds) and, side by side in this process, `--loops` boot/delete lifecycles
through each of three batched waiters:

* today: the poll schedule of before, the step ending when the user wakes;
* estimating: the same interval, the step ending when the waiter says the server changed
  (between the two reads around the change, narrowed by the server's `updated` stamp);
* tenth: today's way with a tenth of the interval (what finer polling alone buys, and costs);
* tenth+est: estimating with a tenth of the interval (`--status-poll-interval 0.1`).

The truth is the embedded cloud's own record, to the microsecond (GET /fakecloud/servers/{id}/times).
The last line is `ratio:` estimating's p95 error over today's.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gevent  # noqa: E402
import gevent.monkey  # noqa: E402

gevent.monkey.patch_all()

from _common import figure, percentile  # noqa: E402

from novastress_locust.fakecloud import EmbeddedCloud  # noqa: E402
from novastress_locust.requestlog import Step  # noqa: E402
from novastress_locust.waiter import ACTIVE, DELETED, BatchedServerWaiter  # noqa: E402


class Compute:
    """The waiter's view of Compute: GETs over a keystoneauth session, expected statuses only."""

    def __init__(self, session, base_url: str) -> None:
        self.session = session
        self.url = f"{base_url}/compute/v2.1"
        self.headers = {"OpenStack-API-Version": "compute 2.37"}

    def get(self, path: str, *, params: dict | None = None, expect: tuple[int, ...] = (200,), name=None):
        response = self.session.get(self.url + path, params=params, headers=self.headers, raise_exc=False)
        if response.status_code not in expect:
            raise RuntimeError(f"GET {path} -> {response.status_code}")
        return response

    def boot(self, name: str, image: str) -> str:
        body = {"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}}
        return self.session.post(f"{self.url}/servers", json=body, headers=self.headers).json()["server"]["id"]

    def delete(self, server_id: str) -> None:
        self.session.delete(f"{self.url}/servers/{server_id}", headers=self.headers, raise_exc=False)


class Way:
    """One waiter and what its lifecycles measured."""

    def __init__(self, name: str, waiter: BatchedServerWaiter, estimating: bool) -> None:
        self.name, self.waiter, self.estimating = name, waiter, estimating
        self.ends: list[tuple[str, str, float]] = []    # (server id, target, the step's end)
        self.lifecycles = 0

    def wait(self, server_id: str, target: str, since: float) -> None:
        step = Step()
        self.waiter.wait(server_id, server_id, target, 120, since=since, step=step)
        woke = time.time()
        self.ends.append((server_id, target, woke - step.late if self.estimating else woke))


def lifecycles(way: Way, compute: Compute, image: str, until: float, number: int) -> None:
    turn = 0
    while time.monotonic() < until:
        turn += 1
        before = time.time()
        server_id = compute.boot(f"bench-{way.name}-{number}-{turn}", image)
        way.wait(server_id, ACTIVE, before)
        before = time.time()
        compute.delete(server_id)
        way.wait(server_id, DELETED, before)
        way.lifecycles += 1


def errors(way: Way, admin, base_url: str) -> list[float]:
    found = []
    for server_id, target, end in way.ends:
        times = admin.get(f"{base_url}/fakecloud/servers/{server_id}/times").json()["times"]
        truth = times["launched_at" if target == ACTIVE else "terminated_at"]
        found.append(abs(end - truth) * 1000)
    return found


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=1.0, help="status poll interval (default 1 s)")
    parser.add_argument("--loops", type=int, default=20, help="lifecycles in flight per waiter (default 20)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the loops run (default 20 s)")
    return parser.parse_args()


def main() -> int:
    args = options()
    with EmbeddedCloud(faults="none", delay_scale=1.0, seed=11) as cloud:
        member, admin = cloud.session(), cloud.session(admin=True)
        image = member.get(f"{cloud.base_url}/image/v2/images").json()["images"][0]["id"]
        today = BatchedServerWaiter(Compute(cloud.session(), cloud.base_url), args.interval)
        today.phase_slip = 0.0
        tenth = BatchedServerWaiter(Compute(cloud.session(), cloud.base_url), args.interval / 10)
        tenth.phase_slip = 0.0
        ways = [Way("today", today, False),
                Way("estimating", BatchedServerWaiter(Compute(cloud.session(), cloud.base_url), args.interval), True),
                Way("tenth", tenth, False),
                Way("tenth+est", BatchedServerWaiter(Compute(cloud.session(), cloud.base_url), args.interval / 10),
                    True)]
        until = time.monotonic() + args.seconds
        greenlets = [gevent.spawn(lifecycles, way, Compute(member, cloud.base_url), image, until, n)
                     for way in ways for n in range(args.loops)]
        gevent.joinall(greenlets, timeout=args.seconds + 120)
        for way in ways:
            way.waiter.stop()
        failed = [g.exception for g in greenlets if g.exception is not None]
        if failed:
            print(f"{len(failed)} lifecycle loops failed: {failed[0]}", file=sys.stderr)
            return 1
        print(f"{args.loops} lifecycles in flight per waiter, {args.seconds:g} s, poll interval {args.interval:g} s "
              f"(tenth: {args.interval / 10:g} s)")
        measured = {}
        for way in ways:
            found = errors(way, admin, cloud.base_url)
            polls = way.waiter.polls / way.lifecycles if way.lifecycles else float("nan")
            measured[way.name] = (percentile(found, 0.5), percentile(found, 0.95), polls)
            print(f"  {way.name:10s}: {len(found):5d} waits, error p50 {measured[way.name][0]:6.0f} ms, "
                  f"p95 {measured[way.name][1]:6.0f} ms, {polls:.3f} status calls per lifecycle")
    today_p50, today_p95, today_polls = measured["today"]
    _, estimating_p95, estimating_polls = measured["estimating"]
    _, tenth_p95, tenth_polls = measured["tenth"]
    _, fine_p95, fine_polls = measured["tenth+est"]
    ratio = estimating_p95 / today_p95
    figure("ATOMIC wait end vs the real change, p95 error, same interval", "<= 50 ms",
           f"{estimating_p95:.0f} ms (today {today_p95:.0f} ms, p50 {measured['estimating'][0]:.0f} vs "
           f"{today_p50:.0f} ms)", ratio, estimating_p95 <= 50,
           "ratio: estimating's p95 error vs today's, at the same poll interval; a whole-second `updated` "
           "stamp cannot pin the change closer than the poll gap allows")
    figure("status calls per lifecycle, estimating vs today", "<= 2x today",
           f"{estimating_polls:.3f} (today {today_polls:.3f})", estimating_polls / today_polls,
           estimating_polls / today_polls <= 2)
    figure("p95 error with a tenth of the interval, estimating", "<= 50 ms",
           f"{fine_p95:.0f} ms at {fine_polls:.3f} calls per lifecycle (without the estimate: {tenth_p95:.0f} ms "
           f"at {tenth_polls:.3f})", fine_polls / today_polls, fine_p95 <= 50,
           "ratio: its status calls per lifecycle vs today's interval")
    print(f"ratio: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
