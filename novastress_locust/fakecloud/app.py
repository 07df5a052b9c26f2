"""The embedded cloud: every service behind one loopback port, devstack-style paths.

    /identity      Keystone v3          /compute/v2.1  Nova
    /image         Glance v2            /volume/v3     Cinder v3
    /networking    Neutron v2.0         /placement     Placement
    /fakecloud     ground truth and fault controls (admin token)
"""
from __future__ import annotations

import logging
import random
import secrets
import time
import traceback
import uuid

import gevent

from .config import CloudConfig
from .chaos import Chaos
from .faults import Faults
from .http import HTTPServer, MalformedJSON, Request, Response
from .identity import Identity
from .logs import LogSet
from .processes import Processes
from .service import GLOBAL_REQUEST_ID_RE, ApiError, Call, Service

LOG = logging.getLogger("novastress.fakecloud")


class Control(Service):
    """`/fakecloud`: what fired (ground truth) and runtime fault settings; admin only."""

    name = "fakecloud"
    prefix = "/fakecloud"
    log_name = "nova-api"

    def setup(self) -> None:
        self.router.add("GET", "", self.info, auth=False)
        self.router.add("GET", "/faults", self.list_faults)
        self.router.add("PUT", "/faults/{fault_id}", self.set_fault)
        self.router.add("GET", "/servers/{server_id}/times", self.server_times)
        self.router.add("POST", "/expire-tokens", self.expire_tokens)
        self.router.add("GET", "/chaos", self.list_chaos)
        self.router.add("POST", "/chaos", self.add_chaos)
        self.router.add("DELETE", "/chaos", self.clear_chaos)
        self.router.add("DELETE", "/chaos/{rule_id}", self.remove_chaos)
        self.router.add("GET", "/services", self.list_processes)
        self.router.add("POST", "/services", self.act_on_process)

    def list_processes(self, call: Call) -> Response:
        self.require_admin(call)
        return Response.json(200, {"services": self.cloud.processes.listing()})

    def act_on_process(self, call: Call) -> Response:
        """Stop, kill, restart, start, freeze or thaw one service (processes.py)."""
        self.require_admin(call)
        spec = call.body() or {}
        process = self.cloud.processes.act(str(spec.get("action", "")), str(spec.get("service", "")),
                                           str(spec.get("host") or ""))
        return Response.json(200, {"service": process.service, "host": process.host, "state": process.state})

    def info(self, call: Call) -> Response:
        return Response.json(200, {"fakecloud": {"auth_url": self.cloud.auth_url,
                                                 "log_dir": str(self.cloud.logs.directory),
                                                 "compute_hosts": self.cloud.compute_hosts,
                                                 "services": list(self.cloud.config.services),
                                                 **self.cloud.guests.info()}})

    def list_faults(self, call: Call) -> Response:
        self.require_admin(call)
        since = float(call.request.arg("since") or 0)
        fired = [f.as_dict() for f in self.cloud.faults.fired_faults if f.time >= since]
        return Response.json(200, {"faults": self.cloud.faults.catalogue(), "fired": fired})

    def server_times(self, call: Call, server_id: str) -> Response:
        """When the server first became ACTIVE and when it was gone, to the microsecond (the API,
        like a MariaDB-backed Nova, shows whole seconds): what a client's timings are checked against."""
        self.require_admin(call)
        compute = self.cloud.compute
        server = compute.servers.get(server_id) or compute.deleted.get(server_id)
        if server is None:
            raise ApiError(404, f"No server {server_id} (deleted ones are kept a while only)")
        return Response.json(200, {"times": {"launched_at": server.launched_at,
                                             "terminated_at": server.terminated_at}})

    def set_fault(self, call: Call, fault_id: str) -> Response:
        self.require_admin(call)
        spec = call.body() or {}
        try:
            self.cloud.faults.configure(fault_id, spec.get("armed"), spec.get("probability"))
        except KeyError:
            raise ApiError(404, f"Unknown fault {fault_id}") from None
        return Response.json(200, {"faults": self.cloud.faults.catalogue()})

    def expire_tokens(self, call: Call) -> Response:
        self.require_admin(call)
        return Response.json(200, {"expired": self.cloud.identity.expire_tokens()})


    def list_chaos(self, call: Call) -> Response:
        self.require_admin(call)
        return Response.json(200, {"rules": [r.as_dict() for r in self.cloud.chaos.rules]})

    def add_chaos(self, call: Call) -> Response:
        self.require_admin(call)
        spec = (call.body() or {}).get("rule")
        if not isinstance(spec, dict):
            raise ApiError(400, 'Expected {"rule": {...}}')
        try:
            rule = self.cloud.chaos.add(spec)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, f"Invalid chaos rule: {exc}") from None
        return Response.json(201, {"rule": rule.as_dict()})

    def clear_chaos(self, call: Call) -> Response:
        self.require_admin(call)
        return Response.json(200, {"removed": self.cloud.chaos.remove()})

    def remove_chaos(self, call: Call, rule_id: str) -> Response:
        self.require_admin(call)
        if not self.cloud.chaos.remove(rule_id):
            raise ApiError(404, f"No chaos rule {rule_id}")
        return Response(204)


