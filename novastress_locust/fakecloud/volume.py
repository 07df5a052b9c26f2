"""Cinder v3: volumes, snapshots, types, limits, quotas, the attachment states compute drives
and the attachments API (3.27+) that lists them.

States: creating -> available; reserve -> attaching -> in-use; begin_detaching ->
detaching -> available; deleting -> gone. An attachment created through the API without a
connector reserves the volume (-> reserved) until it is deleted or the volume is reset. Both
`/v3/...` and `/v3/{project_id}/...` are served because clients may put the project id in the
path.
"""
from __future__ import annotations

import re
import uuid

from .http import Response
from .logs import LogContext
from .service import ApiError, Call, Service, now_iso

MIN_VERSION = "3.0"
MAX_VERSION = "3.70"
NEW_ATTACH = (3, 27)
DEFAULT_TYPE = "__DEFAULT__"
DELETABLE = ("available", "error", "error_restoring", "error_extending", "error_managing")
NOT_DELETABLE = ("Invalid volume: Volume status must be available or error or error_restoring or "
                 "error_extending or error_managing and must not be migrating, attached, belong "
                 "to a group, have snapshots, awaiting a transfer, or be disassociated from "
                 "snapshots after volume transfer.")
VERSION_RE = re.compile(r"^volume\s+(\d+)\.(\d+)$|^volume\s+latest$", re.IGNORECASE)
ERROR_KINDS = {400: "badRequest", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
               406: "notAcceptable", 409: "conflictingRequest", 413: "overLimit"}
KEYSTONE_401 = "The request you have made requires authentication."


def _version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


