"""What the embedded cloud's Nova does to one server besides create, update and delete.

    POST /v2.1/servers/{id}/action                  reboot, stop, start, pause, shelve, resize,
                                                    rebuild, createImage, lock, rescue, ...
    GET|POST /v2.1/servers/{id}/os-volume_attachments    GET|DELETE .../{volume_id}
    GET /v2.1/servers/{id}/os-instance-actions      GET .../{request_id}

A handler checks the request and the server's state, records the instance action and starts
the change (`_start`); the state engine (compute_engine.py) finishes it later.

`ServerActions` is a mixin of `Compute` (compute.py).
"""
from __future__ import annotations

import string
import time
import uuid

from .compute_model import ACTIONS, MAX_LIMIT, ActionRule, Server, _db_time, _password
from .http import Response
from .image_proxy import checked_metadata
from .server_fields import checked_common, checked_name, checked_non_negative, invalid, not_allowed
from .service import ApiError, Call

# what Nova's fake virt driver prints as a guest's console (get_console_output)
CONSOLE = ["FAKE CONSOLE OUTPUT", "ANOTHER", "LAST LINE"]
# vm_states Nova's compute API takes a snapshot (createImage, createBackup) in
SNAPSHOT_VM_STATES = ("active", "stopped", "paused", "suspended")
# the fields of each snapshot action's body Nova requires, in its JSON schema's order
SNAPSHOT_FIELDS = {"createImage": ("name",), "createBackup": ("name", "backup_type", "rotation")}
# what Nova's rebuild schema takes, by the microversion that added it (2.57 drops personality)
REBUILD_FIELDS = {"name": 0, "imageRef": 0, "adminPass": 0, "metadata": 0, "preserve_ephemeral": 0,
                  "OS-DCF:diskConfig": 0, "accessIPv4": 0, "accessIPv6": 0, "description": 19, "key_name": 54,
                  "user_data": 57, "trusted_image_certificates": 63, "hostname": 90}


def rebuild_fields(minor: int) -> set[str]:
    return {key for key, since in REBUILD_FIELDS.items() if minor >= since} | ({"personality"} if minor < 57 else set())


