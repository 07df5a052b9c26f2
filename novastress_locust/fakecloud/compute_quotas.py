"""The embedded cloud's Nova quotas: the usage it counts per project, nova-api's check and the
conductor's re-check of a boot, and the routes that show and set them.

    GET|PUT|DELETE /v2.1/os-quota-sets/{project_id}     GET .../detail     GET .../defaults
    GET /v2.1/limits

`ComputeQuotas` is a mixin of `Compute` (compute.py).
"""
from __future__ import annotations

from .compute_model import Flavor, Server
from .http import Response
from .service import ApiError, Call

class ComputeQuotas:
    """Quota limits and usage, their checks, os-quota-sets and limits."""

    # -- limits, usage and the checks ------------------------------------------
    def _limits(self, project_id: str) -> dict[str, int]:
        config = self.cloud.config
        limits = {"cores": config.quota_cores, "instances": config.quota_instances, "key_pairs": 100,
                  "metadata_items": 128, "ram": config.quota_ram, "server_group_members": 10,
                  "server_groups": 10, "injected_file_content_bytes": 10240,
                  "injected_file_path_bytes": 255, "injected_files": 5}
        limits.update((key, value) for key, value in self.default_quotas.items() if key in limits)
        limits.update(self.quotas.get(project_id, {}))
        return limits

    def _usage(self, project_id: str) -> dict[str, int]:
        usage = self.usage.get(project_id)
        if usage is None:
            usage = self.usage[project_id] = {"instances": 0, "cores": 0, "ram": 0}
        return usage

    def _check_quota(self, project_id: str, count: int, flavor: Flavor) -> bool:
        """nova-api's check: 403 over the quota; True when the boot takes the last of it."""
        limits = self._limits(project_id)
        usage = self._usage(project_id)
        last = False
        for resource, wanted in (("instances", count), ("cores", count * flavor.vcpus),
                                 ("ram", count * flavor.ram)):
            limit = limits[resource]
            if limit >= 0:
                if usage[resource] + wanted > limit:
                    raise ApiError(403, f"Quota exceeded for {resource}: Requested {wanted}, but already "
                                        f"used {usage[resource]} of {limit} {resource}")
                last = last or usage[resource] + 2 * wanted > limit
        return last

    def _fitting_count(self, project_id: str, flavor: Flavor, least: int, most: int) -> int:
        """How many servers of a min_count/max_count boot to make: as many as the quota leaves
        room for, at most max_count; max_count when not even min_count fits (the check refuses it)."""
        limits, usage = self._limits(project_id), self._usage(project_id)
        room = most
        for resource, each in (("instances", 1), ("cores", flavor.vcpus), ("ram", flavor.ram)):
            if limits[resource] >= 0 and each:
                room = min(room, (limits[resource] - usage[resource]) // each)
        return room if least <= room else most

    def _recheck_quota(self, server: Server) -> str | None:
        """The conductor's re-check once the instance exists: Nova's TooManyInstances text, or None.

        It counts instances in the cell (boots still being scheduled are build requests, not
        counted), with a delta of 0, so the message says the whole limit is used."""
        project_id = server.project_id
        limits = self._limits(project_id)
        usage = self._usage(project_id)
        # cheap when the boots still scheduling do not matter: the usage counts them too
        if all(limits[r] < 0 or usage[r] <= limits[r] for r in ("instances", "cores", "ram")):
            return None
        in_cell = dict(usage)
        for other_id in self.scheduling:
            other = self.servers.get(other_id)
            if other is not None and other.project_id == project_id:
                in_cell["instances"] -= 1
                in_cell["cores"] -= other.flavor.vcpus
                in_cell["ram"] -= other.flavor.ram
        overs = [r for r in ("cores", "instances", "ram") if 0 <= limits[r] < in_cell[r]]
        if not overs:
            return None
        count, flavor = server.boot_count, server.flavor
        requested = {"instances": count, "cores": count * flavor.vcpus, "ram": count * flavor.ram}
        allowed = ", ".join(str(limits[r]) for r in overs)
        names = ", ".join(overs)
        return (f"Quota exceeded for {names}: Requested {', '.join(str(requested[r]) for r in overs)}, "
                f"but already used {allowed} of {allowed} {names}")

    def _charge(self, project_id: str, flavor: Flavor, sign: int, instances: bool = True) -> None:
        usage = self._usage(project_id)
        if instances:
            usage["instances"] += sign
        usage["cores"] += sign * flavor.vcpus
        usage["ram"] += sign * flavor.ram

    def on_project_created(self, project) -> None:
        self._usage(project.id)

    # -- os-quota-sets and limits ---------------------------------------------
    def _quota_keys(self, minor: int) -> list[str]:
        keys = ["cores", "instances", "key_pairs", "metadata_items", "ram", "server_group_members",
                "server_groups"]
        if minor < 57:
            keys += ["injected_file_content_bytes", "injected_file_path_bytes", "injected_files"]
        if minor < 36:
            keys += ["fixed_ips", "floating_ips", "security_group_rules", "security_groups"]
        return sorted(keys)

    def _quota_value(self, project_id: str, key: str) -> int:
        limits = self._limits(project_id)
        if key in limits:
            return limits[key]
        config = self.cloud.config
        return self.quotas.get(project_id, {}).get(key, self.default_quotas.get(key, {
            "floating_ips": config.quota_floating_ips, "fixed_ips": -1, "security_groups": 10,
            "security_group_rules": 20}.get(key, -1)))

    def _quota_project(self, call: Call, project_id: str) -> None:
        if project_id != call.token.project_id and not self._admin(call):
            raise ApiError(403, "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.")

    def show_quotas(self, call: Call, project_id: str) -> Response:
        self._quota_project(call, project_id)
        body = {"id": project_id}
        for key in self._quota_keys(self._minor(call)):
            body[key] = self._quota_value(project_id, key)
        return Response.json(200, {"quota_set": body})

    def show_quota_defaults(self, call: Call, project_id: str) -> Response:
        body = {"id": project_id}
        saved = self.quotas.pop(project_id, None)
        try:
            for key in self._quota_keys(self._minor(call)):
                body[key] = self._quota_value(project_id, key)
        finally:
            if saved is not None:
                self.quotas[project_id] = saved
        return Response.json(200, {"quota_set": body})

    def show_quotas_detail(self, call: Call, project_id: str) -> Response:
        self._quota_project(call, project_id)
        usage = self._usage(project_id)
        in_use = {"instances": usage["instances"], "cores": usage["cores"], "ram": usage["ram"],
                  "server_groups": sum(1 for g in self.server_groups.values() if g.project_id == project_id)}
        body = {"id": project_id}
        for key in self._quota_keys(self._minor(call)):
            body[key] = {"limit": self._quota_value(project_id, key), "in_use": in_use.get(key, 0),
                         "reserved": 0}
        return Response.json(200, {"quota_set": body})

    def update_quotas(self, call: Call, project_id: str) -> Response:
        self._policy(call, "os_compute_api:os-quota-sets:update")
        spec = self._body(call, "quota_set")
        known = set(self._quota_keys(1)) | set(self._quota_keys(self._minor(call)))
        updates = {}
        for key, value in spec.items():
            if key == "force":
                continue
            if key not in known:
                raise ApiError(400, f"Invalid input for field/attribute quota_set. Value: {spec!r}. "
                                    f"Additional properties are not allowed ('{key}' was unexpected)")
            try:
                updates[key] = int(value)
            except (TypeError, ValueError):
                raise ApiError(400, f"Invalid input for field/attribute {key}. Value: {value}.") from None
        self.quotas.setdefault(project_id, {}).update(updates)
        body = {key: self._quota_value(project_id, key) for key in self._quota_keys(self._minor(call))}
        return Response.json(200, {"quota_set": body})

    def delete_quotas(self, call: Call, project_id: str) -> Response:
        """Back to the defaults: the project's own limits are forgotten."""
        self._policy(call, "os_compute_api:os-quota-sets:delete")
        self.quotas.pop(project_id, None)
        return Response(202, b"", content_type=None)

    def limits(self, call: Call) -> Response:
        minor = self._minor(call)
        project_id = call.token.project_id
        limits = self._limits(project_id)
        usage = self._usage(project_id)
        groups = sum(1 for g in self.server_groups.values() if g.project_id == project_id)
        absolute = {"maxTotalCores": limits["cores"]}
        if minor < 57:
            absolute.update({"maxPersonality": limits["injected_files"],
                             "maxPersonalitySize": limits["injected_file_content_bytes"]})
        absolute["maxTotalInstances"] = limits["instances"]
        absolute["maxTotalKeypairs"] = limits["key_pairs"]
        absolute["maxServerMeta"] = limits["metadata_items"]
        if minor < 39:
            absolute["maxImageMeta"] = 128
        absolute.update({"maxTotalRAMSize": limits["ram"], "maxServerGroups": limits["server_groups"],
                         "maxServerGroupMembers": limits["server_group_members"]})
        if minor < 36:
            absolute.update({"maxTotalFloatingIps": -1, "maxSecurityGroups": -1,
                             "maxSecurityGroupRules": -1})
        absolute.update({"totalRAMUsed": usage["ram"], "totalCoresUsed": usage["cores"],
                         "totalInstancesUsed": usage["instances"]})
        if minor < 36:
            absolute.update({"totalFloatingIpsUsed": 0, "totalSecurityGroupsUsed": 0})
        absolute["totalServerGroupsUsed"] = groups
        return Response.json(200, {"limits": {"rate": [], "absolute": absolute}})
