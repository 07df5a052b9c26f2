"""Nova compute API v2.1 (microversions 2.1-2.104) of the embedded cloud.

Servers live in one dict keyed by id (plus a per-project index), so showing
one server costs a dict lookup and a plain-dict view whatever the number of
servers. State changes run later on gevent timers (`cloud.later`), as the
conductor, scheduler and compute services of a real cloud would, and write
their log lines with the context of the API call that caused them.

`Compute` holds the request flow (routes, microversions, errors) and the servers' own routes
(list, show, create, update, delete); the rest comes from one module per concern, composed
as mixins:

    compute_model.py      the records: Flavor, Server, InstanceAction, Migration, Keypair, ...
    compute_views.py      their JSON views, by microversion
    compute_engine.py     the asynchronous state engine: build, delete, the end of each action
    compute_races.py      the planted race bugs and the Nova tracebacks they log
    compute_actions.py    server actions, volume attachments, instance actions
    compute_quotas.py     quota usage and checks, os-quota-sets, limits
    compute_resources.py  flavors, keypairs, server groups, services, hypervisors, migrations
"""
from __future__ import annotations

import re
import secrets
import string
import time
import uuid
from collections import OrderedDict
from itertools import chain, islice

import gevent

from .compute_actions import ServerActions
from .compute_engine import ComputeEngine
from .compute_model import MAX_LIMIT, Flavor, Keypair, Migration, Server, ServerGroup, _password
from .compute_quotas import ComputeQuotas
from .compute_races import ComputeRaces
from .compute_resources import ComputeResources
from .compute_views import ComputeViews
from .config import flavor_table
from .http import Response
from .image_proxy import ImageProxy, checked_metadata
from .quota_classes import QuotaClasses
from .server_extras import ServerExtras
from .server_fields import (checked_common, checked_counts, checked_name, checked_personality, checked_update,
                            not_allowed)
from .server_metadata import ServerMetadata
from .server_tags import ServerTags, checked_tags
from .service import NOVA_ERROR_TYPE, ApiError, Call, Service, parse_time, webob_error

MIN_MINOR = 1
# what POST /servers accepts in its `server` object, at any microversion
SERVER_CREATE_FIELDS = frozenset({
    "name", "imageRef", "flavorRef", "adminPass", "metadata", "networks", "OS-DCF:diskConfig", "accessIPv4",
    "accessIPv6", "personality", "key_name", "security_groups", "user_data", "availability_zone",
    "block_device_mapping", "block_device_mapping_v2", "config_drive", "min_count", "max_count",
    "return_reservation_id", "description", "tags", "trusted_image_certificates", "host",
    "hypervisor_hostname", "hostname"})
VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")
LEGACY_VERSION = {"id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "",
                  "updated": "2025-07-04T12:00:00Z"}
