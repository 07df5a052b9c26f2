"""The embedded cloud's Nova resources other than servers, as Nova 34 answers them.

    /v2.1/flavors[/detail], /v2.1/flavors/{id}[/os-extra_specs]     os-flavor-manage (admin)
    /v2.1/os-keypairs[/{name}]                 /v2.1/os-server-groups[/{id}]
    /v2.1/os-services, /v2.1/os-hypervisors[/detail|/{id}], /v2.1/os-migrations (admin)
    /v2.1/os-availability-zone

`ComputeResources` is a mixin of `Compute` (compute.py).
"""
from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid

from .compute_model import MAX_LIMIT, Flavor, Keypair, ServerGroup
from .http import Response
from .service import ApiError, Call, now_iso

class ComputeResources:
    """Flavors, keypairs, server groups, services, hypervisors, migrations and zones."""

    # -- flavors -----------------------------------------------------------
    def _add_flavor(self, flavor_id: str, name: str, ram: int, vcpus: int, disk: int, **extra) -> Flavor:
        flavor = Flavor(flavor_id, name, ram, vcpus, disk, len(self.flavors) + 1, **extra)
        self.flavors[flavor_id] = flavor
        return flavor

    def _listed_flavors(self, call: Call) -> tuple[list[Flavor], int]:
        """The flavors a list answers, as Nova filters and pages them: public ones (an admin's
        `is_public=none|false` shows the others), `minRam`/`minDisk` as lower bounds, sorted by
        id, `limit` (at most MAX_LIMIT) after the `marker` flavor; and the page size asked for."""
        request = call.request
        limit_text = request.arg("limit")
        if limit_text is not None and not (limit_text.isdigit() and limit_text.isascii()):
            raise ApiError(400, f"Invalid input for query parameters limit. Value: {limit_text}. "
                                f"'{limit_text}' does not match '^[0-9]*$'")
        limit = min(int(limit_text or MAX_LIMIT) or MAX_LIMIT, MAX_LIMIT)
        public: bool | None = True
        wanted = request.arg("is_public")
        if self._admin(call) and wanted is not None:
            public = None if wanted.lower() == "none" else _strict_bool(wanted, f"Invalid is_public filter [{wanted}]")
        flavors = sorted(self.flavors.values(), key=lambda f: f.id)
        if public is not None:
            flavors = [f for f in flavors if f.is_public == public]
        for param, attribute in (("minRam", "ram"), ("minDisk", "disk")):
            bound = request.arg(param)
            if bound is not None:
                try:
                    least = int(bound)
                except ValueError:
                    raise ApiError(400, f"Invalid {param} filter [{bound}]") from None
                flavors = [f for f in flavors if getattr(f, attribute) >= least]
        marker = request.arg("marker")
        if marker is not None:
            if marker not in self.flavors:
                raise ApiError(400, f"marker [{marker}] not found")
            flavors = [f for f in flavors if f.id > marker]
        return flavors[:limit], limit

    def _flavor_list(self, call: Call, detail: bool) -> Response:
        minor = self._minor(call)
        flavors, limit = self._listed_flavors(call)
        body: dict = {"flavors": [self._flavor_view(f, minor, detail) for f in flavors]}
        if flavors and len(flavors) == limit:
            # Nova links the next page whenever a page is as long as the limit
            query = "&".join(f"{k}={v}" for k, values in call.request.query.items() if k != "marker"
                             for v in values)
            path = "flavors/detail" if detail else "flavors"
            body["flavors_links"] = [{"rel": "next", "href": f"{self._base}/v2.1/{path}?"
                                      f"{query + '&' if query else ''}marker={flavors[-1].id}"}]
        return Response.json(200, body)

    def list_flavors(self, call: Call) -> Response:
        return self._flavor_list(call, detail=False)

    def list_flavors_detail(self, call: Call) -> Response:
        return self._flavor_list(call, detail=True)

    def _flavor(self, flavor_id: str) -> Flavor:
        flavor = self.flavors.get(flavor_id)
        if flavor is None:
            raise ApiError(404, f"Flavor {flavor_id} could not be found.")
        return flavor

    def show_flavor(self, call: Call, flavor_id: str) -> Response:
        return Response.json(200, {"flavor": self._flavor_view(self._flavor(flavor_id),
                                                               self._minor(call), True)})

    def flavor_extra_specs(self, call: Call, flavor_id: str) -> Response:
        return Response.json(200, {"extra_specs": dict(self._flavor(flavor_id).extra_specs)})

    def create_flavor(self, call: Call) -> Response:
        self._policy(call, "os_compute_api:os-flavor-manage:create")
        spec = self._body(call, "flavor")
        for key in ("name", "ram", "vcpus", "disk"):
            if key not in spec:
                raise ApiError(400, f"Invalid input for field/attribute flavor. Value: {spec!r}. "
                                    f"'{key}' is a required property")
        name = str(spec["name"])
        if any(f.name == name for f in self.flavors.values()):
            raise ApiError(409, f"Flavor with name {name} already exists.")
        flavor_id = str(spec.get("id") or uuid.uuid4())
        if flavor_id in self.flavors:
            raise ApiError(409, f"Flavor with ID {flavor_id} already exists.")
        try:
            flavor = self._add_flavor(flavor_id, name, int(spec["ram"]), int(spec["vcpus"]), int(spec["disk"]),
                                      ephemeral=int(spec.get("OS-FLV-EXT-DATA:ephemeral", 0)),
                                      swap=int(spec.get("swap") or 0),
                                      is_public=bool(spec.get("os-flavor-access:is_public", True)),
                                      description=spec.get("description"))
        except (TypeError, ValueError):
            raise ApiError(400, f"Invalid input for field/attribute flavor. Value: {spec!r}.") from None
        return Response.json(200, {"flavor": self._flavor_view(flavor, self._minor(call), True)})

    def delete_flavor(self, call: Call, flavor_id: str) -> Response:
        self._policy(call, "os_compute_api:os-flavor-manage:delete")
        self._flavor(flavor_id)
        del self.flavors[flavor_id]
        return Response(202, b"", [], None)

    # -- keypairs ----------------------------------------------------------
    def _keypair_owner(self, call: Call) -> str:
        user_id = call.request.arg("user_id")
        if user_id and self._minor(call) >= 10:
            self._policy(call, "os_compute_api:os-keypairs:index")
            return user_id
        return call.token.user_id

    def _keypair(self, call: Call, name: str) -> Keypair:
        user_id = self._keypair_owner(call)
        keypair = self.keypairs.get(user_id, {}).get(name)
        if keypair is None:
            raise ApiError(404, f"Keypair {name} not found for user {user_id}")
        return keypair

    def create_keypair(self, call: Call) -> Response:
        minor = self._minor(call)
        spec = self._body(call, "keypair")
        name = spec.get("name")
        if "name" not in spec:
            raise ApiError(400, f"Invalid input for field/attribute keypair. Value: {spec!r}. "
                                "'name' is a required property")
        # Nova's schema: 1 to 255 of these characters (2.92 adds '@' and '.'), no space at either end
        allowed = r"^[_\-\@\. a-zA-Z0-9]+$" if minor >= 92 else r"^[_\- a-zA-Z0-9]+$"
        if not isinstance(name, str) or not re.match(allowed, name) or len(name) > 255 or name != name.strip():
            problem = (f"{name!r} is too long" if isinstance(name, str) and len(name) > 255
                       else f"{name!r} does not match '{allowed}'")
            raise ApiError(400, f"Invalid input for field/attribute name. Value: {name}. {problem}")
        public_key = spec.get("public_key")
        if minor >= 92 and "public_key" not in spec:
            raise ApiError(400, f"Invalid input for field/attribute keypair. Value: {spec!r}. "
                                "'public_key' is a required property")
        if public_key is not None and not isinstance(public_key, str):
            raise ApiError(400, f"Invalid input for field/attribute public_key. Value: {public_key}. "
                                f"{public_key!r} is not of type 'string'")
        user_id = call.token.user_id
        if spec.get("user_id") and minor >= 10:
            self._policy(call, "os_compute_api:os-keypairs:create")
            user_id = spec["user_id"]
        owned = self.keypairs.setdefault(user_id, {})
        # Nova's order: the quota, then the key itself, then the name's uniqueness (the insert)
        if len(owned) >= self._limits(call.token.project_id)["key_pairs"]:
            raise ApiError(403, "Quota exceeded, too many key pairs.")
        private_key = None
        if public_key is None:
            private_key, public_key = _generate_keypair()
        try:
            fingerprint = _fingerprint(public_key)
        except ValueError:
            raise ApiError(400, "Keypair data is invalid: failed to generate fingerprint") from None
        if name in owned:
            raise ApiError(409, f"Key pair '{name}' already exists.")
        self._keypair_counter += 1
        keypair = Keypair(self._keypair_counter, name, user_id, public_key.strip(), fingerprint,
                          spec.get("type", "ssh") if minor >= 2 else "ssh", time.time())
        owned[name] = keypair
        view = {}
        if private_key:
            view["private_key"] = private_key
        if minor >= 2:
            view["type"] = keypair.type
        view.update({"name": name, "public_key": keypair.public_key, "fingerprint": fingerprint,
                     "user_id": user_id})
        return Response.json(201 if minor >= 2 else 200, {"keypair": view})

    def list_keypairs(self, call: Call) -> Response:
        minor = self._minor(call)
        user_id = self._keypair_owner(call)
        keypairs = sorted(self.keypairs.get(user_id, {}).values(), key=lambda k: k.name)
        items = []
        for keypair in keypairs:
            view = {"name": keypair.name, "public_key": keypair.public_key,
                    "fingerprint": keypair.fingerprint}
            if minor >= 2:
                view["type"] = keypair.type
            items.append({"keypair": view})
        return Response.json(200, {"keypairs": items})

    def show_keypair(self, call: Call, name: str) -> Response:
        keypair = self._keypair(call, name)
        view = {"name": keypair.name, "public_key": keypair.public_key, "fingerprint": keypair.fingerprint,
                "user_id": keypair.user_id, "created_at": now_iso(keypair.created_at, micro=True),
                "deleted": False, "deleted_at": None, "id": keypair.id, "updated_at": None}
        if self._minor(call) >= 2:
            view["type"] = keypair.type
        return Response.json(200, {"keypair": view})

    def delete_keypair(self, call: Call, name: str) -> Response:
        keypair = self._keypair(call, name)
        del self.keypairs[keypair.user_id][name]
        return Response(202 if self._minor(call) < 2 else 204, b"", [], None)

    # -- server groups -----------------------------------------------------
    def _group(self, call: Call, group_id: str) -> ServerGroup:
        group = self.server_groups.get(group_id)
        if group is None or (group.project_id != call.token.project_id and not self._admin(call)):
            raise ApiError(404, f"Instance group {group_id} could not be found.")
        return group

    def create_server_group(self, call: Call) -> Response:
        minor = self._minor(call)
        spec = self._body(call, "server_group")
        name = spec.get("name")
        if minor >= 64:
            policy = spec.get("policy")
        else:
            policies = spec.get("policies") or []
            policy = policies[0] if isinstance(policies, list) and len(policies) == 1 else None
        if not name or policy not in ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"):
            raise ApiError(400, f"Invalid input for field/attribute server_group. Value: {spec!r}.")
        project_id = call.token.project_id
        if sum(1 for g in self.server_groups.values() if g.project_id == project_id) >= \
                self._limits(project_id)["server_groups"]:
            raise ApiError(403, "Quota exceeded, too many server groups.")
        group = ServerGroup(str(uuid.uuid4()), str(name), policy, project_id, call.token.user_id,
                            dict(spec.get("rules") or {}))
        self.server_groups[group.id] = group
        return Response.json(200, {"server_group": self._group_view(group, minor)})

    def list_server_groups(self, call: Call) -> Response:
        minor = self._minor(call)
        everyone = self._admin(call) and call.request.arg("all_projects") not in (None, "0", "false")
        groups = [g for g in self.server_groups.values() if everyone or g.project_id == call.token.project_id]
        return Response.json(200, {"server_groups": [self._group_view(g, minor) for g in groups]})

    def show_server_group(self, call: Call, group_id: str) -> Response:
        return Response.json(200, {"server_group": self._group_view(self._group(call, group_id),
                                                                    self._minor(call))})

    def delete_server_group(self, call: Call, group_id: str) -> Response:
        group = self._group(call, group_id)
        del self.server_groups[group.id]
        return Response(204, b"", [], None)

    # -- services, hypervisors, migrations, zones ---------------------------
    def _services(self) -> list[tuple[int, str, str, str]]:
        """(id, binary, host, zone) of every Nova service of the cloud."""
        services = [(1, "nova-scheduler", "controller", "internal"),
                    (2, "nova-conductor", "controller", "internal")]
        services += [(3 + n, "nova-compute", host, "nova") for n, host in enumerate(self.cloud.compute_hosts)]
        return services

    @staticmethod
    def _service_uuid(binary: str, host: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{binary}.{host}"))

    def list_services(self, call: Call) -> Response:
        self._policy(call, "os_compute_api:os-services:list")
        minor = self._minor(call)
        binary = call.request.arg("binary")
        host_filter = call.request.arg("host")
        services = []
        for number, name, host, zone in self._services():
            if (binary and binary != name) or (host_filter and host_filter != host):
                continue
            heartbeat, up = self.cloud.processes.heartbeat(name, host)
            view = {"binary": name, "host": host,
                    "id": self._service_uuid(name, host) if minor >= 53 else number,
                    "zone": zone, "status": "enabled", "state": "up" if up else "down",
                    "updated_at": now_iso(heartbeat, micro=True), "disabled_reason": None}
            if minor >= 11:
                view["forced_down"] = False
            services.append(view)
        return Response.json(200, {"services": services})

    def list_hypervisors(self, call: Call) -> Response:
        self._policy(call, "os_compute_api:os-hypervisors:list")
        minor = self._minor(call)
        return Response.json(200, {"hypervisors": [self._hypervisor_view(n + 1, host, minor, False)
                                                   for n, host in enumerate(self.cloud.compute_hosts)]})

    def list_hypervisors_detail(self, call: Call) -> Response:
        self._policy(call, "os_compute_api:os-hypervisors:list-detail")
        minor = self._minor(call)
        return Response.json(200, {"hypervisors": [self._hypervisor_view(n + 1, host, minor, True)
                                                   for n, host in enumerate(self.cloud.compute_hosts)]})

    def show_hypervisor(self, call: Call, hypervisor_id: str) -> Response:
        self._policy(call, "os_compute_api:os-hypervisors:show")
        minor = self._minor(call)
        for number, host in enumerate(self.cloud.compute_hosts, start=1):
            view = self._hypervisor_view(number, host, minor, True)
            if str(view["id"]) == hypervisor_id:
                return Response.json(200, {"hypervisor": view})
        raise ApiError(404, f"Hypervisor with ID '{hypervisor_id}' could not be found.")

    def list_migrations(self, call: Call) -> Response:
        self._policy(call, "os_compute_api:os-migrations:index")
        minor = self._minor(call)
        instance = call.request.arg("instance_uuid")
        migrations = []
        for migration in reversed(self.migrations):
            if instance and migration.instance_uuid != instance:
                continue
            view = {"id": migration.id}
            if minor >= 59:
                view["uuid"] = migration.uuid
            view.update({"source_compute": migration.source_compute, "dest_compute": migration.dest_compute,
                         "source_node": migration.source_compute, "dest_node": migration.dest_compute,
                         "dest_host": "127.0.0.1", "old_instance_type_id": migration.old_flavor.internal_id,
                         "new_instance_type_id": migration.new_flavor.internal_id,
                         "instance_uuid": migration.instance_uuid, "status": migration.status})
            if minor >= 23:
                view["migration_type"] = "resize"
            if minor >= 80:
                view["user_id"] = migration.user_id
                view["project_id"] = migration.project_id
            view["created_at"] = now_iso(migration.created_at, micro=True)
            view["updated_at"] = now_iso(migration.updated_at, micro=True)
            migrations.append(view)
        return Response.json(200, {"migrations": migrations})

    def availability_zones(self, call: Call) -> Response:
        return Response.json(200, {"availabilityZoneInfo": [
            {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]})


def _strict_bool(text: str, message: str) -> bool:
    """oslo's bool_from_string(strict=True): its true and false words, anything else a 400."""
    word = text.strip().lower()
    if word in ("1", "t", "true", "on", "y", "yes"):
        return True
    if word in ("0", "f", "false", "off", "n", "no"):
        return False
    raise ApiError(400, message)


def _fingerprint(public_key: str) -> str:
    """MD5 of the key blob in colon hex, as Nova computes it; ValueError if the key does not load
    as an OpenSSH public key (a malformed or oversized one, as Nova's check with cryptography)."""
    from cryptography.hazmat.primitives import serialization
    parts = public_key.strip().split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-")):
        raise ValueError("not an OpenSSH public key")
    try:
        serialization.load_ssh_public_key(public_key.encode())
    except Exception as exc:   # cryptography raises ValueError or UnsupportedAlgorithm
        raise ValueError(str(exc)) from None
    blob = base64.b64decode(parts[1].encode(), validate=True)
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _generate_keypair() -> tuple[str, str]:
    """(private PEM, OpenSSH public key) of a new RSA key, as Nova generates them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public + " Generated-by-Nova"
