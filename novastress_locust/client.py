"""The one way the load reaches the cloud: OpenStackClient, a keystoneauth session whose every
call is a Locust request event, with the run's shared auth and catalog.

    client = OpenStackClient(state, state.ensure_target(), "ServerCreateDestroy-1")
    servers = client.compute.get("/servers/detail").json()["servers"]     # compute GET /servers/detail
    client.compute.delete(f"/servers/{server_id}", expect=(204, 404))     # ApiError on anything else

It stands on cloud.py's CloudSession (one credential's session: catalog URLs, token, roles);
RetryingClient there makes the calls that are not load (sweep, cleanup, fault checks).

Errors: ApiError (an unexpected answer; one line with the request id), `error_message()` (the message
of any OpenStack error body), `generalize()` (ids and names out, so equal failures group).
"""
from __future__ import annotations

import re
import time
from typing import Any

from .cloud import ApiError, CloudSession
from .credentials import CloudTarget
from .errors import error_message
from .requestlog import ActionRecord
from .state import PreflightError, RunState, request_index
from .waiter import BatchedServerWaiter, PerServerWaiter

_ID_SEGMENT = re.compile(r"^(?:[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                         r"[0-9a-fA-F]{12}|\d+|req-[0-9a-f-]{36})$")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GENERAL = ((re.compile(rf"\breq-{_UUID}"), "{request_id}"), (re.compile(_UUID), "{id}"))


class Failure(Exception):
    """What a request event reports: the error with names and ids generalized, so equal
    failures group into one row of Locust's error table (the specifics go to the log)."""


def generalize(text: str, names: re.Pattern | None = None) -> Failure:
    if names is not None:
        text = names.sub("{name}", text)
    for pattern, replacement in _GENERAL:
        text = pattern.sub(replacement, text)
    return Failure(text)


def template(path: str) -> str:
    """`/servers/3f1c.../action` -> `/servers/{id}/action`: ids must not explode the stats table."""
    return "/".join("{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/"))


def request_id_of(response) -> str | None:
    return response.headers.get("x-openstack-request-id") or response.headers.get("x-compute-request-id")


class ServiceClient:
    """One service of one user: `compute.get("/servers/detail")`, URLs from the catalog."""

    def __init__(self, client: "OpenStackClient", service: str, endpoint: str,
                 headers: dict[str, str] | None = None) -> None:
        self.client, self.service, self.endpoint = client, service, endpoint
        self.headers = headers or {}

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                expect: tuple[int, ...] = (200,), name: str | None = None):
        return self.client.call(self, method, path, json=json, params=params, expect=expect, name=name)

    def get(self, path: str, *, params: dict | None = None, expect: tuple[int, ...] = (200,), name: str | None = None):
        return self.request("GET", path, params=params, expect=expect, name=name)

    def post(self, path: str, *, json: Any = None, expect: tuple[int, ...] = (200, 201, 202), name: str | None = None):
        return self.request("POST", path, json=json, expect=expect, name=name)

    def delete(self, path: str, *, expect: tuple[int, ...] = (204,), name: str | None = None):
        return self.request("DELETE", path, expect=expect, name=name)


