"""What every embedded service shares: routes, the per-request call, API errors."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

from .http import Request, Response
from .logs import LogContext

if TYPE_CHECKING:  # pragma: no cover
    from .app import Cloud
    from .identity import Token

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
GLOBAL_REQUEST_ID_RE = re.compile(
    r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NOVA_ERROR_TYPE = "application/json; charset=UTF-8"


class ApiError(Exception):
    """An error answer; each service renders it in its own body format."""

    def __init__(self, status: int, message: str, kind: str | None = None,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers or []


@dataclass
class Call:
    """One API request as a service sees it."""

    request: Request
    request_id: str
    global_request_id: str | None
    started: float
    token: "Token | None" = None
    microversion: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    legacy: bool = False              # Nova's /v2/ (v2.0 compatible): no microversion, none reported
    url_project: str | None = None    # a project id in the URL (/v2.1/{project_id}/servers)
    injected: str | None = None       # a chaos status rule's fault: raised once the call is parsed

    @property
    def log_context(self) -> LogContext:
        token = self.token
        return LogContext(self.request_id, self.global_request_id,
                          token.user_id if token else None, token.project_id if token else None)

    @property
    def ids(self) -> list[str]:
        """The request ids a log line about this call carries."""
        return [i for i in (self.global_request_id, self.request_id) if i]

    def body(self) -> dict:
        from .http import MalformedJSON
        try:
            payload = self.request.json()
        except MalformedJSON as exc:
            raise ApiError(400, f"Malformed request body: {exc}", "malformed") from None
        return payload


Handler = Callable[..., Response]


@dataclass
class Route:
    method: str
    regex: re.Pattern
    handler: Handler
    auth: bool


class Router:
    """Path templates such as `/servers/{server_id}/action` mapped to handlers."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler, auth: bool = True) -> None:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template.rstrip("/") or "/")
        self.routes.append(Route(method, re.compile(f"^{pattern}/?$"), handler, auth))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, path_exists): path_exists without route means 405."""
        path_exists = False
        for route in self.routes:
            found = route.regex.match(path)
            if found:
                path_exists = True
                if route.method == method or (method == "HEAD" and route.method == "GET"):
                    return route, found.groupdict(), True
        return None, {}, path_exists


class Service:
    """Base of the embedded services: subclasses register routes in `setup()`."""

    name = "service"
    prefix = "/"
    log_name = "nova-api"

    def __init__(self, cloud: "Cloud") -> None:
        self.cloud = cloud
        self.router = Router()
        self.setup()

    def setup(self) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self.cloud.base_url + self.prefix

    def route(self, method: str, template: str, auth: bool = True):
        def register(handler: Handler) -> Handler:
            self.router.add(method, template, handler, auth)
            return handler
        return register

    # -- request flow ------------------------------------------------------
    def dispatch(self, call: Call, path: str) -> Response:
        route, params, exists = self.router.match(call.request.method, path)
        if route is None:
            if exists:
                raise ApiError(405, "The method is not allowed for the requested URL.", "notallowed")
            raise ApiError(404, "The resource could not be found.", "notfound")
        if route.auth:
            call.token = self.cloud.identity.authenticate(call.request.header("x-auth-token"))
        call.params = params
        self.before(call)
        if call.injected:
            # after auth and microversion: the 5xx carries the headers a real one does
            raise RuntimeError(call.injected)
        return route.handler(call, **params)

    def before(self, call: Call) -> None:
        """Per-service checks after auth (e.g. microversion negotiation)."""

    def decorate(self, call: Call, response: Response) -> None:
        """Per-service response headers."""
        response.headers.append(("x-openstack-request-id", call.request_id))

    def error(self, call: Call, error: ApiError) -> Response:
        return Response.json(error.status, {"error": {"code": error.status, "message": error.message,
                                                       "title": _title(error.status)}},
                             error.headers)

    def finished(self, call: Call, response: Response) -> None:
        """Called after every request (request logging)."""

    def require_admin(self, call: Call) -> None:
        if not (call.token and call.token.is_admin):
            raise ApiError(403, "Policy doesn't allow this operation to be performed.", "forbidden")

    def log(self, call: Call | None, level: str, logger: str, message: str, **kw) -> None:
        self.cloud.logs[self.log_name].write(level, logger, message,
                                             call.log_context if call else None, **kw)


def _title(status: int) -> str:
    from .http import REASONS
    return REASONS.get(status, "Error")


def now_iso(ts: float | None = None, micro: bool = False) -> str:
    ts = time.time() if ts is None else ts
    if micro:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1e6) % 1000000:06d}"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_time(value: str) -> float | None:
    """An ISO 8601 time of a query string (its `+` read as a space) as a timestamp, or None."""
    text = value.strip().replace(" ", "+") if value else ""
    if not text:
        return None
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def webob_error(accept: str | None, status: int, explanation: str, headers=None) -> Response:
    """An error as webob renders one (Glance's errors): its HTML page unless the Accept header
    prefers JSON (`{"message", "code", "title"}`), plain text when it takes neither. Without an
    Accept header, or with */* (keystoneauth sends none), it is the HTML page."""
    title = _title(status)
    code = f"{status} {title}"
    body = f"{explanation}<br /><br />\n\n\n"
    offer = _webob_offer(accept or "")
    if offer == "application/json":
        return Response.json(status, {"message": body, "code": code, "title": title}, headers)
    if offer == "text/html":
        page = (f"<html>\n <head>\n  <title>{code}</title>\n </head>\n <body>\n  <h1>{code}</h1>\n  {body}\n"
                f" </body>\n</html>")
        return Response(status, page.encode(), list(headers or ()), "text/html; charset=UTF-8")
    return Response(status, f"{code}\n\n{explanation}\n\n   ".encode(), list(headers or ()),
                    "text/plain; charset=UTF-8")


def _webob_offer(accept: str) -> str:
    """text/html or application/json, whichever the Accept header rates higher (HTML on a tie,
    webob's order); text/plain when it takes neither."""
    if not accept.strip():
        return "text/html"
    best, best_q = "text/plain", 0.0
    for offer in ("text/html", "application/json"):
        kind = offer.split("/")[0]
        q = 0.0
        for part in accept.split(","):
            media, *params = [piece.strip() for piece in part.split(";")]
            if media in (offer, f"{kind}/*", "*/*"):
                weight = next((p[2:] for p in params if p.startswith("q=")), "1")
                try:
                    q = max(q, float(weight))
                except ValueError:
                    continue
        if q > best_q:
            best, best_q = offer, q
    return best
