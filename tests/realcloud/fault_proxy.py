"""A loopback HTTP proxy in front of one real service that answers the first N requests matching
a method and path with an error of its own, and passes everything else through unchanged (with
`rewrite`, after replacing text in the answers: a catalog's URL of another service).

    with FaultProxy("http://127.0.0.1:5000", fail=[("POST", "/v3/projects", 500, 2)]) as proxy:
        ...  # point the run's auth URL at proxy.url: its first two project creations get a 500
    proxy.injected   # how many answers it made up

A rule's path is a regular expression the whole request path, query included, must match. Run as
a script it serves until killed: `python fault_proxy.py UPSTREAM --fail POST /v3/projects 500 2
[--rewrite OLD NEW]` prints `listening on <port>`.
"""
from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "content-length", "host"}
START_TIMEOUT = 20.0


class FaultProxy:
    """The proxy as a child process (the tests' own process runs under gevent)."""

    def __init__(self, upstream: str, fail: list[tuple[str, str, int, int]],
                 rewrite: list[tuple[str, str]] = ()) -> None:
        self.upstream = upstream.rstrip("/")
        self.fail = fail
        self.rewrite = rewrite
        self.process: subprocess.Popen | None = None
        self.root = self.url = ""

    def __enter__(self) -> "FaultProxy":
        command = [sys.executable, __file__, self.upstream]
        for method, path, status, count in self.fail:
            command += ["--fail", method, path, str(status), str(count)]
        for old, new in self.rewrite:
            command += ["--rewrite", old, new]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        timer = threading.Timer(START_TIMEOUT, self.process.kill)   # a proxy that never says its port
        timer.start()
        try:
            line = self.process.stdout.readline()
        finally:
            timer.cancel()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the fault proxy did not start: {line!r} {self.process.stderr.read()[-2000:]}")
        self.root = f"http://127.0.0.1:{int(line.split()[-1])}"
        self.url = self.root + urlsplit(self.upstream).path
        return self

    def __exit__(self, *_exc) -> None:
        self.process.terminate()
        try:
            out, _err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _err = self.process.communicate()
        self.injected = sum(1 for line in out.splitlines() if line.startswith("injected "))


def serve(upstream: str, fail: list[list[str]], rewrite: list[list[str]]) -> None:
    target = urlsplit(upstream)
    rules = [{"method": m.upper(), "path": re.compile(p), "status": int(s), "left": int(n)} for m, p, s, n in fail]
    replacements = [(old.encode(), new.encode()) for old, new in rewrite]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args) -> None:
            pass

        def _injected(self) -> int | None:
            with lock:
                for rule in rules:
                    if rule["method"] == self.command and rule["path"].fullmatch(self.path) and rule["left"] > 0:
                        rule["left"] -= 1
                        print(f"injected {rule['status']} {self.command} {self.path}", flush=True)
                        return rule["status"]
            return None

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _proxy(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            status = self._injected()
            if status is not None:
                error = {"error": {"code": status, "title": "Internal Server Error",
                                   "message": "made up by the test's fault proxy"}}
                self._answer(status, [("Content-Type", "application/json")], json.dumps(error).encode())
                return
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                # plain bodies, so that a rewrite finds its text
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP and k.lower() != "accept-encoding"}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                body = response.read()
                for old, new in replacements:
                    body = body.replace(old, new)
                self._answer(response.status, response.getheaders(), body)
            finally:
                connection.close()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _proxy

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", help="the service's URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--fail", nargs=4, action="append", default=[], metavar=("METHOD", "PATH", "STATUS", "COUNT"))
    parser.add_argument("--rewrite", nargs=2, action="append", default=[], metavar=("OLD", "NEW"))
    arguments = parser.parse_args()
    serve(arguments.upstream, arguments.fail, arguments.rewrite)
