"""Embedded cloud throughput: GET /servers/{id} per second on one core, against a
hello-world app on the same HTTP stack, measured side by side in this run.

    .venv/bin/python bench/fakecloud_throughput.py [--seconds 5] [--live-servers 10000]

The cloud (and the hello-world server) is pinned to one core and the load
generator to the other, so "on one core" means the server's core. Besides
requests/s it prints requests per CPU-second of the server process, which is
steadier on a shared machine. It also checks small responses for the ~40 ms
Nagle/delayed-ACK stall, and how 10,000 live servers change show and list.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LOADGEN_CORE, SERVER_CORE, bench_cloud, bulk_create, cpu_seconds, figure, pin, rss_mb  # noqa: E402

BASELINE_SERVERS = 100


def loadgen(url: str, headers: dict, seconds: float, concurrency: int) -> dict:
    """Run in a child process: hammer one URL over keep-alive connections."""
    code = f"""
import gevent, json, time
from gevent import monkey; monkey.patch_all()
from geventhttpclient import HTTPClient, URL
url = URL({url!r}); headers = {headers!r}
client = HTTPClient.from_url(url, concurrency={concurrency}, connection_timeout=10, network_timeout=30)
path = url.request_uri
done = [0]; errors = [0]; deadline = time.monotonic() + {seconds}
def worker():
    while time.monotonic() < deadline:
        response = client.get(path, headers=headers)
        response.read()
        if response.status_code == 200: done[0] += 1
        else: errors[0] += 1
start = time.monotonic()
gevent.joinall([gevent.spawn(worker) for _ in range({concurrency})])
print(json.dumps({{"requests": done[0], "errors": errors[0], "elapsed": time.monotonic() - start}}))
"""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pin(child.pid, LOADGEN_CORE)
    out, _ = child.communicate(timeout=seconds + 60)
    return json.loads(out.strip().splitlines()[-1])


def measure(pid: int, url: str, headers: dict, seconds: float, concurrency: int) -> dict:
    loadgen(url, headers, 0.5, concurrency)  # warm up connections and caches
    before = cpu_seconds(pid)
    result = loadgen(url, headers, seconds, concurrency)
    used = cpu_seconds(pid) - before
    result["rps"] = result["requests"] / result["elapsed"]
    result["per_cpu_second"] = result["requests"] / used if used else float("nan")
    return result


def sequential_latency(url: str, headers: dict, count: int) -> list[float]:
    import http.client
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", parts.path, headers=headers)
        connection.getresponse().read()
        samples.append((time.perf_counter() - started) * 1000)
    connection.close()
    return samples


HELLO = """
import sys
from gevent import monkey; monkey.patch_all()
from novastress_locust.fakecloud.http import HTTPServer, Response
server = HTTPServer(lambda request: Response.json(200, {"hello": "world"}), "127.0.0.1", 0)
server.start()
print(server.address[1], flush=True)
server.serve_forever()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--live-servers", type=int, default=10000)
    args = parser.parse_args()

    with bench_cloud(SERVER_CORE) as bench:
        cloud, session, compute, headers = bench.cloud, bench.session, bench.compute, bench.headers
        flavor, image = bench.flavor, bench.image

        def boot(name: str) -> str:
            body = {"server": {"name": name, "flavorRef": flavor, "imageRef": image}}
            return session.post(compute + "/servers", json=body, headers=headers).json()["server"]["id"]

        server_id = boot("bench-0")
        # the baseline holds a full page of servers, so both list figures return 100
        body = bench.server_body("bench-bulk")
        bulk_create(compute + "/servers", headers, body, BASELINE_SERVERS - 1)
        show_url = f"{compute}/servers/{server_id}"
        cloud_small = measure(cloud.process.pid, show_url, headers, args.seconds, args.concurrency)
        list_url = f"{compute}/servers?limit=100"
        list_small = measure(cloud.process.pid, list_url, headers, args.seconds / 2, args.concurrency)
        latency = sequential_latency(show_url, headers, 300)

        started = time.monotonic()
        bulk_create(compute + "/servers", headers, body, args.live_servers - BASELINE_SERVERS)
        bulk_seconds = time.monotonic() - started
        cloud_big = measure(cloud.process.pid, show_url, headers, args.seconds, args.concurrency)
        list_big = measure(cloud.process.pid, list_url, headers, args.seconds / 2, args.concurrency)
        cloud_rss = rss_mb(cloud.process.pid)

    hello = subprocess.Popen([sys.executable, "-c", HELLO], stdout=subprocess.PIPE, text=True)
    try:
        port = int(hello.stdout.readline())
        pin(hello.pid, SERVER_CORE)
        hello_result = measure(hello.pid, f"http://127.0.0.1:{port}/", {}, args.seconds, args.concurrency)
    finally:
        hello.terminate()
        hello.wait()

    p99 = statistics.quantiles(latency, n=100)[98]
    print(f"{'figure':<52}{'req/s':>10}{'req/CPU-s':>12}")
    rows = [("hello world, same HTTP stack", hello_result),
            (f"GET /servers/{{id}}, {BASELINE_SERVERS} live servers", cloud_small),
            (f"GET /servers/{{id}}, {args.live_servers} live servers", cloud_big),
            (f"GET /servers?limit=100, {BASELINE_SERVERS} live servers", list_small),
            (f"GET /servers?limit=100, {args.live_servers} live servers", list_big)]
    for label, result in rows:
        print(f"{label:<52}{result['rps']:>10.0f}{result['per_cpu_second']:>12.0f}"
              + (f"  ({result['errors']} errors)" if result["errors"] else ""))
    print(f"created {args.live_servers - BASELINE_SERVERS} servers in {bulk_seconds:.1f} s; cloud RSS {cloud_rss:.0f} MB")
    print(f"sequential small GETs on one connection: median {statistics.median(latency):.2f} ms, "
          f"p99 {p99:.2f} ms, max {max(latency):.2f} ms, "
          f"{sum(1 for s in latency if s >= 35)} of {len(latency)} at >= 35 ms (Nagle/delayed-ACK stall)")
    print(f"show slowdown with {args.live_servers} servers: "
          f"{cloud_small['per_cpu_second'] / cloud_big['per_cpu_second']:.2f}x (target <= 2x); "
          f"list: {list_small['per_cpu_second'] / list_big['per_cpu_second']:.2f}x")
    print(f"target: >= 2000 req/s for GET /servers/{{id}} on one core; measured {cloud_small['rps']:.0f}")
    ratio = cloud_small["per_cpu_second"] / hello_result["per_cpu_second"]
    figure("embedded cloud GET /servers/{id} on one core", ">= 2000 req/s",
           f"{cloud_small['rps']:.0f} req/s ({cloud_small['per_cpu_second']:.0f}/CPU-s; hello world "
           f"{hello_result['per_cpu_second']:.0f}/CPU-s)", ratio, cloud_small["rps"] >= 2000,
           "ratio: req per CPU-second vs hello world on the same HTTP stack")
    slowdown = cloud_small["per_cpu_second"] / cloud_big["per_cpu_second"]
    figure(f"embedded cloud GET /servers/{{id}}, {args.live_servers} live servers", "<= 2x slowdown",
           f"{cloud_big['rps']:.0f} req/s ({cloud_big['per_cpu_second']:.0f}/CPU-s)", 1 / slowdown,
           slowdown <= 2, f"ratio: req per CPU-second vs {BASELINE_SERVERS} live servers")
    print(f"ratio: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
