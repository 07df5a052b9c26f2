"""Quota classes in the embedded cloud (`/os-quota-class-sets/{class}`, admin only), as Nova 34
answers them. The class named `default` is every project's default limits; another class is
kept and shown, and limits nothing (Nova's DB driver reads only `default`).

    GET /v2.1/os-quota-class-sets/default      PUT /v2.1/os-quota-class-sets/default
                                                  {"quota_class_set": {"instances": 20}}

The keys follow the microversion: before 2.50 no server group quotas and the network ones
(fixed_ips, floating_ips, security groups and their rules); from 2.50 the reverse; from 2.57 no
injected file quotas either.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .http import Response
from .service import ApiError, Call

if TYPE_CHECKING:  # pragma: no cover
    from .compute import Compute

NETWORK = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")
INJECTED = ("injected_file_content_bytes", "injected_file_path_bytes", "injected_files")
SERVER_GROUPS = ("server_group_members", "server_groups")
EVERY = ("cores", "instances", "key_pairs", "metadata_items", "ram", *SERVER_GROUPS, *NETWORK, *INJECTED)


def class_keys(minor: int) -> list[str]:
    if minor < 50:
        return sorted(key for key in EVERY if key not in SERVER_GROUPS)
    return sorted(key for key in EVERY if key not in NETWORK and (minor < 57 or key not in INJECTED))


class QuotaClasses:
    """The routes; the `default` class's values are the embedded Compute's default limits."""

    def __init__(self, compute: "Compute") -> None:
        self.compute = compute
        self.others: dict[str, dict[str, int]] = {}     # classes other than default

    def add_routes(self, add: Callable) -> None:
        add("GET", "/v2.1/os-quota-class-sets/{quota_class}", self.show)
        add("PUT", "/v2.1/os-quota-class-sets/{quota_class}", self.update)

    def _values(self, quota_class: str) -> dict[str, int]:
        # a class without a value of its own takes the default class's
        defaults = {key: self.compute._quota_value("", key) for key in EVERY}
        return {**defaults, **self.others.get(quota_class, {})} if quota_class != "default" else defaults

    def show(self, call: Call, quota_class: str) -> Response:
        self.compute._policy(call, "os_compute_api:os-quota-class-sets:show")
        values = self._values(quota_class)
        return Response.json(200, {"quota_class_set": {
            "id": quota_class, **{key: values[key] for key in class_keys(self.compute._minor(call))}}})

    def update(self, call: Call, quota_class: str) -> Response:
        minor = self.compute._minor(call)
        spec = self.compute._body(call, "quota_class_set")
        allowed = set(class_keys(minor)) | set(EVERY if minor < 50 else ())
        updates = {}
        for key, value in spec.items():
            if key not in allowed:
                raise ApiError(400, f"Invalid input for field/attribute quota_class_set. Value: {spec!r}. "
                                    f"Additional properties are not allowed ('{key}' was unexpected)")
            try:
                number = int(value)
            except (TypeError, ValueError):
                number = None
            if number is None or isinstance(value, bool) or number < -1:
                raise ApiError(400, f"Invalid input for field/attribute {key}. Value: {value}. "
                                    f"{value!r} is not valid under any of the given schemas")
            updates[key] = number
        self.compute._policy(call, "os_compute_api:os-quota-class-sets:update")
        if quota_class == "default":
            self.compute.default_quotas.update(updates)
        else:
            self.others.setdefault(quota_class, {}).update(updates)
        values = self._values(quota_class)
        return Response.json(200, {"quota_class_set": {key: values[key] for key in class_keys(minor)}})