class ServerActions:
    """Server actions, volume attachments and instance actions."""

    # -- server actions ----------------------------------------------------
    def _conflict(self, server: Server, name: str, vm_states: tuple[str, ...],
                  task_states: tuple = (None,)) -> None:
        if server.vm_state not in vm_states:
            raise ApiError(409, f"Cannot '{name}' instance {server.id} while it is in vm_state {server.vm_state}")
        if server.task_state not in task_states:
            raise ApiError(409, f"Cannot '{name}' instance {server.id} while it is in task_state "
                                f"{server.task_state}")

    def server_action(self, call: Call, server_id: str) -> Response:
        payload = call.body()
        server = self._server(call, server_id)
        if not isinstance(payload, dict) or len(payload) != 1:
            raise ApiError(400, "Malformed request body")
        action, spec = next(iter(payload.items()))
        handler = {"reboot": self._reboot, "lock": self._lock, "unlock": self._unlock,
                   "unshelve": self._unshelve, "resize": self._resize, "confirmResize": self._confirm_resize,
                   "revertResize": self._revert_resize, "rebuild": self._rebuild,
                   "createImage": self._create_image, "createBackup": self._create_backup,
                   "rescue": self._rescue, "shelve": self._shelve,
                   "changePassword": self._change_password,
                   "os-getConsoleOutput": self._console_output,
                   "addSecurityGroup": self._add_security_group,
                   "removeSecurityGroup": self._remove_security_group}.get(action)
        if handler is None and action not in ACTIONS:
            raise ApiError(400, f"There is no such action: {action}")
        # reading the console changes nothing; a security group is the ports' (Neutron's), not a state
        if action not in ("lock", "unlock", "os-getConsoleOutput", "addSecurityGroup", "removeSecurityGroup"):
            if action not in SNAPSHOT_FIELDS:  # Nova's snapshot and backup skip the lock check: a lock guards changes
                self._check_locked(call, server)
            self._state_change_race(call, server, action)
        if handler is not None:
            return handler(call, server, spec)
        rule = ACTIONS[action]
        self._conflict(server, rule.name, rule.vm_states)
        self._start(call, server, rule.instance_action, rule.task_state, rule.event,
                    self._finish_simple, rule)
        return Response(202, b"", [], None)

    def _rescue(self, call: Call, server: Server, spec) -> Response:
        """Rescue: 200 with the rescue password (the one asked for, else a new one)."""
        if spec is not None and not isinstance(spec, dict):
            raise ApiError(400, f"Invalid input for field/attribute rescue. Value: {spec!r}. "
                                f"{spec!r} is not of type 'object', 'null'")
        password = (spec or {}).get("adminPass") or _password()
        rule = ACTIONS["rescue"]
        self._conflict(server, rule.name, rule.vm_states)
        self._start(call, server, rule.instance_action, rule.task_state, rule.event, self._finish_simple, rule)
        return Response.json(200, {"adminPass": password})

    def _change_password(self, call: Call, server: Server, spec) -> Response:
        """changePassword: done by the time Nova answers (a synchronous call to the compute host)."""
        if not isinstance(spec, dict) or not isinstance(spec.get("adminPass"), str):
            raise ApiError(400, f"Invalid input for field/attribute changePassword. Value: {spec!r}. "
                                "'adminPass' is a required property")
        self._conflict(server, "changePassword", ("active",))
        record = self._record_action(call, server, "changePassword")
        self._event(record, "compute_set_admin_password", server.host)
        return Response(202, b"", [], None)

    def _console_output(self, call: Call, server: Server, spec) -> Response:
        """os-getConsoleOutput: the last `length` lines of the console (all of it: null or -1)."""
        length = (spec or {}).get("length") if isinstance(spec, dict) else None
        try:
            lines = None if length is None else int(length)
            if lines is not None and lines < -1:
                raise ValueError
        except (TypeError, ValueError):
            raise ApiError(400, f"Invalid input for field/attribute length. Value: {length}. "
                                f"{length!r} is not valid under any of the given schemas") from None
        if not server.host:
            raise ApiError(409, f"Instance {server.id} has not been scheduled to a compute host yet.")
        output = CONSOLE if lines in (None, -1) else CONSOLE[len(CONSOLE) - lines:] if lines else []
        return Response.json(200, {"output": "\n".join(output)})

    def _reboot(self, call: Call, server: Server, spec) -> Response:
        kind = (spec or {}).get("type") if isinstance(spec, dict) else None
        if kind not in ("SOFT", "HARD", "soft", "hard"):
            raise ApiError(400, f"Invalid input for field/attribute reboot. Value: {spec!r}. "
                                "'type' is a required property")
        hard = kind.upper() == "HARD"
        allowed = ("active", "stopped", "paused", "suspended", "error") if hard else ("active",)
        tasks = (None, "rebooting", "reboot_pending", "reboot_started") if hard else (None,)
        self._conflict(server, "reboot", allowed, tasks)
        rule = ActionRule("reboot", allowed, "rebooting_hard" if hard else "rebooting", "active", 1,
                          "compute_reboot_instance", "reboot")
        self._start(call, server, "reboot", rule.task_state, rule.event, self._finish_simple, rule)
        return Response(202, b"", [], None)

    def _lock(self, call: Call, server: Server, spec) -> Response:
        reason = spec.get("locked_reason") if isinstance(spec, dict) else None
        if reason is not None and self._minor(call) < 73:
            raise ApiError(400, "Invalid input for field/attribute lock. Value: "
                                f"{spec!r}. Additional properties are not allowed ('locked_reason' was unexpected)")
        record = self._record_action(call, server, "lock")
        server.locked = True
        server.locked_reason = reason
        server.locked_by = "admin" if self._admin(call) and call.token.project_id != server.project_id else "owner"
        server.touch()
        record.updated_at = time.time()
        return Response(202, b"", [], None)

    def _unlock(self, call: Call, server: Server, spec) -> Response:
        if server.locked_by == "admin" and not self._admin(call):
            raise ApiError(403, "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override "
                                "to be performed.")
        record = self._record_action(call, server, "unlock")
        server.locked = False
        server.locked_reason = None
        server.locked_by = None
        server.touch()
        record.updated_at = time.time()
        return Response(202, b"", [], None)

    def _unshelve(self, call: Call, server: Server, spec) -> Response:
        self._conflict(server, "unshelve", ("shelved", "shelved_offloaded"))
        self._start(call, server, "unshelve", "unshelving", "compute_unshelve_instance", self._unshelve_spawn)
        return Response(202, b"", [], None)

    def _resize(self, call: Call, server: Server, spec) -> Response:
        if not isinstance(spec, dict) or "flavorRef" not in spec:
            raise ApiError(400, f"Invalid input for field/attribute resize. Value: {spec!r}. "
                                "'flavorRef' is a required property")
        self._conflict(server, "resize", ("active", "stopped"))
        flavor = self.flavors.get(str(spec["flavorRef"]))
        if flavor is None:
            raise ApiError(400, f"Flavor {spec['flavorRef']} could not be found.")
        if flavor.id == server.flavor.id:
            raise ApiError(400, "When resizing, instances must change flavor!")
        if flavor.disk < server.flavor.disk:
            raise ApiError(400, "Resize error: Unable to resize disk down.")
        self._start(call, server, "resize", "resize_prep", "compute_resize_instance", self._resize_migrate,
                    flavor)
        return Response(202, b"", [], None)

    def _confirm_resize(self, call: Call, server: Server, spec) -> Response:
        self._conflict(server, "confirmResize", ("resized",))
        self._start(call, server, "confirmResize", None, "compute_confirm_resize", self._confirmed)
        return Response(204, b"", [], None)

    def _revert_resize(self, call: Call, server: Server, spec) -> Response:
        self._conflict(server, "revertResize", ("resized",))
        self._start(call, server, "revertResize", "resize_reverting", "compute_revert_resize", self._reverted)
        return Response(202, b"", [], None)

    def _rebuild(self, call: Call, server: Server, spec) -> Response:
        if not isinstance(spec, dict) or not spec.get("imageRef"):
            raise ApiError(400, f"Invalid input for field/attribute rebuild. Value: {spec!r}. "
                                "'imageRef' is a required property")
        extra = sorted(set(spec) - rebuild_fields(self._minor(call)))
        if extra:   # Nova's rebuild schema: additionalProperties is false
            raise invalid("rebuild", spec, not_allowed(extra))
        # Nova's rebuild schema checks these as a create's; the disk config then as the image allows
        fields = checked_common(spec)
        name = checked_name(spec["name"]) if "name" in spec else None
        self._conflict(server, "rebuild", ("active", "stopped", "error"))
        image_id = str(spec["imageRef"]).rstrip("/").rpartition("/")[2]
        self._check_image(image_id, server.flavor)
        server.disk_config = self._disk_config(image_id, fields.get("OS-DCF:diskConfig"))
        server.image_id = image_id
        if name:
            server.name = name
        server.access_ipv4 = fields.get("accessIPv4", server.access_ipv4)
        server.access_ipv6 = fields.get("accessIPv6", server.access_ipv6)
        end_state = "stopped" if server.vm_state == "stopped" else "active"
        self._start(call, server, "rebuild", "rebuilding", "compute_rebuild_instance", self._finish_simple,
                    ActionRule("rebuild", (), "rebuilding", end_state, 4 if end_state == "stopped" else 1,
                               "compute_rebuild_instance", "rebuild"))
        minor = self._minor(call)
        if minor >= 57 and "user_data" in spec:
            server.user_data = spec["user_data"]
        view = self._changed_view(server, minor, self._admin(call), key_name=minor >= 54)
        view["adminPass"] = spec.get("adminPass") or _password()
        if minor >= 57:   # Nova adds it after the view, whatever 2.75 shows
            view["user_data"] = server.user_data
        return Response.json(202, {"server": view})

    def _disk_config(self, image_id: str, asked: str | None) -> str:
        """Nova's create and rebuild: the disk config asked for (AUTO refused when the image
        disables it), else the image's auto_disk_config property (MANUAL without one)."""
        image = self.cloud.image.get_image(image_id) or {}
        from_image = str(image.get("auto_disk_config") or "").strip().lower()
        if asked == "AUTO" and from_image == "disabled":
            raise ApiError(400, f"Requested image {image_id} has automatic disk resize disabled.")
        if asked is not None:
            return asked
        return "AUTO" if from_image in ("1", "t", "true", "on", "y", "yes") else "MANUAL"

    # -- security groups of a server's ports (Nova's security_group_api) ------
    def _security_group_ports(self, call: Call, server: Server, spec) -> tuple[dict, list[dict]]:
        if not isinstance(spec, dict):
            raise ApiError(400, "Missing parameter dict")
        if "name" not in spec:
            raise ApiError(400, "Security group not specified")
        name = spec["name"]
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "Security group name cannot be empty")
        network = self.cloud.network
        group = network.find_security_group(call.token.project_id, name) if network is not None else None
        if group is None:
            raise ApiError(404, f"Security group {name} is not found for project {call.token.project_id}")
        ports = network.ports_of(server.id)
        if not ports:
            raise ApiError(404, f"instance_id {server.id} could not be found as device id on any ports")
        return group, ports

    def _add_security_group(self, call: Call, server: Server, spec) -> Response:
        group, ports = self._security_group_ports(call, server, spec)
        for port in ports:
            if group["id"] not in port.setdefault("security_groups", []):
                port["security_groups"].append(group["id"])
        if group["name"] not in server.security_groups:
            server.security_groups.append(group["name"])
        server.touch()
        return Response(202, b"", [], None)

    def _remove_security_group(self, call: Call, server: Server, spec) -> Response:
        group, ports = self._security_group_ports(call, server, spec)
        if not any(group["id"] in port.get("security_groups", ()) for port in ports):
            raise ApiError(404, f"Security group {spec['name']} not associated with the instance {server.id}")
        for port in ports:
            if group["id"] in port.get("security_groups", ()):
                port["security_groups"].remove(group["id"])
        server.security_groups = [name for name in server.security_groups if name != group["name"]]
        server.touch()
        return Response(202, b"", [], None)

    # -- snapshots (createImage, createBackup) and shelve -------------------------
    def _create_image(self, call: Call, server: Server, spec) -> Response:
        """Nova's createImage: the Glance image is made at once (queued); nova-compute snapshots
        and uploads it while the server goes image_snapshot_pending (the API's) -> image_snapshot
        (the compute took it) -> image_pending_upload -> image_uploading -> None."""
        name, metadata = self._snapshot_spec("createImage", spec)
        return self._snapshot(call, server, "createImage", name, metadata)

    def _create_backup(self, call: Call, server: Server, spec) -> Response:
        """Nova's createBackup: a snapshot whose image is of type backup (task state image_backup);
        once it is uploaded, the server's backups of that backup_type beyond `rotation` are
        deleted, oldest first."""
        name, metadata = self._snapshot_spec("createBackup", spec)
        rotation = int(spec["rotation"])
        return self._snapshot(call, server, "createBackup", name, metadata, (spec["backup_type"], rotation))

    def _snapshot(self, call: Call, server: Server, action: str, name: str, metadata: dict,
                  backup: tuple[str, int] | None = None) -> Response:
        """What createImage and createBackup share: the state check, the queued image, the
        compute's steps, and the answer (the image id in the body from 2.45, else a Location)."""
        self._conflict(server, action, SNAPSHOT_VM_STATES)
        if backup is not None and not server.image_id:
            raise ApiError(400, "Backup is not supported for volume-backed instances.")
        image_type = "snapshot" if backup is None else "backup"
        extra = metadata if backup is None else {**metadata, "backup_type": backup[0]}
        image = self._snapshot_image(call, server, name, extra, image_type)
        server.snapshot = (image["id"], call.log_context, call.ids, time.monotonic())
        self._start(call, server, action, "image_snapshot_pending" if backup is None else "image_backup",
                    f"compute_{image_type}_instance", self._snapshot_pending, image["id"], backup)
        if self._minor(call) >= 45:  # 2.45: the id in the body, no Location header
            return Response.json(202, {"image_id": image["id"]})
        if backup is None:
            # Nova's glance.generate_image_url: the catalog's image endpoint + /images/<id>
            location = f"{self.cloud.base_url}{self.cloud.image.prefix}/images/{image['id']}"
        elif backup[1] > 0:
            # createBackup joins the compute API's own URL and images/<id>, and only if it keeps any
            location = f"{self._base}/v2.1/images/{image['id']}"
        else:
            return Response(202, b"", [], None)
        return Response(202, b"", [("Location", location)], None)

    def _snapshot_image(self, call: Call, server: Server, name: str, metadata: dict,
                        image_type: str = "snapshot") -> dict:
        """The queued Glance image nova-api makes for a snapshot (createImage, createBackup, shelve)."""
        base = self.cloud.image.get_image(server.image_id) if server.image_id else None
        base = base or {}
        # what Nova's compute_utils.create_image sends: the request's metadata wins over its own keys;
        # a snapshot's disk and container formats stay unset until the upload says what was written,
        # a backup keeps its base image's
        properties = {"min_ram": int(base.get("min_ram") or 0),
                      "min_disk": max(int(base.get("min_disk") or 0), server.flavor.disk),
                      "base_image_ref": server.image_id, "instance_uuid": server.id,
                      "user_id": call.token.user_id, "image_type": image_type,
                      # Nova records these at boot, from the booting user's token: here the snapshotting user's
                      "owner_user_name": call.token.user_name, "owner_project_name": call.token.project_name,
                      "boot_roles": ",".join(role.name for role in call.token.roles),
                      **server.system_metadata, **metadata}
        if image_type == "backup":
            properties.update({key: base[key] for key in ("disk_format", "container_format") if base.get(key)})
        return self.cloud.image.create_snapshot(name, server.project_id, properties, call.ids,
                                                user_id=call.token.user_id)

    def _shelve(self, call: Call, server: Server, spec) -> Response:
        """Nova's shelve: nova-api makes the `<name>-shelved` snapshot image first (a volume-backed
        server gets none), the compute uploads it as it offloads; unshelve and delete remove it."""
        rule = ACTIONS["shelve"]
        self._conflict(server, rule.name, rule.vm_states)
        if server.image_id:
            image = self._snapshot_image(call, server, f"{server.name}-shelved", {})
            server.shelved_image = (image["id"], list(call.ids))
        self._start(call, server, rule.instance_action, rule.task_state, rule.event, self._finish_simple, rule)
        return Response(202, b"", [], None)

    @staticmethod
    def _snapshot_spec(action: str, spec) -> tuple[str, dict]:
        """(name, metadata) of a createImage or createBackup body, checked in the order Nova's JSON
        schema checks it: each field given, then the required ones, then unexpected ones."""
        if not isinstance(spec, dict):
            raise invalid(action, spec, f"{spec!r} is not of type 'object'")
        if "name" in spec:
            checked_name(spec["name"])
        if "backup_type" in spec and action == "createBackup" and not isinstance(spec["backup_type"], str):
            raise invalid("backup_type", spec["backup_type"], f"{spec['backup_type']!r} is not of type 'string'")
        if "rotation" in spec and action == "createBackup":
            checked_non_negative(spec["rotation"], "rotation")
        metadata = checked_metadata({"metadata": spec["metadata"]}, "metadata") if "metadata" in spec else {}
        required = SNAPSHOT_FIELDS[action]
        missing = [key for key in required if key not in spec]
        if missing:
            raise invalid(action, spec, f"{missing[0]!r} is a required property")
        extra = sorted(key for key in spec if key not in required and key != "metadata")
        if extra:
            raise invalid(action, spec, not_allowed(extra))
        return spec["name"], metadata

    # -- volume attachments ------------------------------------------------
    def list_attachments(self, call: Call, server_id: str) -> Response:
        server = self._server(call, server_id)
        minor = self._minor(call)
        return Response.json(200, {"volumeAttachments": [self._attachment_view(a, minor)
                                                         for a in server.volumes.values()]})

    def show_attachment(self, call: Call, server_id: str, volume_id: str) -> Response:
        server = self._server(call, server_id)
        attachment = server.volumes.get(volume_id)
        if attachment is None:
            raise ApiError(404, f"Instance {server_id} is not attached to volume {volume_id}")
        return Response.json(200, {"volumeAttachment": self._attachment_view(attachment, self._minor(call))})

    def attach_volume(self, call: Call, server_id: str) -> Response:
        server = self._server(call, server_id)
        spec = self._body(call, "volumeAttachment")
        volume_id = spec.get("volumeId")
        if not volume_id:
            raise ApiError(400, f"Invalid input for field/attribute volumeAttachment. Value: {spec!r}. "
                                "'volumeId' is a required property")
        self._check_locked(call, server)
        self._conflict(server, "attach_volume", ("active", "paused", "stopped", "suspended", "resized",
                                                 "shelved", "shelved_offloaded"))
        volume_api = self.cloud.volume
        get_volume = getattr(volume_api, "get_volume", None)
        if get_volume is None or get_volume(volume_id) is None:
            raise ApiError(404, f"Volume {volume_id} could not be found.")
        if volume_id in server.volumes or volume_id in server.attaching:
            raise ApiError(400, f"Invalid volume: volume {volume_id} already attached")
        try:
            volume_api.reserve(volume_id, server.id, call.ids)
        except ValueError as exc:
            message = str(exc)
            raise ApiError(400, message if message.startswith("Invalid volume") else
                           f"Invalid volume: {message}") from None
        used = {a["device"] for a in server.volumes.values()} | {a["device"] for _, _, a in
                                                                  server.attaching.values()}
        device = spec.get("device") or next(f"/dev/vd{letter}" for letter in string.ascii_lowercase[1:]
                                            if f"/dev/vd{letter}" not in used)
        attachment = {"device": device, "serverId": server.id, "volumeId": volume_id,
                      "tag": spec.get("tag"), "delete_on_termination": bool(spec.get("delete_on_termination")),
                      "attachment_id": str(uuid.uuid4()), "bdm_uuid": str(uuid.uuid4()),
                      "_context": call.log_context, "_ids": call.ids}  # the attach's, for its log lines
        record = self._record_action(call, server, "attach_volume")
        server.attaching[volume_id] = (call.log_context, call.ids, attachment)
        self.cloud.later(self.cloud.delay("volume"), self._attached, server, volume_id, record)
        return Response.json(200, {"volumeAttachment": self._attachment_view(attachment, self._minor(call))})

    def detach_volume(self, call: Call, server_id: str, volume_id: str) -> Response:
        server = self._server(call, server_id)
        self._check_locked(call, server)
        if volume_id not in server.volumes:
            raise ApiError(404, f"volume_id not found: {volume_id}")
        self._conflict(server, "detach_volume", ("active", "paused", "stopped", "suspended", "resized",
                                                 "shelved", "shelved_offloaded"))
        record = self._record_action(call, server, "detach_volume")
        begin = getattr(self.cloud.volume, "begin_detaching", None)
        if begin is not None:
            begin(volume_id, call.ids)
        ids = call.ids

        def detached() -> None:
            if server.volumes.pop(volume_id, None) is not None:
                self.cloud.volume.detach(volume_id, server.id, ids)
                server.touch()
                self._guest_sync(server)
                self._event(record, "compute_detach_volume", server.host)
        self.cloud.later(self.cloud.delay("volume"), detached)
        return Response(202, b"", [], None)

    # -- instance actions --------------------------------------------------
    def _actions_server(self, call: Call, server_id: str) -> Server:
        """The server whose actions are read: from 2.21 a deleted one too (while it is kept)."""
        gone = self.deleted.get(server_id)
        if gone is not None and self._minor(call) >= 21 and (
                gone.project_id == call.token.project_id or self._admin(call)):
            return gone
        return self._server(call, server_id)

    def list_instance_actions(self, call: Call, server_id: str) -> Response:
        server = self._actions_server(call, server_id)
        minor = self._minor(call)
        records = list(reversed(server.actions))
        marker = call.request.arg("marker")
        if marker and minor >= 58:
            position = next((i for i, r in enumerate(records) if r.request_id == marker), None)
            if position is None:
                raise ApiError(400, f"Marker {marker} could not be found.")
            records = records[position + 1:]
        limit_text = call.request.arg("limit") if minor >= 58 else None
        body: dict = {}
        if limit_text is not None:
            limit = max(0, int(limit_text)) if limit_text.isdigit() else MAX_LIMIT
            more = len(records) > limit
            records = records[:limit]
            if more and records:
                body["links"] = [{"rel": "next", "href": f"{self._base}/v2.1/servers/{server.id}/"
                                  f"os-instance-actions?limit={limit}&marker={records[-1].request_id}"}]
        body = {"instanceActions": [self._action_view(r, server, minor) for r in records], **body}
        return Response.json(200, body)

    def show_instance_action(self, call: Call, server_id: str, request_id: str) -> Response:
        server = self._actions_server(call, server_id)
        minor = self._minor(call)
        admin = self._admin(call)
        record = next((r for r in server.actions if r.request_id == request_id), None)
        if record is None:
            raise ApiError(404, f"Action for request_id {request_id} on instance {server_id} not found")
        view = self._action_view(record, server, minor)
        events = []
        for event in record.events:
            item = {"event": event["event"], "start_time": _db_time(event["start_time"]),
                    "finish_time": _db_time(event["finish_time"]), "result": event["result"]}
            if admin:
                item["traceback"] = event["traceback"]
            if minor >= 62:
                if admin:
                    item["host"] = event["host"] or ""
                item["hostId"] = self._host_id(server.project_id, event["host"])
            if minor >= 84 and (admin or event["details"]):
                item["details"] = event["details"]
            events.append(item)
        view["events"] = events
        return Response.json(200, {"instanceAction": view})