class OpenStackClient(CloudSession):
    """A keystoneauth Session (shared auth plugin, own connections) whose calls fire Locust events."""

    def __init__(self, state: RunState, target: CloudTarget, user_name: str) -> None:
        super().__init__(target, state.auth(target), timeout=getattr(state.options, "request_timeout", None),
                         transport=getattr(state.options, "transport", "requests"), endpoints=state.endpoints)
        self.state = state
        self.user_name = user_name
        self.events = state.environment.events
        self.action: ActionRecord | None = None
        self.index = request_index(state.environment)
        self._services: dict[object, ServiceClient] = {}  # by short name and headers
        self._names: dict[tuple, str] = {}

    # -- services -------------------------------------------------------------
    def service(self, service: str, short: str, headers: dict[str, str] | None = None) -> ServiceClient:
        """The client of a service the catalog lists; PreflightError (one line) when it does not."""
        key = (short, tuple(sorted((headers or {}).items())))
        if key not in self._services:
            endpoint = self.endpoint(service)
            if endpoint is None:
                raise PreflightError(f"no {service} service in the catalog of {self.target.who} (interface "
                                     f"{self.target.interface}, region {self.target.region_name or 'any'})")
            self._services[key] = ServiceClient(self, short, endpoint, headers)
        return self._services[key]

    @property
    def compute(self) -> ServiceClient:
        microversion = self.state.options.compute_microversion
        return self.service("compute", "compute", {"OpenStack-API-Version": f"compute {microversion}"})

    @property
    def image(self) -> ServiceClient:
        return self.service("image", "image")

    @property
    def network(self) -> ServiceClient:
        return self.service("network", "network")

    @property
    def identity(self) -> ServiceClient:
        """Keystone v3 at the auth URL's root (catalogs differ on whether /v3 is part of it)."""
        if "identity" not in self._services:
            root = re.sub(r"/v3/?$", "", str(self.target.auth.get("auth_url", "")).rstrip("/"))
            self._services["identity"] = ServiceClient(self, "identity", root)
        return self._services["identity"]

    @property
    def volume(self) -> ServiceClient:
        """Cinder v3, under whichever service type the catalog lists it."""
        return self.service("volume", "volume")

    def request(self, service: str, method: str, path: str, *, params: dict | None = None, json: Any = None,
                expect: tuple[int, ...] = (200,), name: str | None = None, microversion: str | None = None):
        """A call by service type (compute, image, network, volume, identity): what kinds.Kind calls."""
        client = self.service(service, service, {"OpenStack-API-Version": f"{service} {microversion}"}) \
            if microversion else getattr(self, service)
        return self.call(client, method, path, json=json, params=params, expect=expect, name=name)

    # -- the one place HTTP happens ----------------------------------------
    def call(self, service: ServiceClient, method: str, path: str, *, json: Any, params: dict | None,
             expect: tuple[int, ...], name: str | None):
        if name is None:
            key = (service.service, method, path, tuple(params) if params else ())
            name = self._names.get(key)
            if name is None:
                query = "?" + "&".join(sorted(params)) if params else ""
                name = f"{service.service} {method} {template(path)}{query}"
                if len(self._names) < 10_000:  # paths with ids are templated once per id
                    self._names[key] = name
        headers = dict(service.headers)
        action = self.action
        if action is not None:
            headers["X-OpenStack-Request-ID"] = action.global_request_id
        started = time.perf_counter()
        try:
            response = self.send(service.endpoint + path, method, json=json, params=params, headers=headers)
            if response.status_code == 401:
                # the shared token expired or was revoked: one user re-authenticates, all retry once
                self.state.token_rejected(self.target, response.request.headers.get("X-Auth-Token"))
                response = self.send(service.endpoint + path, method, json=json, params=params, headers=headers)
        except Exception as exc:  # keystoneauth's ConnectFailure, Unauthorized at re-auth, SSLError...
            error = ApiError(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            elapsed = (time.perf_counter() - started) * 1000
            if action is not None:
                action.called(method, name, None, None, self.user_name, elapsed=elapsed)
            self.events.request.fire(request_type=method, name=name, response_time=elapsed,
                                     response_length=0, exception=error, context={})
            raise error from None
        elapsed = (time.perf_counter() - started) * 1000
        request_id = request_id_of(response)
        if action is not None and request_id:
            action.request_ids.append(request_id)
            self.index.note(action, request_id)
        error = None
        if response.status_code not in expect:
            error = ApiError(f"{name} -> {response.status_code} {error_message(response)}"
                             f"{' [' + request_id + ']' if request_id else ''}", response.status_code)
        if action is not None:
            # a server action's name (its body's one key): what a reproducer replays
            what = next(iter(json)) if path.endswith("/action") and isinstance(json, dict) and len(json) == 1 else ""
            action.called(method, name, response.status_code, request_id, self.user_name, what, elapsed)
        context: dict[str, Any] = {"request_id": request_id}
        if error is not None:
            # what a finding (findings.py) keeps of it: the answer as said, and whose it was
            context.update(status=response.status_code, message=str(error))
            if action is not None:
                context.update(action=action.action, user=action.who, global_request_id=action.global_request_id)
        self.events.request.fire(request_type=method, name=name, response_time=elapsed,
                                 response_length=len(response.content), context=context,
                                 exception=error and generalize(str(error), self.state.names))
        if error is not None:
            raise error
        return response

    # -- preflight helpers ----------------------------------------------------
    def authenticate(self) -> None:
        """A token now, and the catalog must have compute: say so now, not in every user."""
        super().authenticate()
        self.compute

    def find_image(self, wanted: str | None) -> str:
        if not self.has_service("image"):
            if wanted:
                return wanted  # Nova looks it up in its own Glance
            raise PreflightError(f"the catalog of {self.target.who} has no image service to choose an "
                                 f"image from: give --image with an image id")
        images = self.image.get("/v2/images", params={"limit": "1000"}).json().get("images", [])
        return _pick("image", wanted, images, "--image", next((i for i in images if i.get("status") == "active"), None))

    def find_flavor(self, wanted: str | None) -> str:
        flavors = self.compute.get("/flavors/detail").json().get("flavors", [])
        return _pick("flavor", wanted, flavors, "--flavor",
                     min(flavors, key=lambda f: (f.get("vcpus", 0), f.get("ram", 0), f.get("disk", 0)), default=None))

    def find_network(self, wanted: str | None) -> str:
        """A network id, or "none" (microversion 2.37+) when the project has no network."""
        if wanted in ("none", "auto"):
            return wanted
        if not self.has_service("network"):
            if wanted:
                raise PreflightError(f"--network {wanted!r}: the catalog of {self.target.who} has no "
                                     f"network service; leave --network out to boot without a network")
            return "none"
        networks = self.network.get("/v2.0/networks").json().get("networks", [])
        if wanted:
            return _pick("network", wanted, networks, "--network")
        usable = [n for n in networks if not n.get("router:external")]
        project_id = self.project_id
        own = [n for n in usable if n.get("project_id") == project_id]
        for candidates in (own, usable):
            if len(candidates) == 1:
                return candidates[0]["id"]
        if not usable:
            return "none"
        raise PreflightError(f"the project sees {len(usable)} networks "
                             f"({', '.join(n.get('name') or n['id'] for n in usable[:6])}); "
                             f"choose one with --network")


def _pick(kind: str, wanted: str | None, items: list[dict], option: str, default: dict | None = None) -> str:
    if wanted:
        found = ([item for item in items if item.get("id") == wanted]
                 or [item for item in items if item.get("name") == wanted])
        if len(found) == 1:
            return found[0]["id"]
        if len(found) > 1:
            raise PreflightError(f"{option} {wanted!r} matches {len(found)} {kind}s; give its id")
        names = ", ".join(sorted(str(item.get("name") or item.get("id")) for item in items)[:8])
        raise PreflightError(f"{option} {wanted!r} matches no {kind}; available: {names or 'none'}")
    if default is None:
        raise PreflightError(f"the cloud has no usable {kind}; create one or name it with {option}")
    return default["id"]


def shared_waiter(state: RunState, client: OpenStackClient, kind: str | None = None) -> Any:
    """The waiter of this process for the client's credential (`kind` overrides --waiter)."""
    kind = kind or state.options.waiter
    key = f"{client.target.key}/{kind}"
    if key not in state.waiters:
        interval = state.options.status_poll_interval
        # batched: its own client; the shared poll belongs to no user's action, so neither its
        # request ids nor its failures are pinned on the action of the user that came first
        state.waiters[key] = PerServerWaiter(client.compute, interval) if kind == "per-server" else \
            BatchedServerWaiter(OpenStackClient(state, client.target, "waiter").compute, interval)
    return state.waiters[key]


def microversion_at_least(version: str, major: int, minor: int) -> bool:
    if version == "latest":
        return True
    try:
        have_major, have_minor = (int(part) for part in str(version).split("."))
    except ValueError:
        return False
    return (have_major, have_minor) >= (major, minor)
