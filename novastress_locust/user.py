"""NovaUser: a Locust user that drives OpenStack through a keystoneauth Session.

    class ServerCreateDestroy(NovaUser):
        threads = 8
        tasks = [server_create_destroy]

Every HTTP call fires a Locust request event named by its template
(`compute GET /servers/{id}`); every action is timed as a whole (`ACTION`) with Rally-style
atomic steps (`ATOMIC boot_server`), sends one global `X-OpenStack-Request-ID` on all its
calls and records every request id it saw. Every resource is named
`<prefix>-<run id>-...` and tracked by its user until it is deleted and gone: on a failed
action, at test stop, Ctrl-C, StopUser and quit.
"""
from __future__ import annotations

import logging
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import gevent
from gevent import GreenletExit
from locust import User, constant
from locust.exception import StopUser

from .credentials import CloudTarget, CredentialsError
from .plugin import Leak, PreflightError, RunState, run_state
from .requestlog import ActionRecord, request_index
from .waiter import ACTIVE, DELETED, WaitError

LOG = logging.getLogger("novastress")
_ID_SEGMENT = re.compile(r"^(?:[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                         r"[0-9a-fA-F]{12}|\d+|req-[0-9a-f-]{36})$")


class ApiError(Exception):
    """An OpenStack call answered something unexpected; str() is one line."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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


def error_message(response) -> str:
    """The message of an OpenStack error body (Nova, Keystone, Neutron, Glance, Cinder)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return text[0][:200] if text else response.reason or ""
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and "message" in value:
                return str(value["message"]).splitlines()[0][:300]
        if "message" in body:
            return str(body["message"]).splitlines()[0][:300]
    return str(body)[:200]


class ServiceClient:
    """One service of one user: `compute.get("/servers/detail")`, URLs from the catalog."""

    def __init__(self, client: "OpenStackClient", service: str, endpoint: str,
                 headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.service = service
        self.endpoint = endpoint
        self.headers = headers or {}

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                expect: tuple[int, ...] = (200,), name: str | None = None):
        return self.client.call(self, method, path, json=json, params=params, expect=expect, name=name)

    def get(self, path: str, *, params: dict | None = None, expect: tuple[int, ...] = (200,),
            name: str | None = None):
        return self.request("GET", path, params=params, expect=expect, name=name)

    def post(self, path: str, *, json: Any = None, expect: tuple[int, ...] = (200, 201, 202),
             name: str | None = None):
        return self.request("POST", path, json=json, expect=expect, name=name)

    def delete(self, path: str, *, expect: tuple[int, ...] = (204,), name: str | None = None):
        return self.request("DELETE", path, expect=expect, name=name)