# Nova's routes take an optional project id after the version: /v2.1/{project_id}/servers
PROJECT_IN_URL = re.compile(r"^/v2\.1/([0-9a-f]{32})(?=/)")
VARY = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
VERSION_UPDATED = "2013-07-23T11:33:21Z"
# seconds nova-api spends between its quota check and creating the build request (image and
# network checks): boots arriving meanwhile check against the same usage, so all may pass
QUOTA_CHECK_WINDOW = 0.2
FAULT_KINDS = {400: "badRequest", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
               409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
               429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable"}


class Compute(ServerActions, ComputeResources, ComputeQuotas, ComputeEngine, ComputeRaces, ComputeViews,
              Service):
    name = "compute"
    prefix = "/compute"
    log_name = "nova-api"

    def setup(self) -> None:
        self.servers: dict[str, Server] = {}
        self.by_project: dict[str, dict[str, Server]] = {}
        self.deleted: OrderedDict[str, Server] = OrderedDict()
        self.flavors: dict[str, Flavor] = {}
        self.keypairs: dict[str, dict[str, Keypair]] = {}
        self.server_groups: dict[str, ServerGroup] = {}
        self.migrations: list[Migration] = []
        self.quotas: dict[str, dict[str, int]] = {}
        self.default_quotas: dict[str, int] = {}     # the "default" quota class, as an admin set it
        # counters Nova keeps per project; quota-usage-drift can leave them off by one
        self.usage: dict[str, dict[str, int]] = {}
        self.host_usage: dict[str, dict[str, int]] = {}
        self.scheduling: dict[str, float] = {}   # server id -> time its boot was accepted
        self.last_create: dict[str, tuple[float, list[str]]] = {}  # project -> (time, ids) of its latest boot
        self._counter = 0x100
        self._keypair_counter = 0
        self._migration_counter = 0
        self._started = time.time()
        for flavor_id, name, ram, vcpus, disk in flavor_table(self.cloud.config.flavors):
            self._add_flavor(flavor_id, name, ram, vcpus, disk)
        self._routes()

    def _routes(self) -> None:
        add = self.router.add
        # the hot paths first: matching is a linear scan
        add("GET", "/v2.1/servers/detail", self.list_servers_detail)
        add("GET", "/v2.1/servers/{server_id}", self.show_server)
        add("GET", "/v2.1/servers", self.list_servers)
        add("POST", "/v2.1/servers", self.create_server)
        add("DELETE", "/v2.1/servers/{server_id}", self.delete_server)
        add("POST", "/v2.1/servers/{server_id}/action", self.server_action)
        add("PUT", "/v2.1/servers/{server_id}", self.update_server)
        add("GET", "/v2.1/", self.version, auth=False)
        add("GET", "/v2.1/flavors", self.list_flavors)
        add("GET", "/v2.1/flavors/detail", self.list_flavors_detail)
        add("POST", "/v2.1/flavors", self.create_flavor)
        add("GET", "/v2.1/flavors/{flavor_id}", self.show_flavor)
        add("DELETE", "/v2.1/flavors/{flavor_id}", self.delete_flavor)
        add("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs", self.flavor_extra_specs)
        add("GET", "/v2.1/servers/{server_id}/os-volume_attachments", self.list_attachments)
        add("POST", "/v2.1/servers/{server_id}/os-volume_attachments", self.attach_volume)
        add("GET", "/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", self.show_attachment)
        add("DELETE", "/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", self.detach_volume)
        add("GET", "/v2.1/servers/{server_id}/os-instance-actions", self.list_instance_actions)
        add("GET", "/v2.1/servers/{server_id}/os-instance-actions/{request_id}", self.show_instance_action)
        add("GET", "/v2.1/os-keypairs", self.list_keypairs)
        add("POST", "/v2.1/os-keypairs", self.create_keypair)
        add("GET", "/v2.1/os-keypairs/{name}", self.show_keypair)
        add("DELETE", "/v2.1/os-keypairs/{name}", self.delete_keypair)
        add("GET", "/v2.1/os-services", self.list_services)
        add("GET", "/v2.1/os-hypervisors", self.list_hypervisors)
        add("GET", "/v2.1/os-hypervisors/detail", self.list_hypervisors_detail)
        add("GET", "/v2.1/os-hypervisors/{hypervisor_id}", self.show_hypervisor)
        add("GET", "/v2.1/limits", self.limits)
        add("GET", "/v2.1/os-quota-sets/{project_id}", self.show_quotas)
        add("GET", "/v2.1/os-quota-sets/{project_id}/detail", self.show_quotas_detail)
        add("GET", "/v2.1/os-quota-sets/{project_id}/defaults", self.show_quota_defaults)
        add("PUT", "/v2.1/os-quota-sets/{project_id}", self.update_quotas)
        add("DELETE", "/v2.1/os-quota-sets/{project_id}", self.delete_quotas)
        QuotaClasses(self).add_routes(add)     # /os-quota-class-sets/{class}
        add("GET", "/v2.1/os-migrations", self.list_migrations)
        add("GET", "/v2.1/os-server-groups", self.list_server_groups)
        add("POST", "/v2.1/os-server-groups", self.create_server_group)
        add("GET", "/v2.1/os-server-groups/{group_id}", self.show_server_group)
        add("DELETE", "/v2.1/os-server-groups/{group_id}", self.delete_server_group)
        add("GET", "/v2.1/os-availability-zone", self.availability_zones)
        ImageProxy(self).add_routes(add)   # /images and /images/{id}/metadata, up to 2.35 / 2.38
        ServerMetadata(self).add_routes(add)   # /servers/{id}/metadata[/{key}]
        ServerTags(self).add_routes(add)       # /servers/{id}/tags[/{tag}], 2.26+
        ServerExtras(self).add_routes(add)     # /servers/{id}/ips[/{network}], /servers/{id}/os-server-password

    # -- request flow ------------------------------------------------------
    def dispatch(self, call: Call, path: str) -> Response:
        if path in ("", "/"):  # the root versions document: no auth, no microversion
            return self.versions(call)
        if path == "/v2" or path.startswith("/v2/"):
            # the deprecated v2.0: v2.1's API without microversions, and without their headers
            call.legacy, path = True, "/v2.1" + path[len("/v2"):]
        found = PROJECT_IN_URL.match(path)
        if found:
            call.url_project, path = found.group(1), "/v2.1" + path[found.end():]
        if call.legacy and path in ("/v2.1", "/v2.1/"):
            return self.legacy_version(call)
        return super().dispatch(call, path)

    def before(self, call: Call) -> None:
        if call.url_project and call.token and call.url_project != call.token.project_id:
            raise ApiError(400, f"Malformed request URL: URL's project_id '{call.url_project}' doesn't "
                                f"match Context's project_id '{call.token.project_id}'")
        if call.legacy:
            call.microversion = "2.1"
            return
        headers = call.request.headers
        requested = None
        combined = headers.get("openstack-api-version")
        if combined:
            for part in combined.split(","):
                service, _, value = part.strip().partition(" ")
                if service.lower() == "compute":
                    requested = value.strip()
        if requested is None:
            requested = headers.get("x-openstack-nova-api-version")
        if not requested:
            call.microversion = "2.1"
            return
        ceiling = self.cloud.config.max_microversion_minor
        if requested.lower() == "latest":
            call.microversion = f"2.{ceiling}"
            return
        found = VERSION_RE.match(requested)
        if not found:
            raise ApiError(400, f"API Version String {requested} is of invalid format. Must be of "
                                "format MajorNum.MinorNum.", "badversion")
        call.microversion = requested
        major, minor = int(found.group(1)), int(found.group(2))
        if major != 2 or not MIN_MINOR <= minor <= ceiling:
            raise ApiError(406, f"Version {requested} is not supported by the API. Minimum is 2.1 "
                                f"and maximum is 2.{ceiling}.", "compute")

    def decorate(self, call: Call, response: Response) -> None:
        # the root document, a 401 and a malformed version answer without these (as recorded)
        if call.microversion is None:
            return
        if call.legacy:
            response.headers += [("x-openstack-request-id", call.request_id),
                                 ("x-compute-request-id", call.request_id)]
            return
        version = call.microversion
        response.headers += [("OpenStack-API-Version", f"compute {version}"),
                             ("X-OpenStack-Nova-API-Version", version), ("Vary", VARY),
                             ("x-openstack-request-id", call.request_id),
                             ("x-compute-request-id", call.request_id)]

    def error(self, call: Call, error: ApiError) -> Response:
        if error.status == 401:  # keystonemiddleware answers before Nova sees the call
            return Response.json(401, {"error": {"code": 401, "title": "Unauthorized",
                                                 "message": error.message}}, error.headers)
        if error.kind == "notallowed":
            # Nova routes on path and method together: a method a path lacks matches no route, and
            # its router answers with webob's own 404, before any controller or microversion
            return webob_error(call.request.header("accept"), 404, "The resource could not be found.", error.headers)
        message = "Malformed request body" if error.kind == "malformed" else error.message
        if error.status == 404 and error.kind == "notfound":
            message = "The resource could not be found."
        if 400 <= error.status < 500:
            self.log(call, "INFO", "nova.api.openstack.wsgi", f"HTTP exception thrown: {message}")
        kind = FAULT_KINDS.get(error.status, "computeFault")
        return Response.json(error.status, {kind: {"code": error.status, "message": message}},
                             error.headers, content_type=NOVA_ERROR_TYPE)

    def finished(self, call: Call, response: Response) -> None:
        request = call.request
        uri = request.target[len(self.prefix):] or "/"
        elapsed = time.monotonic() - call.started
        self.cloud.logs.api.write(
            "INFO", "nova.api.openstack.requestlog",
            f'{request.remote_addr} "{request.method} {uri}" status: {response.status} '
            f"len: {len(response.body)} microversion: {call.microversion or '-'} time: {elapsed:.6f}",
            call.log_context)

    # -- helpers -------------------------------------------------------------
    @staticmethod
    def _minor(call: Call) -> int:
        return int(call.microversion.partition(".")[2]) if call.microversion else 1

    @staticmethod
    def _admin(call: Call) -> bool:
        return bool(call.token and call.token.is_admin)

    def _policy(self, call: Call, rule: str) -> None:
        if not self._admin(call):
            raise ApiError(403, f"Policy doesn't allow {rule} to be performed.")

    @property
    def _base(self) -> str:
        return self.cloud.base_url + self.prefix

    def _links(self, kind: str, item_id: str) -> list[dict]:
        base = self._base
        return [{"rel": "self", "href": f"{base}/v2.1/{kind}/{item_id}"},
                {"rel": "bookmark", "href": f"{base}/{kind}/{item_id}"}]

    def _body(self, call: Call, key: str, payload=None) -> dict:
        payload = call.body() if payload is None else payload
        if not isinstance(payload, dict) or key not in payload:
            raise ApiError(400, f"'{key}' is a required property")
        value = payload[key]
        if not isinstance(value, dict):
            raise ApiError(400, f"Invalid input for field/attribute {key}. Value: {value!r}. "
                                f"{value!r} is not of type 'object'")
        return value

    def _server(self, call: Call, server_id: str) -> Server:
        server = self.servers.get(server_id)
        if server is None or (server.project_id != call.token.project_id and not self._admin(call)):
            raise ApiError(404, f"Instance {server_id} could not be found.")
        return server

    # -- versions ----------------------------------------------------------
    def _version_doc(self, full: bool) -> dict:
        doc = {"id": "v2.1", "status": "CURRENT", "version": f"2.{self.cloud.config.max_microversion_minor}",
               "min_version": "2.1",
               "updated": VERSION_UPDATED, "links": [{"rel": "self", "href": f"{self._base}/v2.1/"}]}
        if full:
            doc["links"].append({"rel": "describedby", "type": "text/html",
                                 "href": "http://docs.openstack.org/"})
            doc["media-types"] = [{"base": "application/json",
                                   "type": "application/vnd.openstack.compute+json;version=2.1"}]
        return doc

    def versions(self, call: Call) -> Response:
        return Response.json(200, {"versions": [
            {**LEGACY_VERSION, "links": [{"rel": "self", "href": f"{self._base}/v2/"}]},
            self._version_doc(False)]})

    def version(self, call: Call) -> Response:
        return Response.json(200, {"version": self._version_doc(True)})

    def legacy_version(self, call: Call) -> Response:
        return Response.json(200, {"version": {
            **LEGACY_VERSION, "links": [{"rel": "self", "href": f"{self._base}/v2/"},
                                        {"rel": "describedby", "type": "text/html",
                                         "href": "http://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2"}]}})

    # -- servers: read -------------------------------------------------------
    def show_server(self, call: Call, server_id: str) -> Response:
        server = self._server(call, server_id)
        return Response.json(200, {"server": self._server_view(server, self._minor(call), self._admin(call))})

    def list_servers(self, call: Call) -> Response:
        return self._list(call, detail=False)

    def list_servers_detail(self, call: Call) -> Response:
        return self._list(call, detail=True)

    def _list(self, call: Call, detail: bool) -> Response:
        request = call.request
        admin = self._admin(call)
        minor = self._minor(call)
        all_tenants = request.arg("all_tenants")
        if all_tenants is not None and all_tenants.lower() not in ("0", "false", "off", "no"):
            if not admin:
                which = "detail" if detail else "index"
                raise ApiError(403, f"Policy doesn't allow os_compute_api:servers:{which}:"
                                    "get_all_tenants to be performed.")
            project = request.arg("project_id") or request.arg("tenant_id")
            pool = self.by_project.get(project, {}) if project else self.servers
            projects = {project} if project else None
        else:
            pool = self.by_project.get(call.token.project_id, {})
            projects = {call.token.project_id}
        # a lazy pipeline: an unfiltered page touches only the servers it shows
        candidates = iter(reversed(pool.values()))  # newest first
        since_text = request.arg("changes-since")
        if since_text is not None:
            since = parse_time(since_text)
            if since is None:
                raise ApiError(400, f"Invalid input for query parameters changes-since. Value: "
                                    f"{since_text}. '{since_text}' is not a 'date-time'")
            since = int(since)  # second resolution, as the timestamps in the views
            gone = (s for s in reversed(self.deleted.values())
                    if projects is None or s.project_id in projects)
            changed = [s for s in chain(candidates, gone) if s.updated >= since]
            changed.sort(key=lambda s: s.created, reverse=True)
            candidates = iter(changed)
        name = request.arg("name")
        if name:
            try:
                pattern = re.compile(name)
            except re.error:
                pattern = re.compile(re.escape(name))
            candidates = (s for s in candidates if pattern.search(s.name))
        ip4, ip6 = request.arg("ip"), request.arg("ip6") if admin or minor >= 5 else None
        if ip4 is not None or ip6 is not None:
            # Nova matches the start of each fixed address; a filter not given is the text "None"
            v4, v6 = (_pattern(str(text)) for text in (ip4, ip6))
            candidates = (s for s in candidates if any(
                (v6 if ":" in fixed.get("ip_address", "") else v4).match(fixed.get("ip_address", ""))
                for port in s.ports for fixed in port.get("fixed_ips", ())))
        statuses = {value.upper() for value in request.query.get("status", ()) if value}
        if statuses:
            candidates = (s for s in candidates if s.status in statuses)
        flavor_id, image_ref = request.arg("flavor"), request.arg("image")
        host = request.arg("host") if admin else None
        if flavor_id:
            candidates = (s for s in candidates if s.flavor.id == flavor_id)
        if image_ref:
            candidates = (s for s in candidates if s.image_id == image_ref)
        if host:
            candidates = (s for s in candidates if s.host == host)
        limit_text = request.arg("limit")
        try:
            limit = min(int(limit_text), MAX_LIMIT) if limit_text is not None else MAX_LIMIT
            if limit < 0:
                raise ValueError
        except ValueError:
            raise ApiError(400, f"Invalid input for query parameters limit. Value: {limit_text}. "
                                f"'{limit_text}' does not match '^[0-9]*$'") from None
        marker = request.arg("marker")
        if marker:
            for server in candidates:
                if server.id == marker:
                    break
            else:
                raise ApiError(400, f"marker [{marker}] not found")
        page = list(islice(candidates, limit))
        more = next(candidates, None) is not None
        if detail:
            body: dict = {"servers": [self._server_view(s, minor, admin, show=False) for s in page]}
        else:
            body = {"servers": [self._brief_view(s) for s in page]}
        # Nova links the next page whenever a page is full
        if page and len(page) == limit and (limit_text is not None or more):
            params = [(k, v) for k, values in request.query.items() if k != "marker" for v in values]
            if "limit" not in request.query:
                params.append(("limit", str(limit)))
            params.append(("marker", page[-1].id))
            query = "&".join(f"{k}={v}" for k, v in params)
            path = "servers/detail" if detail else "servers"
            body["servers_links"] = [{"rel": "next", "href": f"{self._base}/v2.1/{path}?{query}"}]
        return Response.json(200, body)

    def update_server(self, call: Call, server_id: str) -> Response:
        minor = self._minor(call)
        fields = checked_update(self._body(call, "server"), minor)
        server = self._server(call, server_id)
        if "pinned_availability_zone" in fields:
            self._pin(server, fields.pop("pinned_availability_zone"))
        for key, attribute in (("name", "name"), ("description", "description"), ("hostname", "hostname"),
                               ("accessIPv4", "access_ipv4"), ("accessIPv6", "access_ipv6"),
                               ("OS-DCF:diskConfig", "disk_config")):
            if key in fields:
                setattr(server, attribute, fields[key])
        server.touch()
        return Response.json(200, {"server": self._changed_view(server, minor, self._admin(call))})

    def _pin(self, server: Server, zone: str | None) -> None:
        """2.104: pin a server to the zone it is in, or unpin it (None); a pinned one unpins first."""
        current = (server.availability_zone or "nova") if server.host else None
        if zone is None:
            server.availability_zone = None
        elif server.availability_zone is not None and zone != server.availability_zone:
            raise ApiError(409, "Cannot change pinned availability zone directly. Unpin first by setting "
                                "pinned_availability_zone to null.")
        elif server.availability_zone is None and zone != current:
            raise ApiError(409, f"Server can only be pinned to its current availability zone '{current}', "
                                f"but '{zone}' was requested.")
        else:
            server.availability_zone = zone

    # -- servers: create ---------------------------------------------------
    def create_server(self, call: Call) -> Response:
        minor = self._minor(call)
        payload = call.body()
        spec = self._body(call, "server", payload)

        def schema(message: str) -> ApiError:
            return ApiError(400, f"Invalid input for field/attribute server. Value: {spec!r}. {message}")
        for key in ("name", "flavorRef"):
            if key not in spec:
                raise schema(f"'{key}' is a required property")
        unknown = sorted(set(spec) - SERVER_CREATE_FIELDS)
        if unknown:   # Nova's schema: additionalProperties is false
            raise schema(not_allowed(unknown))
        if minor >= 37 and "networks" not in spec:
            raise schema("'networks' is a required property")
        name = checked_name(spec["name"])
        common = checked_common(spec)
        min_count, max_count = checked_counts(spec)
        metadata = checked_metadata({"metadata": spec["metadata"]}, "metadata") if "metadata" in spec else {}
        tags = checked_tags({"tags": spec["tags"]}) if minor >= 52 and "tags" in spec else []
        networks = spec.get("networks")
        if isinstance(networks, str) and (minor < 37 or networks not in ("none", "auto")):
            raise schema(f"{networks!r} is not of type 'array'")
        flavor = self.flavors.get(str(spec["flavorRef"]).rstrip("/").rpartition("/")[2])
        if flavor is None:
            raise ApiError(400, f"Flavor {spec['flavorRef']} could not be found.")
        image_id = str(spec.get("imageRef") or "").rstrip("/").rpartition("/")[2]
        if not image_id and not spec.get("block_device_mapping_v2"):
            raise ApiError(400, "Block Device Mapping is Invalid: Boot sequence for the instance and "
                                "image/block device mapping combination is not valid.")
        if image_id:
            self._check_image(image_id, flavor)
        # Nova's create as its rebuild: the disk config asked for, else the image's (MANUAL from a volume)
        disk_config = self._disk_config(image_id, common.get("OS-DCF:diskConfig")) if image_id \
            else common.get("OS-DCF:diskConfig", "MANUAL")
        key_name = spec.get("key_name")
        if key_name and key_name not in self.keypairs.get(call.token.user_id, {}):
            raise ApiError(400, "Invalid key_name provided.")
        limits = self._limits(call.token.project_id)
        if len(metadata) > limits["metadata_items"] >= 0:
            raise ApiError(403, f"Maximum number of metadata items exceeds {limits['metadata_items']}")
        checked_personality(spec, minor, limits)
        requested = self._requested_networks(call, networks)
        hints = payload.get("os:scheduler_hints") or payload.get("OS-SCH-HNT:scheduler_hints") or {}
        group = None
        if isinstance(hints, dict) and hints.get("group"):
            group = self.server_groups.get(hints["group"])
            if group is None:
                raise ApiError(400, f"Invalid input for field/attribute group. Value: {hints['group']}.")
        count = self._fitting_count(call.token.project_id, flavor, min_count, max_count)
        if self._check_quota(call.token.project_id, count, flavor):
            # nova-api creates nothing until its image and network checks are done: a boot that
            # takes the last of the quota leaves room to boots racing it for that long
            gevent.sleep(QUOTA_CHECK_WINDOW)
        security_groups = [g.get("name", "default") for g in spec.get("security_groups") or ()
                           if isinstance(g, dict)] or ["default"]
        has_group = getattr(self.cloud.network, "has_security_group", None)
        for group_name in security_groups:
            if group_name != "default" and has_group is not None and not has_group(call.token.project_id, group_name):
                raise ApiError(400, f"Security group {group_name} not found.")
        reservation_id = "r-" + "".join(secrets.choice(string.ascii_lowercase + string.digits)
                                        for _ in range(8))
        admin_pass = spec.get("adminPass") or _password()
        first = None
        for index in range(count):
            server_name = f"{name}-{index + 1}" if count > 1 else name
            server = self._new_server(call, server_name, flavor, image_id, key_name, metadata, requested,
                                      security_groups, reservation_id, hints if isinstance(hints, dict) else {},
                                      group, spec, minor)
            server.boot_count = count
            server.tags = list(tags)
            server.access_ipv4 = common.get("accessIPv4", "")
            server.access_ipv6 = common.get("accessIPv6", "")
            server.disk_config = disk_config
            server.user_data = spec.get("user_data")
            first = first or server
        body = {"server": {"id": first.id, "links": self._links("servers", first.id),
                           "OS-DCF:diskConfig": first.disk_config,
                           "security_groups": [{"name": n} for n in security_groups],
                           "adminPass": admin_pass}}
        if spec.get("return_reservation_id"):     # inside "server", as Nova reads it
            body = {"reservation_id": reservation_id}
        return Response.json(202, body, [("location", f"{self._base}/v2.1/servers/{first.id}")])

    def _check_image(self, image_id: str, flavor: Flavor) -> None:
        get_image = getattr(self.cloud.image, "get_image", None)
        if get_image is None:  # no image service in this cloud: accept the reference
            return
        image = get_image(image_id)
        if not image:
            raise ApiError(400, "Can not find requested image")
        if image.get("status", "active") != "active":
            raise ApiError(400, f"Image {image_id} is not active.")
        if flavor.ram < int(image.get("min_ram") or 0):
            raise ApiError(400, "Flavor's memory is too small for requested image.")
        if flavor.disk and flavor.disk < int(image.get("min_disk") or 0):
            raise ApiError(400, "Flavor's disk is too small for requested image.")

    def _usable_networks(self, project_id: str) -> list[dict]:
        networks_for = getattr(self.cloud.network, "networks_for", None)
        if networks_for is None:
            return []
        return [n for n in networks_for(project_id) or () if not n.get("router:external")]

    def _requested_networks(self, call: Call, networks) -> list[str]:
        """Network ids to put a port on, checked now as nova-api does."""
        project_id = call.token.project_id
        if networks == "none":
            return []
        if networks is None or networks == "auto" or networks == []:  # [] means "not given" to Nova
            usable = self._usable_networks(project_id)
            if not usable:
                if networks == "auto":
                    raise ApiError(400, f"Unable to automatically allocate a network for project {project_id}")
                return []
            if len(usable) > 1:
                raise ApiError(409, "Multiple possible networks found, use a Network ID to be more specific.")
            return [usable[0]["id"]]
        if not isinstance(networks, list):
            raise ApiError(400, f"Invalid input for field/attribute networks. Value: {networks!r}. "
                                f"{networks!r} is not of type 'array'")
        networks_for = getattr(self.cloud.network, "networks_for", None)
        known = {n["id"] for n in networks_for(project_id) or ()} if networks_for else None
        chosen = []
        for entry in networks:
            if not isinstance(entry, dict):
                raise ApiError(400, f"Invalid input for field/attribute networks. Value: {networks!r}.")
            if "port" in entry and "uuid" not in entry:
                raise ApiError(400, f"Port {entry['port']} could not be found.")
            network_id = entry.get("uuid")
            if not network_id:
                raise ApiError(400, "Bad networks format: network uuid is not in proper format ( )")
            if known is not None and network_id not in known:
                raise ApiError(400, f"Network {network_id} could not be found.")
            chosen.append(network_id)
        return chosen

    def _new_server(self, call: Call, name: str, flavor: Flavor, image_id: str, key_name: str | None,
                    metadata: dict, networks: list[str], security_groups: list[str], reservation_id: str,
                    hints: dict, group: ServerGroup | None, spec: dict, minor: int) -> Server:
        now = time.time()
        self._counter += 1
        token = call.token
        server = Server(str(uuid.uuid4()), name, token.project_id, token.user_id, flavor, image_id,
                        call.log_context, call.ids, now, self._counter, reservation_id,
                        key_name=key_name, metadata={str(k): str(v) for k, v in metadata.items()},
                        description=spec.get("description") if minor >= 19 else name,
                        security_groups=security_groups, networks=networks,
                        scheduler_hints={k: v for k, v in hints.items()} if minor >= 100 else dict(hints),
                        availability_zone=spec.get("availability_zone"),
                        config_drive="True" if spec.get("config_drive") else "")
        if group is not None:
            group.members.append(server.id)
            server.server_groups.append(group.id)
        self.servers[server.id] = server
        self.by_project.setdefault(server.project_id, {})[server.id] = server
        self._charge(server.project_id, flavor, +1)
        self.last_create[server.project_id] = (now, call.ids)
        self.scheduling[server.id] = now
        server.scheduled_at = now
        self._record_action(call, server, "create")
        build = self.cloud.delay("build")
        self._after(server, build * 0.3, self._schedule, server, build)
        return server

    # -- servers: delete -------------------------------------------------------
    def _check_locked(self, call: Call, server: Server) -> None:
        if server.locked and not self._admin(call):
            raise ApiError(409, f"Instance {server.id} is locked")

    def delete_server(self, call: Call, server_id: str) -> Response:
        server = self._server(call, server_id)
        self._check_locked(call, server)
        if server.task_state == "deleting":
            return Response(204, b"", [], None)
        record = self._record_action(call, server, "delete")
        ctx = call.log_context
        ids = call.ids
        server.delete_started = time.time()
        server.delete_context = ctx
        if server.vm_state == "building" and self.cloud.faults.roll("delete-during-build"):
            # the build keeps going and trips over task_state 'deleting' when it spawns
            server.task_state = "deleting"
            server.lost_delete = (ctx, ids, record)
            server.touch()
            return Response(204, b"", [], None)
        if server.attaching and self.cloud.faults.roll("attach-during-delete"):
            server.leaked_volumes |= set(server.attaching)
            server.leak_context = (ctx, ids)
        self._delete_races_action(server, ids)
        server.epoch += 1  # cancels the pending build step or action
        if self.scheduling.pop(server.id, None) is not None:
            self.log(call, "INFO", "nova.compute.api", "Instance Mapping does not exist while attempting "
                     "local delete cleanup.", instance=server.id)
        server.task_state = "deleting"
        server.touch()
        if server.host:
            self._compute_log(server.host).write("INFO", "nova.compute.manager", "Terminating instance",
                                                 ctx, instance=server.id)
        self.cloud.later(self.cloud.delay("delete"), self._deleted, server, ctx, ids, record)
        return Response(204, b"", [], None)


def _pattern(text: str) -> re.Pattern:
    """A list filter's regular expression; one that does not compile is taken literally."""
    try:
        return re.compile(text)
    except re.error:
        return re.compile(re.escape(text))
