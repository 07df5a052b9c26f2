"""What the cloud offers, learnt once before the first user spawns, and what each action needs.

    profile = probe(state, client)          # the preflight, on the master or the local runner
    print(profile.table())                  # one short table: services, flavors, images, ...
    profile.lacks(Needs(flavors=2, purpose="resize"))   # "the cloud has one flavor, resize needs two"

Real clouds differ: no Cinder, one flavor, one compute host, no external network. What a cloud
lacks is not an error: `fit()` leaves out of the run every task, storm action or bounce step
whose `Needs` the profile does not meet, and says why in one line each
(`skipping resize_confirm: the cloud has one flavor, resize needs two`); a user class left
without tasks does not spawn. The master hands the profile to the workers with the options
Locust sends them at test start (`novastress_profile`), and each process fits its own classes.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from .credentials import CATALOG_TYPES, CloudTarget

# the services of a Nova cloud the table names when the catalog lacks them
USUAL_SERVICES = ("compute", "image", "volume", "network", "placement")
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _word(number: int) -> str:
    """`_word(2)` -> "two"; `_word(12)` -> "12"."""
    return NUMBERS[number] if 0 <= number < len(NUMBERS) else str(number)


def _count(number: int, noun: str) -> str:
    """`_count(1, "flavor")` -> "one flavor"; `_count(12, "host")` -> "12 hosts"."""
    return f"{_word(number)} {noun}{'' if number == 1 else 's'}"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


@dataclass(frozen=True)
class Needs:
    """What a task needs of the cloud; `purpose` names it in a reason ("resize needs two").

        @stress_action(services=("compute",), needs=Needs(flavors=2, purpose="resize"))
    """

    services: tuple[str, ...] = ()          # catalog service types (compute, volume, network…)
    microversion: str | None = None         # least compute microversion
    flavors: int = 1
    floating_ip: bool = False               # an external network, and servers with a port
    compute_hosts: int = 1
    admin: bool = False
    purpose: str | None = None

    def with_services(self, services: tuple[str, ...]) -> "Needs":
        """These needs plus the services (no repeats, in order)."""
        return replace(self, services=tuple(dict.fromkeys((*services, *self.services))))


# a resize needs a flavor to resize to
RESIZE = Needs(flavors=2, purpose="resize")


@dataclass
class CloudProfile:
    """The cloud as the run found it; a None count is unknown (it could not be looked at)."""

    services: dict[str, str] = field(default_factory=dict)    # catalog type -> API version ("": unknown)
    compute_microversions: tuple[str, str] | None = None      # (min, max) of the compute API
    flavors: list[str] = field(default_factory=list)           # names, smallest first
    flavor: str = ""                                           # the one servers boot with
    images: int | None = None                                  # active images; None: no image service
    image: str = ""
    networks: list[tuple[str, bool]] = field(default_factory=list)   # (name, external)
    network: str = "none"                                      # what servers boot on
    compute_hosts: int | None = None                           # nova-compute up and enabled (admin)
    admin: bool = False                                        # admin credentials that work
    quotas: dict[str, int] | None = None                       # instances, cores, ram of the project

    # -- what the cloud has -------------------------------------------------------------------
    def has(self, service: str) -> bool:
        """Whether the catalog lists the service, under any of its types (Cinder: block-storage…)."""
        return any(kind in self.services for kind in CATALOG_TYPES.get(service, (service,)))

    @property
    def external_networks(self) -> list[str]:
        return [name for name, external in self.networks if external]

    def lacks(self, needs: Needs, name: str) -> str | None:
        """Why the cloud cannot run what has these needs (`name` when needs have no purpose);
        None when it can. Unknown (a host count without admin credentials) is no reason."""
        purpose = needs.purpose or name
        missing = [service for service in needs.services if not self.has(service)]
        if missing:
            # Cinder is listed as block-storage, volumev3 or volume: say the one word
            named = dict.fromkeys("volume" if service in CATALOG_TYPES["volume"] else service for service in missing)
            return f"the catalog has no {', '.join(named)} service"
        newest = self.compute_microversions[1] if self.compute_microversions else None
        if needs.microversion and newest and _version_key(newest) < _version_key(needs.microversion):
            return f"the compute API goes up to microversion {newest}, {purpose} needs {needs.microversion}"
        if len(self.flavors) < needs.flavors:
            return f"the cloud has {_count(len(self.flavors), 'flavor')}, {purpose} needs {_word(needs.flavors)}"
        if needs.floating_ip and not self.external_networks:
            return "the cloud has no external network, floating IPs need one"
        if needs.floating_ip and self.network == "none":
            return "servers boot with no network (--network), a floating IP needs their port"
        if self.compute_hosts is not None and self.compute_hosts < needs.compute_hosts:
            return (f"the cloud has {_count(self.compute_hosts, 'compute host')}, {purpose} needs "
                    f"{_word(needs.compute_hosts)}")
        if needs.admin and not self.admin:
            return f"no admin credentials (--os-admin-username), {purpose} needs them"
        return None

    # -- the table ------------------------------------------------------------------------------
    def table(self) -> str:
        """The profile as a few aligned lines, printed once at start."""
        services = ", ".join(f"{kind} {version}".rstrip() for kind, version in sorted(self.services.items()))
        absent = [service for service in USUAL_SERVICES if not self.has(service)]
        if absent:
            services += f"; not in the catalog: {', '.join(absent)}"
        names = ", ".join(self.flavors[:8]) + (", ..." if len(self.flavors) > 8 else "")
        images = "no image service" if self.images is None else f"{self.images} active"
        networks = ", ".join(name for name, external in self.networks if not external) or "none"
        networks += f"; external: {', '.join(self.external_networks)}" if self.external_networks else \
            "; no external network"
        hosts = ("unknown (os-services needs admin credentials)" if self.compute_hosts is None
                 else f"{self.compute_hosts} nova-compute up and enabled")
        quotas = "not readable" if self.quotas is None else \
            ", ".join(f"{key} {'unlimited' if value == -1 else value}{' MB' if key == 'ram' and value != -1 else ''}"
                      for key, value in self.quotas.items())
        rows = (("services", services), ("flavors", f"{len(self.flavors)}: {names} (booting {self.flavor})"),
                ("images", f"{images} (booting {self.image})"),
                ("networks", f"{networks} (booting on {self.network})"),
                ("hosts", hosts), ("quotas", quotas))
        return "\n".join(["novastress: cloud profile"] + [f"  {key:<9} {value}" for key, value in rows])

    # -- to the workers and back ------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CloudProfile":
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        profile = cls(**known)
        # msgpack turns tuples into lists
        if profile.compute_microversions:
            profile.compute_microversions = tuple(profile.compute_microversions)
        profile.networks = [tuple(network) for network in profile.networks]
        return profile


# -- probing --------------------------------------------------------------------------------------
def probe(state, client) -> CloudProfile:
    """The profile of the cloud `client` talks to; image/flavor/network already resolved in the
    options. Each look that fails leaves its part unknown: the profile never stops a run."""
    from .client import ApiError
    opts = state.options
    profile = CloudProfile()
    for kind in _catalog_types(client):
        version = _current_version(client, kind)
        profile.services[kind] = _version_text(version)
        if kind == "compute" and version and version.get("min_version") and version.get("version"):
            profile.compute_microversions = (version["min_version"], version["version"])
    flavors = client.compute.get("/flavors/detail").json().get("flavors", [])
    flavors.sort(key=lambda f: (f.get("vcpus", 0), f.get("ram", 0), f.get("disk", 0)))
    profile.flavors = [flavor.get("name") or flavor["id"] for flavor in flavors]
    profile.flavor = _name(flavors, opts.flavor)
    profile.image = opts.image
    if client.has_service("image"):
        images = client.image.get("/v2/images", params={"limit": "1000"}).json().get("images", [])
        profile.images = sum(1 for image in images if image.get("status") == "active")
        profile.image = _name(images, opts.image)
    if client.has_service("network"):
        networks = client.network.get("/v2.0/networks").json().get("networks", [])
        profile.networks = [(n.get("name") or n["id"], bool(n.get("router:external"))) for n in networks]
        profile.network = _name(networks, opts.network)
    else:
        profile.network = opts.network
    try:
        quota = client.compute.get(f"/os-quota-sets/{client.session.get_project_id()}").json()["quota_set"]
        profile.quotas = {key: quota[key] for key in ("instances", "cores", "ram") if key in quota}
    except (ApiError, ValueError, KeyError):
        pass
    admin = _admin_client(state)
    if admin is not None:
        profile.admin = True
        try:
            services = admin.compute.get("/os-services", params={"binary": "nova-compute"}).json()["services"]
            profile.compute_hosts = sum(1 for s in services if s.get("state") == "up" and s.get("status") == "enabled")
        except (ApiError, ValueError, KeyError):
            pass
    return profile


def _name(items: list[dict], wanted: str | None) -> str:
    """The name of the item with this id, else the id (or "none")."""
    found = next((item for item in items if item.get("id") == wanted), None)
    return (found.get("name") or found["id"]) if found else str(wanted or "none")


def _catalog_types(client) -> list[str]:
    """The service types the credential's catalog lists at its interface and region."""
    access = client.session.auth.get_access(client.session)
    target = client.target
    endpoints = access.service_catalog.get_endpoints(interface=target.interface, region_name=target.region_name)
    return sorted(kind for kind, found in endpoints.items() if found)