class Cloud:
    """All services, their shared state, logs and faults; callable as the HTTP app."""

    def __init__(self, config: CloudConfig | None = None) -> None:
        self.config = config or CloudConfig()
        self.rng = random.Random(self.config.seed)
        self.compute_hosts = [f"compute-{n}" for n in range(1, self.config.compute_hosts + 1)]
        self.logs = LogSet(self.config.log_dir, self.compute_hosts)
        self.faults = Faults.from_selection(self.config.faults, self.config.fault_probability,
                                            self.config.seed)
        self.base_url = f"http://{self.config.host}:{self.config.port}"
        self.member_password = self.config.member_password or secrets.token_urlsafe(18)
        self.admin_password = self.config.admin_password or secrets.token_urlsafe(18)
        self.server: HTTPServer | None = None
        self.chaos = Chaos(self.config.seed)
        self.processes = Processes(self)       # services stopped, killed, frozen (--fault)

        from .compute import Compute
        from .image import Image
        from .network import Network
        from .placement import Placement
        from .volume import Volume

        self.identity = Identity(self)
        self.image = Image(self)
        self.network = Network(self)
        self.volume = Volume(self)
        self.placement = Placement(self)
        self.compute = Compute(self)
        self.control = Control(self)
        from .guest import GuestManager
        self.guests = GuestManager(self)  # SSH on floating IPs of ACTIVE servers
        listed = {"compute": self.compute, "image": self.image, "volume": self.volume,
                  "network": self.network, "placement": self.placement}
        # a service left out of the catalog (--services) answers 404 at its paths
        self.services: dict[str, Service] = {
            svc.prefix.strip("/"): svc
            for svc in (self.identity, self.control,
                        *(listed[name] for name in self.config.services))}
        self._bootstrap()

    # -- set-up ------------------------------------------------------------
    def _bootstrap(self) -> None:
        identity = self.identity
        self.admin_project = identity.add_project("admin", "Bootstrap project for the admin user")
        self.demo_project = identity.add_project("demo", "Project of the member user")
        identity.add_project("service", "Project of the service users")
        self.admin_user = identity.add_user("admin", self.admin_password, self.admin_project,
                                            ("admin", "member", "reader"))
        identity.assignments.add((self.demo_project.id, self.admin_user.id,
                                  identity.role_named("admin").id))
        self.demo_user = identity.add_user("demo", self.member_password, self.demo_project,
                                           ("member", "reader"))
        for project in (self.admin_project, self.demo_project):
            self.on_project_created(project)

    def on_project_created(self, project) -> None:
        for service in (self.network, self.compute, self.volume):
            hook = getattr(service, "on_project_created", None)
            if hook:
                hook(project)

    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/identity"

    def catalog_entries(self) -> list[tuple[str, str, str]]:
        """(service type, name, URL) of every service in the catalog (--services)."""
        base = self.base_url
        entries = [("compute", "compute", "nova", f"{base}/compute/v2.1"),
                   ("placement", "placement", "placement", f"{base}/placement"),
                   ("image", "image", "glance", f"{base}/image"),
                   ("volume", "volumev3", "cinderv3", f"{base}/volume/v3"),
                   ("volume", "block-storage", "cinder", f"{base}/volume/v3"),
                   ("network", "network", "neutron", f"{base}/networking")]
        return [("identity", "keystone", f"{base}/identity")] + [
            (service_type, name, url) for service, service_type, name, url in entries
            if service in self.config.services]

    # -- timing helpers for the asynchronous state machines ---------------
    def delay(self, kind: str) -> float:
        low, high = getattr(self.config.delays, kind)
        return low if high <= low else self.rng.uniform(low, high)

    def later(self, seconds: float, function, *args) -> gevent.Greenlet:
        """Run a state transition after `seconds`; its crash is logged, never lost."""
        def run() -> None:
            try:
                function(*args)
            except Exception:  # a bug in the cloud itself: say so loudly in its log
                self.logs.conductor.write("ERROR", "novastress.fakecloud", "state transition failed",
                                          traceback=traceback.format_exc().rstrip().splitlines())
        return gevent.spawn_later(max(0.0, seconds), run)

    # -- HTTP --------------------------------------------------------------
    def __call__(self, request: Request) -> Response:
        started = time.monotonic()
        path = request.path
        first, _, rest = path.lstrip("/").partition("/")
        service = self.services.get(first)
        if service is None:
            return Response.json(404, {"error": {"code": 404, "message": f"No service at {path}"}})
        inbound = request.header("x-openstack-request-id")
        global_id = inbound if inbound and GLOBAL_REQUEST_ID_RE.match(inbound) else None
        call = Call(request, f"req-{uuid.uuid4()}", global_id, started)
        rule = self.chaos.pick(first, request.method, path) if service is not self.control else None
        if rule is not None:
            if rule.kind == "reset":
                return Response(abort=True)
            if rule.kind == "delay":
                gevent.sleep(rule.delay)
        try:
            self.processes.gate(first)
            if rule is not None and rule.kind == "status":
                call.injected = f"injected fault {rule.id}: HTTP {rule.status}"
            response = service.dispatch(call, "/" + rest)
        except ApiError as error:
            response = service.error(call, error)
        except MalformedJSON as exc:
            response = service.error(call, ApiError(400, f"Malformed request body: {exc}", "malformed"))
        except Exception as exc:
            service.log(call, "ERROR", f"{service.log_name.replace('-', '.')}.wsgi",
                        f"Unexpected exception in API method: {exc}",
                        traceback=traceback.format_exc().rstrip().splitlines())
            response = service.error(call, ApiError(
                rule.status if rule is not None and rule.kind == "status" else 500,
                "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ "
                     f"and attach the Nova API log if possible.\n{type(exc)}", "internal"))
        service.decorate(call, response)
        service.finished(call, response)
        return response

    # -- lifetime ----------------------------------------------------------
    def bind(self, host: str | None = None, port: int | None = None) -> HTTPServer:
        self.server = HTTPServer(self, host or self.config.host,
                                 self.config.port if port is None else port)
        self.server.server.init_socket()
        bound_host, bound_port = self.server.address
        self.base_url = f"http://{_url_host(self.config.public_host or bound_host)}:{bound_port}"
        return self.server

    def close(self) -> None:
        if self.server:
            self.server.stop()
        self.guests.close()
        self.logs.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
