"""A small HTTP/1.1 server on gevent: keep-alive, TCP_NODELAY, one sendall per response.

The embedded cloud must answer thousands of small requests a second on one
core; a WSGI stack costs more than the cloud's own logic, so requests are
parsed here directly.
"""
from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Callable
from urllib.parse import parse_qs, unquote

from gevent.server import StreamServer

REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Found",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict",
    411: "Length Required", 413: "Request Entity Too Large", 415: "Unsupported Media Type",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}
MAX_HEADER_LINES = 200
MAX_BODY = 64 * 1024 * 1024


class MalformedJSON(ValueError):
    """The request body is not valid JSON."""


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""
    remote_addr: str = "127.0.0.1"
    path: str = ""
    query_string: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        path, _, self.query_string = self.target.partition("?")
        self.path = unquote(path)
        self.query = parse_qs(self.query_string, keep_blank_values=True) if self.query_string else {}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedJSON(str(exc)) from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = "application/json"
    # fault injection: drop the connection with a TCP reset instead of answering
    abort: bool = False

    @classmethod
    def json(cls, status: int, payload, headers=None,
             content_type: str = "application/json") -> "Response":
        body = b"" if payload is None else json.dumps(payload, separators=(", ", ": ")).encode()
        return cls(status, body, list(headers or ()), content_type if payload is not None else None)


_date_cache = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True)
    return _date_cache[1]


def _encode(response: Response, keep_alive: bool, server_name: str) -> bytes:
    reason = REASONS.get(response.status, "Unknown")
    lines = [f"HTTP/1.1 {response.status} {reason}", f"Server: {server_name}",
             f"Date: {_http_date()}",
             "Connection: keep-alive" if keep_alive else "Connection: close"]
    if response.content_type and response.status != 204:
        lines.append(f"Content-Type: {response.content_type}")
    if response.status != 204:
        lines.append(f"Content-Length: {len(response.body)}")
    for name, value in response.headers:
        lines.append(f"{name}: {value}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + response.body if response.status != 204 else head


class HTTPServer:
    """Serves `app(request) -> Response` on a gevent StreamServer."""

    def __init__(self, app: Callable[[Request], Response], host: str = "127.0.0.1",
                 port: int = 0, server_name: str = "novastress-fakecloud",
                 listener: socket.socket | None = None) -> None:
        self.app = app
        self.server_name = server_name
        self.server = StreamServer(listener or (host, port), self._handle, backlog=1024)

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address[:2]

    def start(self) -> None:
        self.server.start()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self, timeout: float = 1.0) -> None:
        self.server.stop(timeout=timeout)

    def _handle(self, sock: socket.socket, address) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        rfile = sock.makefile("rb", buffering=65536)
        remote = address[0] if address else "127.0.0.1"
        try:
            while True:
                request = self._read_request(rfile, remote)
                if request is None:
                    return
                if isinstance(request, Response):
                    sock.sendall(_encode(request, False, self.server_name))
                    return
                try:
                    response = self.app(request)
                except Exception:  # the app logs its own errors; never drop the connection silently
                    response = Response.json(500, {"error": {"code": 500, "message": "internal error"}})
                if response.abort:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                keep_alive = request.header("connection", "").lower() != "close"
                sock.sendall(_encode(response, keep_alive, self.server_name))
                if not keep_alive:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            try:
                rfile.close()
                sock.close()
            except OSError:
                pass

    def _read_request(self, rfile, remote: str):
        line = rfile.readline(65537)
        while line in (b"\r\n", b"\n"):
            line = rfile.readline(65537)
        if not line:
            return None
        try:
            method, target, _version = line.decode("latin-1").split()
        except ValueError:
            return Response.json(400, {"error": {"code": 400, "message": "malformed request line"}})
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            raw = rfile.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(rfile.read(size))
                rfile.readline()
            body = b"".join(chunks)
        elif "content-length" in headers:
            length = int(headers["content-length"] or 0)
            if length > MAX_BODY:
                return Response.json(413, {"error": {"code": 413, "message": "body too large"}})
            body = rfile.read(length) if length else b""
        return Request(method.upper(), target, headers, body, remote)