def _current_version(client, kind: str) -> dict | None:
    """The current API version record at the service's endpoint (its version document), None
    when the endpoint says nothing readable."""
    from .client import ApiError, ServiceClient
    url = client.endpoint(kind)
    # Cinder's catalog URL often ends in the project id, where no version document is
    candidates = [url] + ([url.rsplit("/", 1)[0]] if url and re.search(r"/[0-9a-f]{32}$", url) else [])
    for candidate in filter(None, candidates):
        service = ServiceClient(client, kind, candidate)
        try:
            document = service.get("", expect=(200, 300), name=f"{kind} GET / (cloud profile)").json()
        except (ApiError, ValueError):
            continue
        if not isinstance(document, dict):
            continue
        versions = document.get("versions", [document.get("version")])
        if isinstance(versions, dict):       # Keystone: {"versions": {"values": [...]}}
            versions = versions.get("values", [])
        versions = [v for v in versions or [] if isinstance(v, dict) and v.get("id")]
        current = [v for v in versions if str(v.get("status", "")).upper() in ("CURRENT", "STABLE")] or versions
        if current:
            return max(current, key=lambda v: _version_key(str(v["id"])))
    return None


def _version_text(version: dict | None) -> str:
    """`v2.1 (2.1-2.96)`: the version with its microversion range when it has one."""
    if version is None:
        return ""
    low, high = version.get("min_version"), version.get("max_version") or version.get("version")
    return f"{version['id']} ({low}-{high})" if low and high else str(version["id"])