class Volume(Service):
    name = "volume"
    prefix = "/volume"
    log_name = "cinder-volume"

    def setup(self) -> None:
        self.volumes: dict[str, dict] = {}
        self.snapshots: dict[str, dict] = {}
        self.snapshots_of: dict[str, set[str]] = {}  # volume id -> its snapshot ids
        self.in_use_count: dict[str, list[int]] = {}  # project -> [volumes, gigabytes]
        # attachments not (yet) attached: reserved through the API or by an attach in flight
        self.reservations: dict[str, dict] = {}       # id -> {id, status, instance, volume_id}
        self.default_type = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "novastress/" + DEFAULT_TYPE)),
                             "name": DEFAULT_TYPE, "description": "Default Volume Type",
                             "is_public": True, "extra_specs": {}, "qos_specs_id": None,
                             "os-volume-type-access:is_public": True}
        r = self.router
        r.add("GET", "", self.versions, auth=False)
        r.add("GET", "/v3", self.v3_version, auth=False)
        for base in ("/v3", "/v3/{project_id}"):
            r.add("GET", f"{base}/volumes/detail", self.list_volumes_detail)
            r.add("GET", f"{base}/volumes", self.list_volumes)
            r.add("POST", f"{base}/volumes", self.create_volume)
            r.add("GET", f"{base}/volumes/{{volume_id}}", self.show_volume)
            r.add("DELETE", f"{base}/volumes/{{volume_id}}", self.delete_volume)
            r.add("POST", f"{base}/volumes/{{volume_id}}/action", self.volume_action)
            r.add("GET", f"{base}/snapshots/detail", self.list_snapshots_detail)
            r.add("GET", f"{base}/snapshots", self.list_snapshots)
            r.add("POST", f"{base}/snapshots", self.create_snapshot)
            r.add("GET", f"{base}/snapshots/{{snapshot_id}}", self.show_snapshot)
            r.add("DELETE", f"{base}/snapshots/{{snapshot_id}}", self.delete_snapshot)
            r.add("GET", f"{base}/types/default", self.show_default_type)
            r.add("GET", f"{base}/types", self.list_types)
            r.add("GET", f"{base}/types/{{type_id}}", self.show_type)
            r.add("GET", f"{base}/limits", self.limits)
            r.add("GET", f"{base}/attachments", self.list_attachments)
            r.add("POST", f"{base}/attachments", self.create_attachment)
            r.add("DELETE", f"{base}/attachments/{{attachment_id}}", self.delete_attachment)
            r.add("GET", f"{base}/os-quota-sets/{{target_project_id}}/defaults", self.quota_defaults)
            r.add("GET", f"{base}/os-quota-sets/{{target_project_id}}", self.quota_set)

    # -- interface for compute ---------------------------------------------
    def get_volume(self, volume_id: str) -> dict | None:
        """The live volume record (id, status, attachments, project_id, size, ...)."""
        return self.volumes.get(volume_id)

    def reserve(self, volume_id: str, server_id: str, ids: list[str]) -> dict:
        """available -> attaching; ValueError(message) when the volume cannot be attached."""
        volume = self.volumes.get(volume_id)
        if volume is None:
            raise ValueError(f"Volume {volume_id} could not be found.")
        if volume["status"] != "available":
            raise ValueError(f"Invalid volume: volume {volume_id} status must be available to "
                             f"reserve, but the current status is: {volume['status']}.")
        self._set_status(volume, "attaching")
        self._reserve(volume, server_id, "attaching")
        return volume

    def _reserve(self, volume: dict, server_id: str | None, status: str) -> dict:
        reservation = {"id": str(uuid.uuid4()), "status": status, "instance": server_id,
                       "volume_id": volume["id"]}
        self.reservations[reservation["id"]] = reservation
        return reservation

    def _unreserve(self, volume_id: str, server_id: str | None = None) -> None:
        """Forget the volume's reservations (for one server, or all of them)."""
        for key, reservation in list(self.reservations.items()):
            if reservation["volume_id"] == volume_id and server_id in (None, reservation["instance"]):
                del self.reservations[key]

    def attach(self, volume_id: str, server_id: str, device: str, host: str, ids: list[str]) -> None:
        """attaching -> in-use, with one attachment to the server."""
        volume = self.volumes[volume_id]
        attachment = {"id": volume_id, "server_id": server_id, "attachment_id": str(uuid.uuid4()),
                      "host_name": host, "volume_id": volume_id, "device": device,
                      "attached_at": now_iso(micro=True)}
        volume["attachments"] = [a for a in volume["attachments"] if a["server_id"] != server_id]
        volume["attachments"].append(attachment)
        volume["attach_status"] = "attached"
        self._unreserve(volume_id, server_id)
        self._set_status(volume, "in-use")
        context = self._downstream(ids)
        self._write(context, "INFO", "cinder.volume.manager",
                    f"Attaching volume {volume_id} to instance {server_id} at mountpoint {device} "
                    f"on host {host}.")
        self._write(context, "INFO", "cinder.volume.manager",
                    "attachment_update completed successfully.", resource=volume_id)

    def begin_detaching(self, volume_id: str, ids: list[str]) -> None:
        """in-use -> detaching."""
        volume = self.volumes[volume_id]
        if volume["status"] == "in-use":
            self._set_status(volume, "detaching")

    def detach(self, volume_id: str, server_id: str, ids: list[str]) -> None:
        """-> available (or in-use while other attachments remain), attachment removed."""
        volume = self.volumes.get(volume_id)
        if volume is None:
            return
        volume["attachments"] = [a for a in volume["attachments"] if a["server_id"] != server_id]
        if volume["attachments"]:
            self._set_status(volume, "in-use")
        else:
            volume["attach_status"] = "detached"
            self._set_status(volume, "available")
        self._write(self._downstream(ids), "INFO", "cinder.volume.manager",
                    "Detach volume completed successfully.", resource=volume_id)

    def unreserve(self, volume_id: str, ids: list[str]) -> None:
        """attaching -> available after a failed attach."""
        volume = self.volumes.get(volume_id)
        if volume is None:
            return
        self._unreserve(volume_id)
        if volume["status"] in ("attaching", "reserved"):
            self._set_status(volume, "in-use" if volume["attachments"] else "available")

    def on_project_created(self, project) -> None:
        self.in_use_count.setdefault(project.id, [0, 0])

    # -- records -----------------------------------------------------------
    def _set_status(self, volume: dict, status: str) -> None:
        volume["status"] = status
        volume["updated_at"] = now_iso(micro=True)

    def _write(self, context: LogContext | None, level: str, logger: str, message: str,
               resource: str | None = None) -> None:
        text = f"Volume {resource}: {message}" if resource and resource not in message else message
        self.cloud.logs.volume.write(level, logger, text, context)

    @staticmethod
    def _downstream(ids: list[str]) -> LogContext:
        """Context of a call from compute: Nova's id arrives as the global request id."""
        ids = [i for i in ids if i]
        return LogContext(f"req-{uuid.uuid4()}", ids[0] if ids else None)

    def _usage(self, project_id: str) -> list[int]:
        return self.in_use_count.setdefault(project_id, [0, 0])

    def _find(self, call: Call, volume_id: str) -> dict:
        volume = self.volumes.get(volume_id)
        if volume is None or not (call.token.is_admin or volume["project_id"] == call.token.project_id):
            raise ApiError(404, f"Volume {volume_id} could not be found.", "notfound")
        return volume

    def _find_snapshot(self, call: Call, snapshot_id: str) -> dict:
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None or not (call.token.is_admin
                                    or snapshot["project_id"] == call.token.project_id):
            raise ApiError(404, f"Snapshot {snapshot_id} could not be found.", "notfound")
        return snapshot

    def _links(self, kind: str, resource_id: str, project_id: str) -> list[dict]:
        return [{"href": f"{self.url}/v3/{project_id}/{kind}/{resource_id}", "rel": "self"},
                {"href": f"{self.url}/{project_id}/{kind}/{resource_id}", "rel": "bookmark"}]

    def _volume_view(self, call: Call, volume: dict) -> dict:
        version = _version_tuple(call.microversion or MIN_VERSION)
        view = {"attachments": volume["attachments"], "availability_zone": "nova",
                "bootable": volume["bootable"], "consistencygroup_id": None,
                "created_at": volume["created_at"], "description": volume["description"],
                "encrypted": False, "id": volume["id"],
                "links": self._links("volumes", volume["id"], volume["project_id"]),
                "metadata": volume["metadata"], "migration_status": None,
                "multiattach": False, "name": volume["name"],
                "os-vol-tenant-attr:tenant_id": volume["project_id"], "replication_status": None,
                "size": volume["size"], "snapshot_id": volume["snapshot_id"],
                "source_volid": volume["source_volid"], "status": volume["status"],
                "updated_at": volume["updated_at"], "user_id": volume["user_id"],
                "volume_type": DEFAULT_TYPE}
        if version >= (3, 13):
            view["group_id"] = None
        if version >= (3, 21):
            view["provider_id"] = None
        if version >= (3, 48):
            view["service_uuid"] = volume["service_uuid"]
            view["shared_targets"] = False
        if version >= (3, 63):
            view["volume_type_id"] = self.default_type["id"]
        if version >= (3, 65):
            view["consumes_quota"] = True
        if call.token.is_admin:
            view["os-vol-host-attr:host"] = "fakecloud@lvmdriver-1#lvmdriver-1"
            view["os-vol-mig-status-attr:migstat"] = None
            view["os-vol-mig-status-attr:name_id"] = None
            if version >= (3, 61):
                view["cluster_name"] = None
        return view

    def _summary_view(self, volume: dict) -> dict:
        return {"id": volume["id"], "name": volume["name"],
                "links": self._links("volumes", volume["id"], volume["project_id"])}

    def _snapshot_view(self, call: Call, snapshot: dict) -> dict:
        view = {key: snapshot[key] for key in ("id", "name", "description", "status", "size",
                                               "volume_id", "created_at", "updated_at", "metadata")}
        view["os-extended-snapshot-attributes:progress"] = snapshot["progress"]
        view["os-extended-snapshot-attributes:project_id"] = snapshot["project_id"]
        if _version_tuple(call.microversion or MIN_VERSION) >= (3, 41):
            view["user_id"] = snapshot["user_id"]
        if _version_tuple(call.microversion or MIN_VERSION) >= (3, 65):
            view["consumes_quota"] = True
        return view

    # -- discovery -----------------------------------------------------------
    def _version_doc(self) -> dict:
        return {"id": "v3.0", "status": "CURRENT", "version": MAX_VERSION, "min_version": MIN_VERSION,
                "updated": "2023-08-31T00:00:00Z",
                "links": [{"rel": "describedby", "type": "text/html",
                           "href": "https://docs.openstack.org/"},
                          {"rel": "self", "href": f"{self.url}/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.volume+json;version=3"}]}

    def versions(self, call: Call) -> Response:
        return Response.json(300, {"versions": [self._version_doc()]})

    def v3_version(self, call: Call) -> Response:
        return Response.json(200, {"versions": [self._version_doc()]})

    def before(self, call: Call) -> None:
        asked = call.request.header("openstack-api-version")
        if not asked:
            call.microversion = MIN_VERSION
            return
        found = VERSION_RE.match(asked.strip())
        if not found:
            raise ApiError(400, f"Invalid OpenStack-API-Version header: {asked}", "badrequest")
        if found.group(1) is None:
            call.microversion = MAX_VERSION
            return
        wanted = (int(found.group(1)), int(found.group(2)))
        if not _version_tuple(MIN_VERSION) <= wanted <= _version_tuple(MAX_VERSION):
            raise ApiError(406, f"Version {wanted[0]}.{wanted[1]} is not supported by the API. "
                                f"Minimum is {MIN_VERSION} and maximum is {MAX_VERSION}.",
                           "notacceptable")
        call.microversion = f"{wanted[0]}.{wanted[1]}"

    def decorate(self, call: Call, response: Response) -> None:
        super().decorate(call, response)
        if call.microversion:
            response.headers.append(("OpenStack-API-Version", f"volume {call.microversion}"))
            response.headers.append(("Vary", "OpenStack-API-Version"))

    def error(self, call: Call, error: ApiError) -> Response:
        if error.status == 401:
            return Response.json(401, {"error": {"code": 401, "title": "Unauthorized",
                                                 "message": KEYSTONE_401}}, error.headers)
        kind = ERROR_KINDS.get(error.status, "computeFault")
        return Response.json(error.status, {kind: {"code": error.status, "message": error.message}},
                             error.headers)

    # -- volumes ---------------------------------------------------------------
    def _listed(self, call: Call, records: dict[str, dict], sort_key: str = "created_at") -> list[dict]:
        request = call.request
        everyone = call.token.is_admin and request.arg("all_tenants", "0") not in ("0", "false", "False")
        project = request.arg("project_id") if everyone else call.token.project_id
        filters = {key: request.arg(key) for key in ("name", "status", "volume_id", "bootable")
                   if request.arg(key) is not None}
        found = [record for record in records.values()
                 if (project is None or record["project_id"] == project)
                 and all(str(record.get(key)) == value for key, value in filters.items())]
        # Cinder's default order: newest first
        found.sort(key=lambda record: (record["created_at"], record["id"]), reverse=True)
        marker = request.arg("marker")
        if marker:
            ids = [record["id"] for record in found]
            if marker not in ids:
                raise ApiError(400, f"Invalid input received: marker [{marker}] not found",
                               "badrequest")
            found = found[ids.index(marker) + 1:]
        limit = request.arg("limit")
        if limit is not None:
            try:
                found = found[:max(0, int(limit))]
            except ValueError:
                raise ApiError(400, "Invalid input received: limit must be an integer",
                               "badrequest") from None
        return found

    def list_volumes(self, call: Call, project_id: str | None = None) -> Response:
        return Response.json(200, {"volumes": [self._summary_view(v)
                                               for v in self._listed(call, self.volumes)]})

    def list_volumes_detail(self, call: Call, project_id: str | None = None) -> Response:
        return Response.json(200, {"volumes": [self._volume_view(call, v)
                                               for v in self._listed(call, self.volumes)]})

    def show_volume(self, call: Call, volume_id: str, project_id: str | None = None) -> Response:
        return Response.json(200, {"volume": self._volume_view(call, self._find(call, volume_id))})

    def create_volume(self, call: Call, project_id: str | None = None) -> Response:
        body = call.body()
        spec = body.get("volume") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise ApiError(400, "Invalid input received: 'volume' is a required property", "badrequest")
        snapshot_id = spec.get("snapshot_id")
        snapshot = self._find_snapshot(call, snapshot_id) if snapshot_id else None
        size = spec.get("size", snapshot["size"] if snapshot else None)
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ApiError(400, f"Invalid input received: Volume size '{size}' must be an integer "
                                "and greater than 0", "badrequest")
        volume_type = spec.get("volume_type")
        if volume_type not in (None, DEFAULT_TYPE, self.default_type["id"]):
            raise ApiError(404, f"Volume type with name {volume_type} could not be found.", "notfound")
        owner = call.token.project_id
        usage = self._usage(owner)
        allowed = self.cloud.config.quota_volumes
        if usage[0] + 1 > allowed:
            raise ApiError(413, f"VolumeLimitExceeded: Maximum number of volumes allowed ({allowed}) "
                                "exceeded for quota 'volumes'.", "overlimit")
        usage[0] += 1
        usage[1] += size
        volume_id = str(uuid.uuid4())
        stamp = now_iso(micro=True)
        volume = {"id": volume_id, "name": spec.get("name"), "description": spec.get("description"),
                  "size": size, "status": "creating", "attach_status": "detached",
                  "attachments": [], "project_id": owner, "user_id": call.token.user_id,
                  "metadata": dict(spec.get("metadata") or {}),
                  "bootable": "true" if spec.get("imageRef") else "false",
                  "snapshot_id": snapshot_id, "source_volid": spec.get("source_volid"),
                  "service_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, "novastress/cinder-volume")),
                  "created_at": stamp, "updated_at": None}
        self.volumes[volume_id] = volume
        self._write(call.log_context, "INFO", "cinder.volume.flows.manager.create_volume",
                    f"Volume {volume_id}: being created as raw with specification: "
                    f"{{'status': 'creating', 'volume_name': 'volume-{volume_id}', "
                    f"'volume_size': {size}}}")
        self.cloud.later(self.cloud.delay("volume"), self._created, volume_id, call.log_context)
        return Response.json(202, {"volume": self._volume_view(call, volume)})

    def _created(self, volume_id: str, context: LogContext) -> None:
        volume = self.volumes.get(volume_id)
        if volume is None or volume["status"] != "creating":
            return
        self._set_status(volume, "available")
        self._write(context, "INFO", "cinder.volume.flows.manager.create_volume",
                    f"Volume volume-{volume_id} ({volume_id}): created successfully")
        self._write(context, "INFO", "cinder.volume.manager", "Created volume successfully.")

    def delete_volume(self, call: Call, volume_id: str, project_id: str | None = None) -> Response:
        volume = self._find(call, volume_id)
        cascade = call.request.arg("cascade", "false").lower() in ("true", "1")
        if (volume["status"] not in DELETABLE or volume["attachments"]
                or (self.snapshots_of.get(volume_id) and not cascade)):
            raise ApiError(400, NOT_DELETABLE, "badrequest")
        self._start_delete(call, volume)
        return Response(202, b"", content_type=None)

    def _start_delete(self, call: Call, volume: dict) -> None:
        self._set_status(volume, "deleting")
        for snapshot_id in list(self.snapshots_of.get(volume["id"], ())):
            self.snapshots[snapshot_id]["status"] = "deleting"
        self.cloud.later(self.cloud.delay("volume"), self._deleted, volume["id"], call.log_context)

    def _deleted(self, volume_id: str, context: LogContext) -> None:
        volume = self.volumes.pop(volume_id, None)
        if volume is None:
            return
        for snapshot_id in self.snapshots_of.pop(volume_id, ()):
            self.snapshots.pop(snapshot_id, None)
        self._unreserve(volume_id)
        usage = self._usage(volume["project_id"])
        usage[0] = max(0, usage[0] - 1)
        usage[1] = max(0, usage[1] - volume["size"])
        self._write(context, "INFO", "cinder.volume.manager", "Deleted volume successfully.",
                    resource=volume_id)

    def volume_action(self, call: Call, volume_id: str, project_id: str | None = None) -> Response:
        volume = self._find(call, volume_id)
        body = call.body()
        if not isinstance(body, dict) or len(body) != 1:
            raise ApiError(400, "Invalid input received: one action per request", "badrequest")
        (action, args), = body.items()
        if action == "os-reset_status":
            self.require_admin(call)
            status = (args or {}).get("status")
            if not status:
                raise ApiError(400, "Must specify 'status'", "badrequest")
            self._set_status(volume, status)
            if (args or {}).get("attach_status") == "detached":
                volume["attachments"] = []
                volume["attach_status"] = "detached"
                self._unreserve(volume_id)
            return Response(202, b"", content_type=None)
        if action == "os-force_delete":
            self.require_admin(call)
            self._start_delete(call, volume)
            return Response(202, b"", content_type=None)
        if action == "os-extend":
            new_size = (args or {}).get("new_size")
            if volume["status"] != "available":
                raise ApiError(400, "Invalid volume: Volume status must be 'available' to extend, "
                                    f"but current status is: {volume['status']}.", "badrequest")
            if not isinstance(new_size, int) or new_size <= volume["size"]:
                raise ApiError(400, "Invalid input received: New size for extend must be greater "
                                    f"than current size. (current: {volume['size']}, extended: "
                                    f"{new_size}).", "badrequest")
            self._usage(volume["project_id"])[1] += new_size - volume["size"]
            volume["size"] = new_size
            return Response(202, b"", content_type=None)
        raise ApiError(400, f"There is no such action: {action}", "badrequest")

    # -- attachments (3.27+) -------------------------------------------------------
    def _new_attach(self, call: Call) -> None:
        if _version_tuple(call.microversion or MIN_VERSION) < NEW_ATTACH:
            raise ApiError(404, "The resource could not be found.", "notfound")

    def list_attachments(self, call: Call, project_id: str | None = None) -> Response:
        """Summaries {id, status, instance, volume_id} of the caller's volumes' attachments:
        attached ones and reservations; filters volume_id, instance_id, status."""
        self._new_attach(call)
        visible = {volume["id"] for volume in self._listed_all(call)}
        found = [{"id": a["attachment_id"], "status": "attached", "instance": a["server_id"],
                  "volume_id": volume_id}
                 for volume_id in visible for a in self.volumes[volume_id]["attachments"]]
        found += [dict(r) for r in self.reservations.values() if r["volume_id"] in visible]
        request = call.request
        wanted = {"volume_id": request.arg("volume_id"), "instance": request.arg("instance_id"),
                  "status": request.arg("status")}
        found = [a for a in found if all(value is None or a[key] == value for key, value in wanted.items())]
        return Response.json(200, {"attachments": found})

    def _listed_all(self, call: Call) -> list[dict]:
        everyone = call.token.is_admin and call.request.arg("all_tenants", "0") not in ("0", "false", "False")
        return [v for v in self.volumes.values() if everyone or v["project_id"] == call.token.project_id]

    def create_attachment(self, call: Call, project_id: str | None = None) -> Response:
        """Reserve a volume for an instance (no connector: the volume goes to 'reserved')."""
        self._new_attach(call)
        body = call.body()
        spec = body.get("attachment") if isinstance(body, dict) else None
        if not isinstance(spec, dict) or not spec.get("volume_uuid"):
            raise ApiError(400, "Invalid input received: 'volume_uuid' is a required property", "badrequest")
        volume = self._find(call, spec["volume_uuid"])
        if volume["status"] not in ("available", "reserved"):
            raise ApiError(400, f"Invalid volume: Volume {volume['id']} status must be available or "
                                f"reserved, but the current status is: {volume['status']}.", "badrequest")
        reservation = self._reserve(volume, spec.get("instance_uuid"), "reserved")
        self._set_status(volume, "reserved")
        return Response.json(200, {"attachment": {**reservation, "attached_at": "", "detached_at": "",
                                                  "attach_mode": None, "connection_info": {}}})

    def delete_attachment(self, call: Call, attachment_id: str, project_id: str | None = None) -> Response:
        self._new_attach(call)
        reservation = self.reservations.get(attachment_id)
        if reservation is None or reservation["volume_id"] not in {v["id"] for v in self._listed_all(call)}:
            raise ApiError(404, f"VolumeAttachment {attachment_id} could not be found.", "notfound")
        del self.reservations[attachment_id]
        volume = self.volumes[reservation["volume_id"]]
        if volume["status"] == "reserved" and not any(r["volume_id"] == volume["id"]
                                                      for r in self.reservations.values()):
            self._set_status(volume, "in-use" if volume["attachments"] else "available")
        return Response.json(200, {"attachments": []})

    # -- snapshots ---------------------------------------------------------------
    def list_snapshots(self, call: Call, project_id: str | None = None) -> Response:
        return Response.json(200, {"snapshots": [self._snapshot_view(call, s)
                                                 for s in self._listed(call, self.snapshots)]})

    list_snapshots_detail = list_snapshots

    def show_snapshot(self, call: Call, snapshot_id: str, project_id: str | None = None) -> Response:
        return Response.json(200, {"snapshot": self._snapshot_view(
            call, self._find_snapshot(call, snapshot_id))})

    def create_snapshot(self, call: Call, project_id: str | None = None) -> Response:
        body = call.body()
        spec = body.get("snapshot") if isinstance(body, dict) else None
        if not isinstance(spec, dict) or not spec.get("volume_id"):
            raise ApiError(400, "Invalid input received: 'volume_id' is a required property",
                           "badrequest")
        volume = self._find(call, spec["volume_id"])
        force = str(spec.get("force", False)).lower() in ("true", "1")
        if volume["status"] != "available" and not (force and volume["status"] == "in-use"):
            raise ApiError(400, f"Invalid volume: Volume {volume['id']} status must be available, "
                                f"but current status is: {volume['status']}.", "badrequest")
        snapshot_id = str(uuid.uuid4())
        stamp = now_iso(micro=True)
        snapshot = {"id": snapshot_id, "name": spec.get("name"), "description": spec.get("description"),
                    "status": "creating", "size": volume["size"], "volume_id": volume["id"],
                    "created_at": stamp, "updated_at": None, "metadata": dict(spec.get("metadata") or {}),
                    "progress": "0%", "project_id": volume["project_id"],
                    "user_id": call.token.user_id}
        self.snapshots[snapshot_id] = snapshot
        self.snapshots_of.setdefault(volume["id"], set()).add(snapshot_id)
        self.cloud.later(self.cloud.delay("volume"), self._snapshot_created, snapshot_id,
                         call.log_context)
        return Response.json(202, {"snapshot": self._snapshot_view(call, snapshot)})

    def _snapshot_created(self, snapshot_id: str, context: LogContext) -> None:
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None or snapshot["status"] != "creating":
            return
        snapshot.update(status="available", progress="100%", updated_at=now_iso(micro=True))
        self._write(context, "INFO", "cinder.volume.manager",
                    f"Create snapshot {snapshot_id} completed successfully")

    def delete_snapshot(self, call: Call, snapshot_id: str, project_id: str | None = None) -> Response:
        snapshot = self._find_snapshot(call, snapshot_id)
        if snapshot["status"] not in ("available", "error"):
            raise ApiError(400, "Invalid snapshot: Volume Snapshot status must be available or "
                                "error and must not be part of a group.", "badrequest")
        snapshot.update(status="deleting", updated_at=now_iso(micro=True))
        self.cloud.later(self.cloud.delay("volume"), self._snapshot_deleted, snapshot_id,
                         call.log_context)
        return Response(202, b"", content_type=None)

    def _snapshot_deleted(self, snapshot_id: str, context: LogContext) -> None:
        snapshot = self.snapshots.pop(snapshot_id, None)
        if snapshot is None:
            return
        siblings = self.snapshots_of.get(snapshot["volume_id"])
        if siblings is not None:
            siblings.discard(snapshot_id)
            if not siblings:
                del self.snapshots_of[snapshot["volume_id"]]
        self._write(context, "INFO", "cinder.volume.manager",
                    f"Delete snapshot {snapshot_id} completed successfully")

    # -- types, limits, quotas ------------------------------------------------------
    def list_types(self, call: Call, project_id: str | None = None) -> Response:
        return Response.json(200, {"volume_types": [self.default_type]})

    def show_default_type(self, call: Call, project_id: str | None = None) -> Response:
        return Response.json(200, {"volume_type": self.default_type})

    def show_type(self, call: Call, type_id: str, project_id: str | None = None) -> Response:
        if type_id not in (self.default_type["id"], DEFAULT_TYPE):
            raise ApiError(404, f"Volume type {type_id} could not be found.", "notfound")
        return Response.json(200, {"volume_type": self.default_type})

    def _quota_values(self) -> dict:
        allowed = self.cloud.config.quota_volumes
        return {"volumes": allowed, "snapshots": allowed, "gigabytes": allowed * 1000,
                "backups": 10, "backup_gigabytes": 1000, "groups": 10, "per_volume_gigabytes": -1,
                f"volumes_{DEFAULT_TYPE}": -1, f"gigabytes_{DEFAULT_TYPE}": -1,
                f"snapshots_{DEFAULT_TYPE}": -1}

    def limits(self, call: Call, project_id: str | None = None) -> Response:
        quota = self._quota_values()
        volumes, gigabytes = self._usage(call.token.project_id)
        snapshots = sum(1 for s in self.snapshots.values() if s["project_id"] == call.token.project_id)
        return Response.json(200, {"limits": {"rate": [], "absolute": {
            "maxTotalVolumes": quota["volumes"], "maxTotalSnapshots": quota["snapshots"],
            "maxTotalVolumeGigabytes": quota["gigabytes"], "maxTotalBackups": quota["backups"],
            "maxTotalBackupGigabytes": quota["backup_gigabytes"], "totalVolumesUsed": volumes,
            "totalGigabytesUsed": gigabytes, "totalSnapshotsUsed": snapshots,
            "totalBackupsUsed": 0, "totalBackupGigabytesUsed": 0}}})

    def _may_see_project(self, call: Call, target_project_id: str) -> None:
        if not (call.token.is_admin or call.token.project_id == target_project_id):
            raise ApiError(403, "Policy doesn't allow volume_extension:quotas:show to be performed.",
                           "forbidden")

    def quota_defaults(self, call: Call, target_project_id: str,
                       project_id: str | None = None) -> Response:
        self._may_see_project(call, target_project_id)
        return Response.json(200, {"quota_set": {"id": target_project_id, **self._quota_values()}})

    def quota_set(self, call: Call, target_project_id: str, project_id: str | None = None) -> Response:
        self._may_see_project(call, target_project_id)
        quota = self._quota_values()
        if call.request.arg("usage", "false").lower() not in ("true", "1"):
            return Response.json(200, {"quota_set": {"id": target_project_id, **quota}})
        volumes, gigabytes = self._usage(target_project_id)
        snapshots = sum(1 for s in self.snapshots.values() if s["project_id"] == target_project_id)
        used = {"volumes": volumes, "gigabytes": gigabytes, "snapshots": snapshots}
        detail = {key: {"limit": limit, "in_use": used.get(key, 0), "reserved": 0, "allocated": 0}
                  for key, limit in quota.items()}
        return Response.json(200, {"quota_set": {"id": target_project_id, **detail}})
