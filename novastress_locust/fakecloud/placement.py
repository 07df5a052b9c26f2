"""Placement: one resource provider per compute host, inventories, usages, allocations.

Compute claims through the Python interface (`claim`, `free`, `move`); the HTTP API
shows the same state to admins with `OpenStack-API-Version: placement 1.x`.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from .http import REASONS, Response
from .service import ApiError, Call, Service

MIN_VERSION = (1, 0)
MAX_VERSION = (1, 39)
VERSION_RE = re.compile(r"^placement\s+(?:(\d+)\.(\d+)|(latest))$", re.IGNORECASE)
KEYSTONE_401 = "The request you have made requires authentication."


@dataclass
class Inventory:
    total: int
    reserved: int = 0
    min_unit: int = 1
    max_unit: int = 0
    step_size: int = 1
    allocation_ratio: float = 1.0

    @property
    def capacity(self) -> int:
        return int((self.total - self.reserved) * self.allocation_ratio)

    def as_dict(self) -> dict:
        return {"total": self.total, "reserved": self.reserved, "min_unit": self.min_unit,
                "max_unit": self.max_unit or self.total, "step_size": self.step_size,
                "allocation_ratio": self.allocation_ratio}


@dataclass
class Provider:
    uuid: str
    name: str
    inventories: dict[str, Inventory]
    generation: int = 1
    usage: dict[str, int] = field(default_factory=dict)
    consumers: set[str] = field(default_factory=set)


@dataclass
class Consumer:
    uuid: str
    project_id: str
    user_id: str
    # provider uuid -> resources held there
    allocations: dict[str, dict[str, int]] = field(default_factory=dict)
    generation: int = 1


class Placement(Service):
    name = "placement"
    prefix = "/placement"
    log_name = "placement-api"

    def setup(self) -> None:
        config = self.cloud.config
        self.providers: dict[str, Provider] = {}
        self.provider_of_host: dict[str, str] = {}
        self.consumers: dict[str, Consumer] = {}
        for host in self.cloud.compute_hosts:
            # stable per host name: a restarted cloud shows the same providers
            provider_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{host}.novastress-fakecloud"))
            self.providers[provider_id] = Provider(provider_id, host, {
                "VCPU": Inventory(config.host_capacity_vcpus),
                "MEMORY_MB": Inventory(config.host_capacity_ram_mb),
                "DISK_GB": Inventory(100000)})
            self.provider_of_host[host] = provider_id
        r = self.router
        r.add("GET", "", self.root, auth=False)
        r.add("GET", "/resource_providers", self.list_providers)
        r.add("GET", "/resource_providers/{provider_id}", self.show_provider)
        r.add("GET", "/resource_providers/{provider_id}/inventories", self.show_inventories)
        r.add("GET", "/resource_providers/{provider_id}/usages", self.show_usages)
        r.add("GET", "/resource_providers/{provider_id}/allocations", self.provider_allocations)
        r.add("GET", "/allocations/{consumer_id}", self.show_allocations)
        r.add("PUT", "/allocations/{consumer_id}", self.put_allocations)
        r.add("DELETE", "/allocations/{consumer_id}", self.delete_allocations)
        r.add("GET", "/usages", self.project_usages)

    # -- interface for compute ---------------------------------------------
    def claim(self, consumer_id: str, host: str, resources: dict[str, int], project_id: str,
              user_id: str) -> bool:
        """Allocate resources on the host's provider for the consumer; False when it lacks room."""
        provider = self.providers[self.provider_of_host[host]]
        consumer = self.consumers.get(consumer_id)
        held = consumer.allocations.get(provider.uuid, {}) if consumer else {}
        if not self._fits(provider, resources, held):
            return False
        if consumer is None:
            consumer = self.consumers[consumer_id] = Consumer(consumer_id, project_id, user_id)
        else:
            consumer.generation += 1
        self._replace(consumer, {provider.uuid: dict(resources)})
        return True

    def free(self, consumer_id: str) -> None:
        consumer = self.consumers.pop(consumer_id, None)
        if consumer is not None:
            self._replace(consumer, {})

    def move(self, consumer_id: str, new_host: str, resources: dict[str, int]) -> bool:
        """Move the consumer's allocation to another host (resize); False when it lacks room."""
        consumer = self.consumers.get(consumer_id)
        if consumer is None:
            return False
        provider = self.providers[self.provider_of_host[new_host]]
        if not self._fits(provider, resources, consumer.allocations.get(provider.uuid, {})):
            return False
        consumer.generation += 1
        self._replace(consumer, {provider.uuid: dict(resources)})
        return True

    def usage(self, host: str) -> dict[str, int]:
        provider = self.providers[self.provider_of_host[host]]
        return {rc: provider.usage.get(rc, 0) for rc in provider.inventories}

    def allocations_of(self, consumer_id: str) -> dict:
        """{provider uuid: {"generation": n, "resources": {...}}}, as GET /allocations shows."""
        consumer = self.consumers.get(consumer_id)
        if consumer is None:
            return {}
        return {rp: {"generation": self.providers[rp].generation, "resources": dict(resources)}
                for rp, resources in consumer.allocations.items()}

    # -- accounting --------------------------------------------------------
    def _fits(self, provider: Provider, resources: dict[str, int], held: dict[str, int]) -> bool:
        for rc, amount in resources.items():
            inventory = provider.inventories.get(rc)
            if inventory is None and amount:
                return False
            if inventory and provider.usage.get(rc, 0) - held.get(rc, 0) + amount > inventory.capacity:
                return False
        return True

    def _replace(self, consumer: Consumer, allocations: dict[str, dict[str, int]]) -> None:
        """Swap the consumer's allocations, keeping provider usages and generations in step."""
        for rp, resources in consumer.allocations.items():
            provider = self.providers[rp]
            for rc, amount in resources.items():
                provider.usage[rc] = provider.usage.get(rc, 0) - amount
            provider.consumers.discard(consumer.uuid)
            provider.generation += 1
        consumer.allocations = {rp: r for rp, r in allocations.items() if r}
        for rp, resources in consumer.allocations.items():
            provider = self.providers[rp]
            for rc, amount in resources.items():
                provider.usage[rc] = provider.usage.get(rc, 0) + amount
            provider.consumers.add(consumer.uuid)
            provider.generation += 1

    # -- request flow --------------------------------------------------------
    def before(self, call: Call) -> None:
        # a header may name several services ("compute 2.53, placement 1.28"): Placement reads its own
        # and ignores the others, as microversion_parse does
        asked = next((part.strip() for part in (call.request.header("openstack-api-version") or "").split(",")
                      if part.strip().lower().startswith("placement")), None)
        version = MIN_VERSION
        if asked:
            found = VERSION_RE.match(asked.strip())
            if not found:
                raise ApiError(400, f"invalid version string: {asked}", "badrequest")
            version = MAX_VERSION if found.group(3) else (int(found.group(1)), int(found.group(2)))
            if not MIN_VERSION <= version <= MAX_VERSION:
                raise ApiError(406, f"Unacceptable version header: {version[0]}.{version[1]}",
                               "notacceptable")
        call.microversion = f"{version[0]}.{version[1]}"
        if call.token is not None and not call.token.is_admin:
            raise ApiError(403, "Policy does not allow placement:resource_providers:list to be "
                                "performed.", "forbidden")

    def _version(self, call: Call) -> tuple[int, int]:
        major, _, minor = (call.microversion or "1.0").partition(".")
        return int(major), int(minor)

    def decorate(self, call: Call, response: Response) -> None:
        super().decorate(call, response)
        response.headers.append(("OpenStack-API-Version",
                                 f"placement {call.microversion or '1.0'}"))
        response.headers.append(("Vary", "openstack-api-version"))

    def error(self, call: Call, error: ApiError) -> Response:
        if error.status == 401:
            return Response.json(401, {"error": {"code": 401, "title": "Unauthorized",
                                                 "message": KEYSTONE_401}}, error.headers)
        title = REASONS.get(error.status, "Error")
        code = "placement.concurrent_update" if error.kind == "concurrent" else "placement.undefined_code"
        # webob's text: the status explanation, a blank line, then the message
        explanation = ("The server could not comply with the request since it is either malformed "
                       "or otherwise incorrect.\n\n " if error.status == 400 else "")
        detail = f"{explanation}{error.message}\n\n  "
        return Response.json(error.status, {"errors": [{
            "status": error.status, "title": title, "detail": detail, "code": code,
            "request_id": call.request_id}]}, error.headers)

    def finished(self, call: Call, response: Response) -> None:
        request = call.request
        self.log(call, "INFO", "placement.requestlog",
                 f'{request.remote_addr} "{request.method} {request.target}" status: '
                 f"{response.status} len: {len(response.body)} "
                 f"microversion: {call.microversion or '1.0'}")

    # -- views ---------------------------------------------------------------
    def _provider(self, provider_id: str) -> Provider:
        provider = self.providers.get(provider_id)
        if provider is None:
            raise ApiError(404, f"No resource provider with uuid {provider_id} found", "notfound")
        return provider

    def _provider_view(self, call: Call, provider: Provider) -> dict:
        base = f"{self.prefix}/resource_providers/{provider.uuid}"
        view = {"uuid": provider.uuid, "name": provider.name, "generation": provider.generation,
                "links": [{"rel": "self", "href": base},
                          {"rel": "inventories", "href": f"{base}/inventories"},
                          {"rel": "usages", "href": f"{base}/usages"}]}
        version = self._version(call)
        if version >= (1, 1):
            view["links"].append({"rel": "aggregates", "href": f"{base}/aggregates"})
        if version >= (1, 6):
            view["links"].append({"rel": "traits", "href": f"{base}/traits"})
        if version >= (1, 11):
            view["links"].append({"rel": "allocations", "href": f"{base}/allocations"})
        if version >= (1, 14):
            view["parent_provider_uuid"] = None
            view["root_provider_uuid"] = provider.uuid
        return view

    def root(self, call: Call) -> Response:
        return Response.json(200, {"versions": [{
            "id": "v1.0", "max_version": f"{MAX_VERSION[0]}.{MAX_VERSION[1]}",
            "min_version": f"{MIN_VERSION[0]}.{MIN_VERSION[1]}", "status": "CURRENT",
            "links": [{"rel": "self", "href": ""}]}]})

    def list_providers(self, call: Call) -> Response:
        request = call.request
        name, wanted = request.arg("name"), request.arg("uuid")
        found = [p for p in self.providers.values()
                 if (name is None or p.name == name) and (wanted is None or p.uuid == wanted)]
        return Response.json(200, {"resource_providers": [self._provider_view(call, p)
                                                          for p in found]})

    def show_provider(self, call: Call, provider_id: str) -> Response:
        return Response.json(200, self._provider_view(call, self._provider(provider_id)))

    def show_inventories(self, call: Call, provider_id: str) -> Response:
        provider = self._provider(provider_id)
        return Response.json(200, {"resource_provider_generation": provider.generation,
                                   "inventories": {rc: inv.as_dict()
                                                   for rc, inv in provider.inventories.items()}})

    def show_usages(self, call: Call, provider_id: str) -> Response:
        provider = self._provider(provider_id)
        return Response.json(200, {"resource_provider_generation": provider.generation,
                                   "usages": {rc: provider.usage.get(rc, 0)
                                              for rc in provider.inventories}})

    def provider_allocations(self, call: Call, provider_id: str) -> Response:
        provider = self._provider(provider_id)
        allocations = {c: {"resources": dict(self.consumers[c].allocations[provider.uuid])}
                       for c in provider.consumers if c in self.consumers}
        return Response.json(200, {"resource_provider_generation": provider.generation,
                                   "allocations": allocations})

    def show_allocations(self, call: Call, consumer_id: str) -> Response:
        consumer = self.consumers.get(consumer_id)
        if consumer is None:
            return Response.json(200, {"allocations": {}})
        body = {"allocations": self.allocations_of(consumer_id)}
        version = self._version(call)
        if version >= (1, 12):
            body.update(project_id=consumer.project_id, user_id=consumer.user_id)
        if version >= (1, 28):
            body["consumer_generation"] = consumer.generation
        if version >= (1, 38):
            body["consumer_type"] = "INSTANCE"
        return Response.json(200, body)

    def put_allocations(self, call: Call, consumer_id: str) -> Response:
        body = call.body()
        version = self._version(call)
        if not isinstance(body, dict) or not isinstance(body.get("allocations"), (dict, list)):
            raise ApiError(400, "JSON does not validate: 'allocations' is a required property",
                           "badrequest")
        raw = body["allocations"]
        if isinstance(raw, list):  # 1.0-1.11 list form
            raw = {item.get("resource_provider", {}).get("uuid"): {"resources": item.get("resources")}
                   for item in raw}
        wanted: dict[str, dict[str, int]] = {}
        for rp, spec in raw.items():
            provider = self.providers.get(rp)
            if provider is None:
                raise ApiError(400, f"Allocation for resource provider '{rp}' that does not exist.",
                               "badrequest")
            resources = (spec or {}).get("resources") or {}
            for rc, amount in resources.items():
                if rc not in provider.inventories:
                    raise ApiError(400, f"Inventory for '{rc}' on resource provider '{rp}' invalid.",
                                   "badrequest")
                if not isinstance(amount, int) or amount < 1:
                    raise ApiError(400, f"JSON does not validate: {amount} is less than the "
                                        "minimum of 1", "badrequest")
            wanted[rp] = dict(resources)
        consumer = self.consumers.get(consumer_id)
        if version >= (1, 28):
            if "consumer_generation" not in body:
                raise ApiError(400, "JSON does not validate: 'consumer_generation' is a required "
                                    "property", "badrequest")
            expected = consumer.generation if consumer else None
            if body["consumer_generation"] != expected:
                raise ApiError(409, f"consumer generation conflict - expected {expected} but got "
                                    f"{body['consumer_generation']}", "concurrent")
        for rp, resources in wanted.items():
            held = consumer.allocations.get(rp, {}) if consumer else {}
            if not self._fits(self.providers[rp], resources, held):
                raise ApiError(409, "Unable to allocate inventory: Unable to create allocation for "
                                    f"'{', '.join(resources)}' on resource provider '{rp}'. The "
                                    "requested amount would exceed the capacity.", "conflict")
        if consumer is None:
            consumer = self.consumers[consumer_id] = Consumer(
                consumer_id, body.get("project_id") or call.token.project_id,
                body.get("user_id") or call.token.user_id)
        else:
            consumer.generation += 1
        self._replace(consumer, wanted)
        if not consumer.allocations:
            self.consumers.pop(consumer_id, None)
        return Response(204, b"", content_type=None)

    def delete_allocations(self, call: Call, consumer_id: str) -> Response:
        if consumer_id not in self.consumers:
            raise ApiError(404, f"No allocations for consumer '{consumer_id}'", "notfound")
        self.free(consumer_id)
        return Response(204, b"", content_type=None)

    def project_usages(self, call: Call) -> Response:
        project = call.request.arg("project_id")
        if not project:
            raise ApiError(400, "Invalid query string parameters: 'project_id' is a required "
                                "property", "badrequest")
        user = call.request.arg("user_id")
        totals: dict[str, int] = {}
        for consumer in self.consumers.values():
            if consumer.project_id != project or (user and consumer.user_id != user):
                continue
            for resources in consumer.allocations.values():
                for rc, amount in resources.items():
                    totals[rc] = totals.get(rc, 0) + amount
        return Response.json(200, {"usages": totals})