def _admin_client(state):
    """A client with admin credentials whose token has the admin role; None without one."""
    from keystoneauth1 import exceptions as ks
    from .client import OpenStackClient
    if state.embedded is not None and not state.options.os_admin_username:
        target = CloudTarget("password", state.embedded.credentials(admin=True), "embedded cloud admin",
                             state.target.region_name if state.target else None)
    else:
        target = state.admin_target()
    try:
        client = OpenStackClient(state, target, "cloud-profile-admin")
        roles = client.roles()
    except ks.ClientException:
        return None
    return client if "admin" in roles else None


# -- leaving out what the cloud cannot run ------------------------------------------------------------
@dataclass(frozen=True)
class Skip:
    """One thing left out of the run: `what` it is ("" for a task or user class), its name, why."""

    what: str
    name: str
    reason: str


# a task's adapt(arguments, options, profile) -> (arguments to run with, or None: nothing left; skips)
Adapt = Callable[[dict, Any, CloudProfile], "tuple[dict | None, list[Skip]]"]


def fit(environment, profile: CloudProfile) -> list[str]:
    """Leave out of the user classes what the cloud cannot run; one line per reason.

    A task whose `needs` are not met goes; a task's action spec may `adapt` its arguments (the
    steps of a bounce, the storm's actions) and drop what does not fit; a class whose own `needs`
    are not met, or with no task left, is taken out of `environment.user_classes` (it does not
    spawn). Running it again changes nothing.
    """
    skips: list[Skip] = []
    options = environment.parsed_options
    environment.user_classes[:] = [cls for cls in environment.user_classes
                                   if _fit_class(cls, options, profile, skips)]
    return skip_lines(skips)


def _fit_class(cls, options, profile: CloudProfile, skips: list[Skip]) -> bool:
    needs = getattr(cls, "needs", None)
    reason = profile.lacks(needs, cls.__name__) if isinstance(needs, Needs) else None
    if reason:
        skips.append(Skip("", cls.__name__, reason))
        return False
    tasks = []
    for task in getattr(cls, "tasks", None) or []:
        name = getattr(task, "__name__", str(task))
        needs = getattr(task, "needs", None)
        reason = profile.lacks(needs, name) if isinstance(needs, Needs) else None
        if reason:
            skips.append(Skip("", name, reason))
            continue
        spec = getattr(task, "spec", None)
        if spec is not None and spec.adapt is not None:
            arguments = spec.arguments(getattr(cls, "kwargs", None))
            adapted, dropped = spec.adapt(arguments, options, profile)
            skips += dropped
            if adapted is None:
                continue
            if adapted != arguments:
                cls.kwargs = adapted
        tasks.append(task)
    if not tasks:
        # a class with no tasks of its own (one that drives itself) had nothing to leave out
        return not (getattr(cls, "tasks", None) or [])
    if len(tasks) != len(cls.tasks):
        cls.tasks = tasks
    return True


def skip_lines(skips: list[Skip]) -> list[str]:
    """`skipping storm actions resize, confirm_resize: <reason>`: one line per kind and reason."""
    grouped: dict[tuple[str, str], dict[str, None]] = {}     # (what, reason) -> names, once each in order
    for skip in skips:
        grouped.setdefault((skip.what, skip.reason), {})[skip.name] = None
    lines = []
    for (what, reason), names in grouped.items():
        kind = f"{what}{'s' if len(names) > 1 else ''} " if what else ""
        lines.append(f"skipping {kind}{', '.join(names)}: {reason}")
    return lines


__all__ = ["Needs", "RESIZE", "CloudProfile", "Skip", "probe", "fit", "skip_lines"]