class OpenStackClient:
    """A keystoneauth Session (shared auth plugin, own connections) whose calls fire Locust events."""

    def __init__(self, state: RunState, target: CloudTarget, user_name: str) -> None:
        self.state = state
        self.target = target
        self.user_name = user_name
        self.events = state.environment.events
        self.session = target.session(state.auth(target))
        self.action: ActionRecord | None = None
        self.index = request_index(state.environment)
        self._services: dict[str, ServiceClient] = {}
        self._names: dict[tuple, str] = {}

    # -- services -------------------------------------------------------------
    def service(self, service_type: str, short: str, headers: dict[str, str] | None = None) -> ServiceClient:
        if short not in self._services:
            endpoint = self.state.endpoint(self.session, self.target, service_type)
            self._services[short] = ServiceClient(self, short, endpoint, headers)
        return self._services[short]

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

    # -- the one place HTTP happens ----------------------------------------
    def call(self, service: ServiceClient, method: str, path: str, *, json: Any, params: dict | None,
             expect: tuple[int, ...], name: str | None):
        if name is None:
            key = (service.service, method, path, tuple(params) if params else ())
            name = self._names.get(key)
            if name is None:
                name = f"{service.service} {method} {template(path)}"
                if params:
                    name += "?" + "&".join(sorted(params))
                if len(self._names) < 10_000:  # paths with ids are templated once per id
                    self._names[key] = name
        headers = dict(service.headers)
        action = self.action
        if action is not None:
            headers["X-OpenStack-Request-ID"] = action.global_request_id
        started = time.perf_counter()
        try:
            response = self.session.request(service.endpoint + path, method, json=json, params=params,
                                            headers=headers, raise_exc=False, allow_reauth=False)
            if response.status_code == 401:
                # the shared token expired or was revoked: one user re-authenticates, all retry once
                self.state.token_rejected(self.target, response.request.headers.get("X-Auth-Token"))
                response = self.session.request(service.endpoint + path, method, json=json,
                                                params=params, headers=headers, raise_exc=False,
                                                allow_reauth=False)
        except Exception as exc:  # keystoneauth's ConnectFailure, Unauthorized at re-auth, SSLError...
            error = ApiError(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            self.events.request.fire(request_type=method, name=name,
                                     response_time=(time.perf_counter() - started) * 1000,
                                     response_length=0, exception=error, context={})
            raise error from None
        elapsed = (time.perf_counter() - started) * 1000
        request_id = response.headers.get("x-openstack-request-id") or \
            response.headers.get("x-compute-request-id")
        if action is not None and request_id:
            action.request_ids.append(request_id)
            self.index.note(action, request_id)
        error = None
        if response.status_code not in expect:
            error = ApiError(f"{name} -> {response.status_code} {error_message(response)}"
                             f"{' [' + request_id + ']' if request_id else ''}", response.status_code)
        self.events.request.fire(request_type=method, name=name, response_time=elapsed,
                                 response_length=len(response.content),
                                 exception=error and generalize(str(error), self.state.names),
                                 context={"request_id": request_id})
        if error is not None:
            raise error
        return response

    # -- preflight helpers ----------------------------------------------------
    def authenticate(self) -> None:
        """Get a token now: bad credentials or an unreachable auth URL become one clear line."""
        from keystoneauth1 import exceptions as ks

        who = f"{self.target.who} ({self.target.source})"
        # keystoneauth warns about failed discovery before raising; our one line says it all
        discovery_log = logging.getLogger("keystoneauth.identity.generic.base")
        level = discovery_log.level
        discovery_log.setLevel(logging.ERROR)
        try:
            self.session.get_token()
        except ks.Unauthorized:
            raise CredentialsError(f"authentication failed for {who}: the cloud answered 401; "
                                   f"check the password / application credential") from None
        except (ks.ConnectFailure, ks.DiscoveryFailure) as exc:
            reason = _connection_reason(str(exc))
            if reason:
                raise CredentialsError(f"cannot reach the auth URL of {who}: {reason}") from None
            raise CredentialsError(f"no Keystone found at the auth URL of {who}: {_first_line(exc)}") from None
        except ks.ClientException as exc:
            raise CredentialsError(f"cannot authenticate {who}: {_first_line(exc)}") from None
        finally:
            discovery_log.setLevel(level)
        self.compute  # the catalog must have compute: say so now, not in every user

    def find_image(self, wanted: str | None) -> str:
        images = self.image.get("/v2/images", params={"limit": "1000"}).json().get("images", [])
        return _pick("image", wanted, images, "--image",
                     default=lambda: next((i for i in images if i.get("status") == "active"), None))

    def find_flavor(self, wanted: str | None) -> str:
        flavors = self.compute.get("/flavors/detail").json().get("flavors", [])
        return _pick("flavor", wanted, flavors, "--flavor",
                     default=lambda: min(flavors, key=lambda f: (f.get("vcpus", 0), f.get("ram", 0),
                                                                 f.get("disk", 0)), default=None))

    def find_network(self, wanted: str | None) -> str:
        """A network id, or "none" (microversion 2.37+) when the project has no network."""
        if wanted in ("none", "auto"):
            return wanted
        networks = self.network.get("/v2.0/networks").json().get("networks", [])
        if wanted:
            return _pick("network", wanted, networks, "--network")
        usable = [n for n in networks if not n.get("router:external")]
        project_id = self.session.get_project_id()
        own = [n for n in usable if n.get("project_id") == project_id]
        for candidates in (own, usable):
            if len(candidates) == 1:
                return candidates[0]["id"]
        if not usable:
            return "none"
        raise PreflightError(f"the project sees {len(usable)} networks "
                             f"({', '.join(n.get('name') or n['id'] for n in usable[:6])}); "
                             f"choose one with --network")


def _connection_reason(text: str) -> str | None:
    """`Connection refused`, `Name or service not known`…: the socket's own words, if any."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    if "Unable to establish connection" in text or "timed out" in text.lower():
        return "unable to establish a connection"
    return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _pick(kind: str, wanted: str | None, items: list[dict], option: str,
          default: Callable[[], dict | None] | None = None) -> str:
    if wanted:
        by_id = [item for item in items if item.get("id") == wanted]
        by_name = [item for item in items if item.get("name") == wanted]
        found = by_id or by_name
        if len(found) == 1:
            return found[0]["id"]
        if len(found) > 1:
            raise PreflightError(f"{option} {wanted!r} matches {len(found)} {kind}s; give its id")
        names = ", ".join(sorted(str(item.get("name") or item.get("id")) for item in items)[:8])
        raise PreflightError(f"{option} {wanted!r} matches no {kind}; available: {names or 'none'}")
    chosen = default() if default else None
    if chosen is None:
        raise PreflightError(f"the cloud has no usable {kind}; create one or name it with {option}")
    return chosen["id"]


@dataclass
class Tracked:
    """A resource a user created and has not seen disappear yet."""

    kind: str
    name: str
    resource_id: str | None = None


class NovaUser(User):
    """Base of every novastress user: one OpenStack client, tracked resources, timed actions."""

    abstract = True
    # Tempest's workers looped run() back to back
    wait_time = constant(0)
    # Tempest's "threads": how many of these users when -u is not given
    threads = 4
    # "batched" or "per-server"; None: the --waiter option
    waiter_kind: str | None = None

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.state = run_state(environment)
        self.name = self.state.next_user_name(type(self).__name__)
        self.number = self.state.user_numbers[type(self).__name__]
        self.client: OpenStackClient | None = None
        self.tracked: dict[str, Tracked] = {}
        self.runs = 0
        self._sequence = 0

    # -- life cycle -----------------------------------------------------------
    def on_start(self) -> None:
        target = self.state.ensure_target()
        self.client = OpenStackClient(self.state, target, self.name)
        self.waiter = self.state.waiter(self.client, self.waiter_kind)

    def on_stop(self) -> None:
        # StopUser, quit, a killed greenlet: whatever is still tracked goes now
        if self.client is not None:
            self.cleanup()

    @property
    def options(self):
        return self.state.options

    @property
    def compute(self) -> ServiceClient:
        return self.client.compute

    # -- naming and tracking ------------------------------------------------
    def resource_name(self, kind: str) -> str:
        """`<prefix>-<run id>-<process><user>-<n>-<kind>`: unique, and found by a prefix sweep."""
        self._sequence += 1
        return (f"{self.state.prefix}-{self.state.run_id}-{self.state.process_tag}{self.number}-"
                f"{self._sequence}-{kind}")

    def track(self, kind: str, name: str, resource_id: str | None = None) -> Tracked:
        tracked = self.tracked.setdefault(name, Tracked(kind, name))
        if resource_id:
            tracked.resource_id = resource_id
            if self.client.action is not None:
                self.client.action.resource_ids.append(resource_id)
                self.client.index.note(self.client.action, resource_id)
        return tracked

    def untrack(self, name: str) -> None:
        self.tracked.pop(name, None)

    # -- actions and atomic steps ---------------------------------------------
    @contextmanager
    def action(self, name: str) -> Iterator[ActionRecord]:
        """Time a whole action; on failure or interruption delete what it left, then count it."""
        record = ActionRecord(name, self.name, self.state.worker, f"req-{uuid.uuid4()}")
        request_index(self.environment).add(record)
        self.client.action = record
        started = time.perf_counter()
        error: Exception | None = None
        try:
            yield record
        except (GreenletExit, StopUser):
            # stopped mid-action: not a success, not a failure of the cloud; leave nothing behind
            record.ended = time.time()
            self.state.interrupted += 1
            self.cleanup()
            raise
        except Exception as exc:  # the action failed: say what happened, delete what it made
            error = exc
            record.failed, record.error = True, _first_line(exc)
            if not self.options.leave_dirty_stack:
                self.cleanup()
        finally:
            self.client.action = None
            self.state.unreported.append(record)
        record.ended = time.time()
        self.environment.events.request.fire(
            request_type="ACTION", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=error and generalize(str(error), self.state.names),
            context={"global_request_id": record.global_request_id})
        self.state.count(self.name, name, failed=error is not None)
        self.runs += 1
        if error is not None:
            LOG.warning("%s %s failed [%s]: %s", self.name, name, record.global_request_id, record.error)
            if self.options.stop_on_error:
                self.state.stop_run(f"{self.name} {name} failed (--stop-on-error)")
        if self.options.max_runs and self.runs >= self.options.max_runs:
            self.state.user_done()
            while True:  # done: idle until the run ends (every user done, -t, Ctrl-C)
                gevent.sleep(3600)

    @contextmanager
    def atomic(self, name: str) -> Iterator[None]:
        """A Rally-style atomic step inside an action (`boot_server`, `delete_server`)."""
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self._fire_atomic(name, started, exc)
            raise
        else:
            self._fire_atomic(name, started, None)

    def _fire_atomic(self, name: str, started: float, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="ATOMIC", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=error and generalize(str(error), self.state.names),
            context={})

    # -- servers ---------------------------------------------------------------
    def boot_server(self, **extra: Any) -> dict:
        """Create a server and wait until ACTIVE (Rally's nova.boot_server)."""
        boot = self.state.boot_args()
        name = self.resource_name("server")
        with self.atomic("boot_server"):
            self.track("server", name)
            body: dict[str, Any] = {"name": name, "imageRef": boot.image_id, "flavorRef": boot.flavor_id,
                                    **extra}
            if boot.networks != "none" or _microversion_at_least(self.options.compute_microversion, 2, 37):
                body["networks"] = boot.networks
            before = time.time()
            server = self.compute.post("/servers", json={"server": body}, expect=(202,)).json()["server"]
            self.track("server", name, server["id"])
            return self.waiter.wait(server["id"], name, ACTIVE, self.options.build_timeout,
                                    initial={"id": server["id"], "status": "BUILD"}, since=before) \
                or server

    def delete_server(self, server: dict) -> None:
        """Delete a server and wait until it is gone (Rally's nova.delete_server)."""
        with self.atomic("delete_server"):
            self._delete_and_wait(server["id"], server.get("name") or server["id"], server)

    def _delete_and_wait(self, server_id: str, name: str, known: dict | None = None) -> None:
        before = time.time()
        self.compute.delete(f"/servers/{server_id}", expect=(204, 404))
        self.waiter.wait(server_id, name, DELETED, self.options.delete_timeout, since=before,
                         initial={"status": known["status"]} if known and "status" in known else None)
        self.untrack(name)

    # -- cleanup ---------------------------------------------------------------
    def cleanup(self) -> None:
        """Delete every tracked resource and wait until it is gone; what cannot be is a leak."""
        if self.options.leave_dirty_stack:
            return
        for tracked in list(self.tracked.values()):
            try:
                ids = [tracked.resource_id] if tracked.resource_id else self._find_by_name(tracked.name)
                for server_id in ids:
                    try:
                        self._delete_and_wait(server_id, tracked.name)
                    except WaitError as exc:
                        # a delete racing a build can leave the server in ERROR: delete it again
                        LOG.warning("%s: %s; deleting it again", self.name, exc)
                        self._delete_and_wait(server_id, tracked.name)
                self.untrack(tracked.name)
            except GreenletExit:
                raise
            except Exception as exc:
                self.state.leaks.append(Leak(tracked.kind, tracked.name, tracked.resource_id,
                                             _first_line(exc)))
                LOG.error("%s could not delete %s %s: %s", self.name, tracked.kind, tracked.name,
                          _first_line(exc))
                self.untrack(tracked.name)

    def _find_by_name(self, name: str) -> list[str]:
        """Ids of servers with exactly this name: a create interrupted before its answer."""
        for attempt in range(2):
            found = self.compute.get("/servers", params={"name": f"^{re.escape(name)}$"}).json()["servers"]
            ids = [server["id"] for server in found if server.get("name") == name]
            if ids or attempt:
                return ids
            # the create may still be in flight on the cloud: look once more
            gevent.sleep(self.options.status_poll_interval)
        return []


def _microversion_at_least(version: str, major: int, minor: int) -> bool:
    if version == "latest":
        return True
    try:
        have_major, have_minor = (int(part) for part in str(version).split("."))
    except ValueError:
        return False
    return (have_major, have_minor) >= (major, minor)


def action(function: Callable[[NovaUser], Any]) -> Callable[[NovaUser], Any]:
    """Make `function(user)` a Locust task timed as one ACTION named after it."""
    def task(user: NovaUser) -> Any:
        with user.action(function.__name__):
            return function(user)
    task.__name__ = function.__name__
    task.__doc__ = function.__doc__
    return task


def sweep(state: RunState) -> None:
    """After the run: delete any server named `<prefix>-<run id>-` that is still there.

    Users delete their own resources; this is the net under them (a user killed in a way
    that skipped its cleanup). `--full-clean-stack` widens it to `<prefix>-` (earlier runs).
    """
    if state.target is None or not state.run_id:
        return
    pattern = f"{state.prefix}-" if state.options.full_clean_stack else f"{state.prefix}-{state.run_id}-"
    try:
        client = OpenStackClient(state, state.target, "sweep")
        found = client.compute.get("/servers", params={"name": f"^{re.escape(pattern)}"},
                                   name="compute GET /servers?name (final sweep)").json()["servers"]
    except (ApiError, PreflightError, CredentialsError) as exc:
        LOG.error("novastress: could not list servers for the final sweep: %s", exc)
        return
    leftovers = [server for server in found if server.get("name", "").startswith(pattern)]
    if not leftovers:
        return
    from .waiter import PerServerWaiter
    waiter = PerServerWaiter(client.compute, state.options.status_poll_interval)
    for server in leftovers:
        try:
            client.compute.delete(f"/servers/{server['id']}", expect=(204, 404))
            state.swept.append(server["name"])
        except ApiError as exc:
            state.leaks.append(Leak("server", server["name"], server["id"], _first_line(exc)))
    for server in leftovers:
        try:
            waiter.wait(server["id"], server["name"], DELETED, state.options.delete_timeout)
        except (WaitError, ApiError) as exc:
            state.leaks.append(Leak("server", server["name"], server["id"], _first_line(exc)))
        else:
            # a user that gave up on it reported a leak; the sweep got it after all
            state.leaks = [leak for leak in state.leaks if leak.resource_id != server["id"]]


__all__ = ["NovaUser", "OpenStackClient", "ServiceClient", "ApiError", "action", "template"]
