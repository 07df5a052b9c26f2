"""A faster HTTP transport under keystoneauth: requests' API, geventhttpclient's sockets.

    from novastress_locust.transport import use_transport
    session = target.session(auth)           # a keystoneauth Session
    use_transport(session, "fast")           # its calls now go through FastSession

keystoneauth sends every call through `requests.Session.request`, and most of a call's
client CPU is requests' own machinery: a cookie jar (with its lock) per request and per
response, merging session/environment settings, hooks, urllib3's connection pool and
response wrapping. `FastSession` is a `requests.Session` whose plain calls (the only kind
keystoneauth makes: method, URL, params, headers, a str/bytes body, timeout, verify, cert,
no redirects) go straight to a pooled geventhttpclient `HTTPClient` per (scheme, host,
port, timeout, TLS settings) and come back as a `requests.Response` with the same status,
case-insensitive headers, `.content`, `.text`, `.json()`, `.request` and `.elapsed`.
Failures raise requests' own exceptions (ConnectionError, ConnectTimeout, ReadTimeout,
SSLError), so keystoneauth maps them to ConnectFailure / ConnectTimeout / SSLError as
before. Anything else (cookies, auth objects, streaming, redirects, files, proxies) takes
the plain requests path of the same session.

What it does not do that requests does: keep cookies between calls (OpenStack APIs do not
use them), ask for compressed bodies (it sends no Accept-Encoding, and still decodes a
gzip/deflate body a server sends anyway), and read proxy settings from the environment
(`use_transport` keeps requests when a proxy applies to the cloud).
"""
from __future__ import annotations

import datetime
import json as jsonlib
import os
import re
import select
import ssl
import time
import zlib
from typing import Any
from functools import lru_cache
from urllib.parse import urlsplit

import gevent.monkey
import gevent.ssl
import requests
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError
from requests.models import RequestEncodingMixin
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers, requote_uri

TRANSPORTS = ("requests", "fast")
# connections per (host, port) of one session: what requests' pool keeps (pool_maxsize)
POOL_SIZE = 10
# keyword arguments the fast path understands; any other sends the call through requests
_FAST_KWARGS = frozenset(("params", "data", "headers", "timeout", "verify", "cert", "allow_redirects"))
# a URL made only of these needs no requoting (requests' requote_uri would leave it as is)
_PLAIN_URL = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$")


class _Connecting(Exception):
    """Wraps an error raised while opening a connection: a timeout there is a ConnectTimeout."""


class FastResponse(requests.Response):
    """A requests.Response built without the per-response cookie jar (made on first use)."""

    def __init__(self, status_code: int | None = None, reason: str | None = None, headers: Any = None,
                 content: Any = False, url: str | None = None, request: Any = None,
                 elapsed: datetime.timedelta = datetime.timedelta(0)) -> None:
        # requests.Response.__init__ is skipped on purpose
        self._content = content
        self._content_consumed = True
        self._next = None
        self._cookies = None
        self.status_code = status_code
        self.headers = CaseInsensitiveDict() if headers is None else headers
        self.raw = None
        self.url = url
        self.encoding = get_encoding_from_headers(self.headers)
        self.history = []
        self.reason = reason
        self.elapsed = elapsed
        self.request = request

    @property
    def cookies(self) -> requests.cookies.RequestsCookieJar:
        if self._cookies is None:
            self._cookies = requests.cookies.cookiejar_from_dict({})
        return self._cookies

    @cookies.setter
    def cookies(self, value) -> None:
        self._cookies = value

    def json(self, **kwargs: Any) -> Any:
        # json.loads reads UTF-8/16/32 bytes itself: no decode to str first. Anything odd
        # (a BOM, another charset, not JSON) goes to requests for its exact behaviour and error
        try:
            return jsonlib.loads(self._content, **kwargs)
        except (ValueError, TypeError):
            return super().json(**kwargs)


