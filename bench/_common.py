"""Helpers the benchmarks share: CPU and memory of processes, core pinning, figure lines.

    from _common import cpu_seconds, pin, rss_mb, figure
    pin(cloud.process.pid, SERVER_CORE)
    figure("cloud RSS, 10,000 live servers", "<= 300 MB", f"{rss:.0f} MB", rss / empty, rss <= 300)

Every bench ends with `ratio: X` (ours / the baseline measured in the same run); a
`figure: {json}` line per figure lets `bench/run_all.py` build the results table.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the project first: its packages import from this checkout, installed or not
sys.path.insert(0, str(ROOT))

SERVER_CORE = 0     # the embedded cloud (or whatever answers)
LOADGEN_CORE = 1    # the process under measurement


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds of a process and all its descendants, reaped children included."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = sum(int(f) for f in fields[11:15]) / ticks
    total = 0.0
    for pid in cpu:
        walk = pid
        while walk in parents and walk not in (0, 1, root):
            walk = parents[walk]
        if walk == root:
            total += cpu[pid]
    return total


def rss_mb(pid: int | None = None, field: str = "VmRSS") -> float:
    """Resident memory in MB (`VmHWM` for the peak) of a process, this one by default."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) / 1024


def pin(pid: int, core: int) -> None:
    """Keep a process on one core, so "one core" means one core on a shared machine."""
    count = os.cpu_count() or 1
    if hasattr(os, "sched_setaffinity") and count > core:
        os.sched_setaffinity(pid, {core})


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def figure(name: str, target: str, measured: str, ratio: float | None, met: bool | None,
           note: str = "") -> None:
    """One row of the results table, printed as `figure: {json}` for run_all.py."""
    print("figure: " + json.dumps({"figure": name, "target": target, "measured": measured,
                                   "ratio": ratio, "met": met, "note": note}), flush=True)


def locust_environment(credentials: dict, user_classes: list, *extra: str):
    """A Locust Environment with a local runner and novastress's options, aimed at the cloud
    of `credentials` (an EmbeddedCloud's `.credentials()`).

    Returns (environment, runner, run state). The caller imports locust first (gevent patching).
    """
    from locust import events
    from locust.argument_parser import get_parser
    from locust.env import Environment

    from novastress_locust.state import run_state

    creds = credentials
    options = get_parser().parse_args([
        "-f", sys.argv[0], "--headless", f"--os-auth-url={creds['auth_url']}",
        f"--os-username={creds['username']}", f"--os-password={creds['password']}",
        f"--os-project-name={creds['project_name']}", *extra])
    environment = Environment(user_classes=user_classes, events=events, parsed_options=options)
    runner = environment.create_local_runner()
    events.init.fire(environment=environment, runner=runner, web_ui=None)
    return environment, runner, run_state(environment)


@dataclass
class BenchCloud:
    """An embedded cloud, pinned to the server core, with what a bench needs to boot servers."""

    cloud: object
    session: object
    compute: str          # compute endpoint URL
    headers: dict         # token + microversion 2.1
    flavor: str
    image: str

    def server_body(self, name: str) -> str:
        return json.dumps({"server": {"name": name, "flavorRef": self.flavor, "imageRef": self.image}})


@contextmanager
def bench_cloud(core: int, **settings):
    """`with bench_cloud(0, seed=7) as bench:` a quiet, instant embedded cloud on `core`."""
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    from novastress_locust.fakecloud import EmbeddedCloud

    with EmbeddedCloud(faults="none", delay_scale=0.0, **settings) as cloud:
        pin(cloud.process.pid, core)
        session = ks_session.Session(auth=v3.Password(**cloud.credentials()))
        compute = cloud.base_url + "/compute/v2.1"
        headers = {"X-Auth-Token": session.get_token(), "OpenStack-API-Version": "compute 2.1"}
        flavor = session.get(compute + "/flavors").json()["flavors"][0]["id"]
        image = session.get(cloud.base_url + "/image/v2/images").json()["images"][0]["id"]
        yield BenchCloud(cloud, session, compute, headers, flavor, image)


def bulk_create(url: str, headers: dict, body: str, count: int, concurrency: int = 16) -> None:
    """POST `body` to `url` `count` times from a child process (geventhttpclient, keep-alive)."""
    code = f"""
import gevent
from gevent import monkey; monkey.patch_all()
from geventhttpclient import HTTPClient, URL
url = URL({url!r}); headers = dict({headers!r}, **{{"Content-Type": "application/json"}})
client = HTTPClient.from_url(url, concurrency={concurrency}, connection_timeout=10, network_timeout=60)
remaining = [{count}]
def worker():
    while remaining[0] > 0:
        remaining[0] -= 1
        response = client.post(url.request_uri, body={body!r}, headers=headers)
        response.read()
        assert response.status_code == 202, response.status_code
gevent.joinall([gevent.spawn(worker) for _ in range({concurrency})], raise_error=True)
"""
    child = subprocess.Popen([sys.executable, "-c", code])
    pin(child.pid, LOADGEN_CORE)
    if child.wait(timeout=900) != 0:
        raise RuntimeError(f"bulk create of {count} servers failed (exit {child.returncode})")


def profile_summary(path: Path, top: int = 12) -> str:
    """The hottest functions of a py-spy `--format raw` profile: self and inclusive share."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in frame else frame for frame in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    if not total:
        return f"{path}: no samples"
    lines = [f"{path}: {total} samples", "  self:"]
    lines += [f"    {100 * n / total:5.1f} %  {name}" for name, n in sorted(own.items(), key=lambda i: -i[1])[:top]]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / total:5.1f} %  {name}"
              for name, n in sorted(inclusive.items(), key=lambda i: -i[1])[:top]]
    return "\n".join(lines)
