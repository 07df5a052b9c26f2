"""Which hosts to watch: the controller, plus compute nodes from a list, os-services or nova-manage.

    hosts = parse_hosts("ctl, 10.0.0.7:2222")                 # [Target("ctl"), Target("10.0.0.7", 2222)]
    mapping = parse_host_map("compute-1=10.0.0.11:22,compute-2=10.0.0.12")
    names = discover_os_services(keystone_session)           # ["compute-1", "compute-2"]
    targets = resolve(["ctl"] + names, mapping)               # names -> SSH addresses
"""
from __future__ import annotations

import re
from dataclasses import dataclass


class TargetError(ValueError):
    """A host list or host map that cannot be parsed, or discovery that failed; one clear line."""


@dataclass(frozen=True)
class Target:
    """One host to watch: `name` is how the cloud calls it, address/port how SSH reaches it."""

    name: str
    address: str
    port: int | None = None

    @property
    def label(self) -> str:
        return self.name


def parse_address(text: str, option: str = "--log-hosts") -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port`."""
    text = text.strip()
    match = re.fullmatch(r"\[(?P<host>[^\]]+)\](?::(?P<port>\d+))?", text) \
        or re.fullmatch(r"(?P<host>[^:\s]+)(?::(?P<port>\d+))?", text)
    if not match:
        # a bare IPv6 address without brackets has no port
        if text.count(":") > 1 and " " not in text:
            return text, None
        raise TargetError(f"{option}: {text!r} is not host[:port]; write e.g. compute-1 or 10.0.0.7:2222")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise TargetError(f"{option}: port {port} of {text!r} is out of range")
    return match["host"], port


def parse_hosts(text: str | list[str] | None) -> list[Target]:
    """Comma- or space-separated `host[:port]` list."""
    items = _split(text)
    targets = []
    for item in items:
        host, port = parse_address(item)
        targets.append(Target(item if port else host, host, port))
    return targets


def parse_host_map(text: str | list[str] | None) -> dict[str, tuple[str, int | None]]:
    """`name=host[:port],…` -> {name: (host, port)}."""
    mapping: dict[str, tuple[str, int | None]] = {}
    for item in _split(text):
        name, sep, address = item.partition("=")
        if not sep or not name.strip() or not address.strip():
            raise TargetError(f"--log-host-map: {item!r} is not name=host[:port]; "
                              f"write e.g. compute-1=10.0.0.11:22")
        mapping[name.strip()] = parse_address(address, "--log-host-map")
    return mapping


def resolve(names: list[str], mapping: dict[str, tuple[str, int | None]] | None = None) -> list[Target]:
    """Service host names (or `host[:port]` words) -> targets, through the host map, without duplicates."""
    mapping = mapping or {}
    targets: list[Target] = []
    seen: set[tuple[str, int | None]] = set()
    for name in names:
        if name in mapping:
            address, port = mapping[name]
            target = Target(name, address, port)
        else:
            address, port = parse_address(name)
            target = Target(name, address, port)
        if (target.address, target.port) not in seen:
            seen.add((target.address, target.port))
            targets.append(target)
    return targets


def discover_os_services(session, binary: str = "nova-compute", region_name: str | None = None,
                         interface: str | None = None) -> list[str]:
    """Host names of the cloud's compute services (admin: `GET /os-services`)."""
    from keystoneauth1 import adapter, exceptions
    compute = adapter.Adapter(session, service_type="compute", region_name=region_name,
                              interface=interface)
    try:
        response = compute.get("/os-services", params={"binary": binary}, raise_exc=False)
    except exceptions.ClientException as error:
        raise TargetError(f"os-services discovery failed: {error}; pass --log-hosts instead") from None
    if response.status_code == 403:
        raise TargetError("os-services discovery needs an admin user (403); use admin credentials or "
                          "list the compute nodes with --log-hosts")
    if response.status_code != 200:
        raise TargetError(f"os-services discovery failed: HTTP {response.status_code}; pass --log-hosts instead")
    hosts = []
    for service in response.json().get("services", []):
        if service.get("binary") == binary and service.get("host") and service["host"] not in hosts:
            hosts.append(service["host"])
    return hosts


def parse_service_list(output: str, binary: str = "nova-compute") -> list[str]:
    """Hosts of `binary` in `nova-manage service list` output.

    Accepts the old whitespace table (`Binary Host Zone Status State Updated_At`),
    PrettyTable output (`| Id | Binary | Host | …`), any column order, and noise
    such as deprecation warnings before the header.
    """
    hosts: list[str] = []
    columns: list[str] | None = None
    for raw in output.splitlines():
        line = raw.strip()
        if not line or set(line) <= set("+-=| "):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")] if "|" in line else line.split()
        lowered = [c.lower() for c in cells]
        if columns is None:
            if "binary" in lowered and "host" in lowered:
                columns = lowered
            continue
        if len(cells) < len(columns) and "|" in line:
            continue
        try:
            row_binary = cells[columns.index("binary")]
            host = cells[columns.index("host")]
        except IndexError:
            continue
        if row_binary == binary and host not in hosts:
            hosts.append(host)
    if columns is None:
        # no header at all: rows still name the binary followed by the host
        for raw in output.splitlines():
            words = raw.replace("|", " ").split()
            if binary in words:
                index = words.index(binary)
                if index + 1 < len(words) and words[index + 1] not in hosts:
                    hosts.append(words[index + 1])
    return hosts


def _split(text: str | list[str] | None) -> list[str]:
    if not text:
        return []
    if isinstance(text, (list, tuple)):
        text = ",".join(text)
    return [item for item in re.split(r"[,\s]+", text) if item]
