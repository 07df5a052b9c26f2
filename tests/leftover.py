"""What a test left in a cloud, by kind: one answer for the embedded cloud and the real Nova.

    leftovers(admin, member, lambda name: name.startswith("ns-1a2b3c-"))
    # {"servers": ["ns-1a2b3c-ab12-0"], "volumes": [...]}: {} when clean

`admin` and `member` are keystoneauth sessions; a service the catalog lacks has nothing left.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable

from keystoneauth1 import exceptions as ks_exceptions

COMPUTE_HEADERS = {"OpenStack-API-Version": "compute 2.79"}

# kind: (service type, path, query, list key, name field); every project's, as admin
ADMIN_LISTS = {
    "servers": ("compute", "/servers/detail", {"all_tenants": "1"}, "servers", "name"),
    "server groups": ("compute", "/os-server-groups", {"all_projects": "True"}, "server_groups", "name"),
    "floating IPs": ("network", "/v2.0/floatingips", {}, "floatingips", "description"),
    "volumes": ("volume", "/volumes/detail", {"all_tenants": "1"}, "volumes", "name"),
    "snapshots": ("volume", "/snapshots/detail", {"all_tenants": "1"}, "snapshots", "name"),
    "images": ("image", "/v2/images", {"limit": "1000"}, "images", "name"),
    "security groups": ("network", "/v2.0/security-groups", {}, "security_groups", "name"),
    "projects": ("identity", "/v3/projects", {}, "projects", "name"),
    "users": ("identity", "/v3/users", {}, "users", "name"),
}


def leftovers(admin, member, owned: Callable[[str], bool]) -> dict[str, list[str]]:
    """Names of every resource `owned(name)` accepts, by kind; a deleted server does not count."""
    found: dict[str, list[str]] = {}
    for kind, (service, path, query, key, field) in ADMIN_LISTS.items():
        records = _listed(admin, service, path, query, key)
        if kind == "servers":
            records = [record for record in records if record.get("status") != "DELETED"]
        _keep(found, kind, (record.get(field) for record in records), owned)
    # a keypair belongs to its user: the admin's and the member's
    _keep(found, "keypairs", (item["keypair"]["name"] for session in (admin, member)
                              for item in _listed(session, "compute", "/os-keypairs", {}, "keypairs")), owned)
    return found


def _keep(found: dict[str, list[str]], kind: str, names: Iterable, owned: Callable[[str], bool]) -> None:
    names = sorted(name for name in names if isinstance(name, str) and owned(name))
    if names:
        found[kind] = names


def _listed(session, service: str, path: str, query: dict, key: str) -> list[dict]:
    try:
        endpoint = session.get_endpoint(service_type=service, interface="public")
    except ks_exceptions.EndpointNotFound:
        return []
    if endpoint is None:
        return []
    endpoint = endpoint.rstrip("/")
    if service == "identity":           # catalogs differ on whether /v3 is part of it
        endpoint = re.sub(r"/v3$", "", endpoint)
    response = session.get(endpoint + path, params=query or None, raise_exc=False,
                           headers=COMPUTE_HEADERS if service == "compute" else None)
    assert response.status_code == 200, f"{service} GET {path}: {response.status_code} {response.text[:300]}"
    return response.json()[key]