class FastSession(requests.Session):
    """A requests.Session that sends keystoneauth's plain calls through geventhttpclient."""

    def __init__(self, pool_size: int = POOL_SIZE) -> None:
        super().__init__()
        self.trust_env = False
        self.pool_size = pool_size
        self._clients: dict[tuple, HTTPClient] = {}
        # no Accept-Encoding: a compressed answer would only cost us CPU to inflate
        self.headers.pop("Accept-Encoding", None)
        self.fast_calls = 0
        self.fallback_calls = 0
        self.connections = 0          # TCP (or TLS) connections opened by the fast path

    def request(self, method: str, url: str, params: Any = None, data: Any = None,
                headers: Any = None, **kwargs: Any) -> requests.Response:
        if (kwargs.keys() - _FAST_KWARGS or kwargs.get("allow_redirects", True)
                or not isinstance(data, (str, bytes, type(None)))
                or not url.startswith(("http://", "https://")) or "@" in url.split("/", 3)[2]
                or _has_cookies(self.cookies)):
            self.fallback_calls += 1
            return super().request(method, url, params=params, data=data, headers=headers, **kwargs)
        self.fast_calls += 1
        # both are part of a pool's key: lists (as JSON config gives them) become tuples
        cert, timeout = (tuple(value) if isinstance(value, list) else value
                         for value in (kwargs.get("cert"), kwargs.get("timeout")))
        return self._send(method.upper(), url, params, data, headers, timeout, kwargs.get("verify", True), cert)

    def _send(self, method: str, url: str, params: Any, body: str | bytes | None, headers: Any,
              timeout: Any, verify: bool | str, cert: Any) -> requests.Response:
        if params:
            # requests' own encoding: None values dropped, lists repeated, strings as they are
            query = RequestEncodingMixin._encode_params(params)
            if isinstance(query, bytes):
                query = query.decode("utf-8")
            if query:
                url += ("&" if "?" in url else "?") + query
        if not _PLAIN_URL.match(url):
            url = requote_uri(url)
        parts = urlsplit(url)
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        sent = CaseInsensitiveDict(self.headers)
        sent.update(headers or {})
        for name in [name for name, value in sent.items() if value is None]:
            del sent[name]
        if isinstance(body, str):
            body = body.encode("utf-8")

        prepared = requests.PreparedRequest()
        prepared.method, prepared.url, prepared.headers, prepared.body = method, url, sent, body
        client = self._client(parts, timeout, verify, cert)
        started = time.perf_counter()
        try:
            answer = client.request(method, target, body=body or b"", headers=dict(sent.items()))
            content = answer.read()
        except _Connecting as wrapped:
            error = wrapped.args[0]
            if isinstance(error, ssl.SSLError):
                raise requests.exceptions.SSLError(error, request=prepared) from None
            if isinstance(error, TimeoutError):
                raise requests.exceptions.ConnectTimeout(error, request=prepared) from None
            raise requests.exceptions.ConnectionError(error, request=prepared) from None
        except TimeoutError as error:
            raise requests.exceptions.ReadTimeout(error, request=prepared) from None
        except ssl.SSLError as error:
            raise requests.exceptions.SSLError(error, request=prepared) from None
        except (OSError, HTTPParseError) as error:
            # the cloud closed or broke the connection mid-answer
            raise requests.exceptions.ConnectionError(error, request=prepared) from None

        received = CaseInsensitiveDict(answer.info().itermerged())
        coding = received.get("Content-Encoding")
        if coding and content:
            content = _inflate(coding, content)
        return FastResponse(answer.status_code, answer.status_message, received, content, url, prepared,
                            datetime.timedelta(seconds=time.perf_counter() - started))

    def _client(self, parts, timeout: Any, verify: bool | str, cert: Any) -> HTTPClient:
        """The pooled client of these settings, made on first use."""
        secure = parts.scheme == "https"
        key = (parts.scheme, parts.netloc, timeout, verify if secure else None, cert if secure else None)
        if key in self._clients:
            return self._clients[key]
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        options: dict[str, Any] = {}
        if secure:
            context = _tls_context(verify, cert)
            # the factory is asked for a context: the shared one for these settings
            options = {"ssl_options": {}, "ssl_context_factory": lambda cafile=None: context,
                       "insecure": not context.check_hostname}
        client = HTTPClient(parts.hostname, port=parts.port or (443 if secure else 80), ssl=secure,
                            concurrency=self.pool_size, connection_timeout=connect,
                            network_timeout=read, **options)
        # the pool opens connections inside request(): tag what fails there as "connecting"
        pool = getattr(client, "_connection_pool", None)
        create = getattr(pool, "_create_socket", None)
        if create is not None:
            def connecting():
                self.connections += 1
                try:
                    return create()
                except (OSError, RuntimeError) as error:
                    raise _Connecting(error) from error
            pool._create_socket = connecting
        if hasattr(pool, "_is_socket_alive") and _POLL is not None:
            pool._is_socket_alive = _socket_alive
        self._clients[key] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        super().close()


def _has_cookies(jar) -> bool:
    # a CookieJar's len() walks every cookie; its domain table is empty when it has none
    table = getattr(jar, "_cookies", None)
    return bool(table) if isinstance(table, dict) else len(jar) > 0


# the blocking module's poll, not gevent's: asked with a zero timeout, it never waits
_POLL = gevent.monkey.get_original("select", "poll") if hasattr(select, "POLLIN") else None


def _socket_alive(sock) -> bool:
    """Is an idle pooled connection still usable (not closed by the cloud, nothing unread)?

    geventhttpclient asks `select()`, which refuses descriptors >= 1024 (FD_SETSIZE): past
    ~1,000 open connections in a worker every call then took a fresh connection (a connect,
    a DNS lookup in gevent's thread pool). poll() has no such limit.
    """
    if sock is None:
        return False
    try:
        descriptor = sock.fileno()
        if descriptor < 0:
            return False
        poller = _POLL()
        poller.register(descriptor, select.POLLIN | select.POLLPRI)
        # readable while idle: the cloud closed it (FIN) or left bytes behind; HUP/ERR too
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


@lru_cache(maxsize=16)
def _tls_context(verify: bool | str, cert: Any) -> ssl.SSLContext:
    """What requests does with `verify` and `cert`: a CA file or directory, certifi, or no checks.

    One context per setting in the process: loading a CA bundle costs milliseconds and
    memory, and every user's session of one cloud uses the same settings.
    """
    if verify is False:
        context = gevent.ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        bundle = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
        context = gevent.ssl.create_default_context(**{"capath" if os.path.isdir(bundle) else "cafile": bundle})
    if cert:
        certfile, keyfile = cert if isinstance(cert, tuple) else (cert, None)
        context.load_cert_chain(certfile, keyfile)
    return context


def _inflate(coding: str, content: bytes) -> bytes:
    coding = coding.strip().lower()
    try:
        if coding in ("gzip", "x-gzip"):
            return zlib.decompress(content, 16 + zlib.MAX_WBITS)
        if coding == "deflate":
            try:
                return zlib.decompress(content)
            except zlib.error:  # raw deflate, as some servers send it
                return zlib.decompress(content, -zlib.MAX_WBITS)
    except zlib.error as error:
        raise requests.exceptions.ContentDecodingError(error) from None
    return content


def use_transport(session, kind: str) -> None:
    """Put transport `kind` ("requests" or "fast") under a keystoneauth Session.

    "requests" leaves the session as it is. "fast" replaces its requests.Session by a
    FastSession unless that session routes through a proxy from the environment (then
    requests keeps the call, as geventhttpclient is not told about proxies here).
    """
    if kind not in TRANSPORTS:
        raise ValueError(f"--transport must be one of {', '.join(TRANSPORTS)}, not {kind!r}")
    if kind == "requests":
        return
    current = session.session
    if isinstance(current, FastSession) or getattr(current, "trust_env", False):
        return
    session.session = FastSession()
    current.close()


__all__ = ["FastSession", "FastResponse", "TRANSPORTS", "use_transport"]
