"""Glance v2: image list/show/create/upload/delete and the default CirrOS image."""
from __future__ import annotations

import hashlib
import time
import uuid

from .http import Response
from .logs import LogContext
from .service import ApiError, Call, Service, now_iso, parse_time, webob_error

DEFAULT_IMAGE_NAME = "cirros-0.6.2-x86_64-disk"
# Glance 2025.x answers its root with every minor version it still speaks
GLANCE_VERSIONS = [("v2.17", "CURRENT")] + [(f"v2.{minor}", "SUPPORTED")
                                            for minor in range(16, -1, -1) if minor != 14]
# attributes a client cannot set: they come from the upload or the server
READ_ONLY = {"id", "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
             "created_at", "updated_at", "self", "file", "schema", "owner", "stores"}
KEYSTONE_401 = "The request you have made requires authentication."
# the attributes Glance's image schema defines: every other key of an image is an extra property
BASE_PROPERTIES = frozenset({
    "id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
    "os_hash_value", "owner", "size", "virtual_size", "container_format", "disk_format", "created_at",
    "updated_at", "tags", "direct_url", "min_ram", "min_disk", "self", "file", "stores", "schema",
    "locations"})
# list parameters that are not filters; any other that is not an attribute filters on an extra property
NON_FILTERS = frozenset({"limit", "marker", "sort_key", "sort_dir", "sort", "visibility", "os_hidden",
                         "member_status", "tag", "size_min", "size_max"})
# list filters comparing times ("gte:2026-01-01T00:00:00Z"): operator -> test
TIME_OPERATORS = {"gte": float.__ge__, "gt": float.__gt__, "lte": float.__le__, "lt": float.__lt__,
                  "eq": float.__eq__, "neq": float.__ne__}


class Image(Service):
    name = "image"
    prefix = "/image"
    log_name = "glance-api"

    def setup(self) -> None:
        self.images: dict[str, dict] = {}
        self.data: dict[str, bytes] = {}
        r = self.router
        r.add("GET", "", self.versions, auth=False)
        r.add("GET", "/versions", self.versions, auth=False)
        r.add("GET", "/v2", self.versions, auth=False)
        r.add("GET", "/v2/images", self.list_images)
        r.add("POST", "/v2/images", self.create_image)
        r.add("GET", "/v2/images/{image_id}", self.show_image)
        r.add("PATCH", "/v2/images/{image_id}", self.update_image)
        r.add("DELETE", "/v2/images/{image_id}", self.delete_image)
        r.add("PUT", "/v2/images/{image_id}/file", self.upload)
        r.add("GET", "/v2/images/{image_id}/file", self.download)
        r.add("GET", "/v2/schemas/image", self.image_schema)
        r.add("GET", "/v2/schemas/images", self.images_schema)
        r.add("GET", "/v2/info/import", self.import_info)
        self.default_image_id = self._add_default_image()
        self._default_owner_pending = True

    # -- interface for compute -------------------------------------------
    def get_image(self, image_id: str) -> dict | None:
        """The image record (id, name, status, min_ram, min_disk, ...) or None."""
        self._settle_default_owner()
        return self.images.get(image_id)

    # -- interface for compute: Nova's image proxy, calling Glance with the user's token ----------
    def visible_image(self, token, image_id: str) -> dict | None:
        """The image as GET /v2/images/{id} with this token finds it, or None (Glance's 404)."""
        self._settle_default_owner()
        image = self.images.get(image_id)
        return image if image is not None and self._visible(token, image) else None

    def listed_images(self, token, filters: dict[str, str], marker: str | None,
                      limit: int | None) -> list[dict]:
        """What GET /v2/images with these filters lists for this token, every page of it
        (glanceclient follows `next`); ValueError with Glance's message for a 400."""
        self._settle_default_owner()
        found = self._listing(token, filters)
        return self._page(found, marker, limit)

    def may_modify(self, token, image: dict) -> bool:
        return token.is_admin or image["owner"] == token.project_id

    @staticmethod
    def properties(image: dict) -> dict:
        """The image's extra properties: what Nova calls its metadata."""
        return {key: value for key, value in image.items() if key not in BASE_PROPERTIES}

    def replace_properties(self, image: dict, properties: dict, ids: list[str], token,
                           visibility: str | None = None) -> None:
        """PATCH the image so its extra properties are exactly `properties` (Nova's purge_props),
        and its visibility if given; ValueError naming a key that is one of Glance's own
        attributes (Glance's 403)."""
        reserved = sorted(key for key in properties
                          if key in BASE_PROPERTIES or key.startswith("os_glance"))
        if reserved:
            raise ValueError(reserved[0])
        for key in self.properties(image):
            if key not in properties:
                del image[key]
        image.update(properties)
        if visibility is not None:
            image["visibility"] = visibility
        image["updated_at"] = now_iso()
        self._internal_log(ids, "INFO", f"Image {image['id']} updated", token.user_id, token.project_id)

    def remove_image(self, image_id: str, ids: list[str], token) -> None:
        """DELETE /v2/images/{id} as nova-api sends it, after its own checks (may_modify)."""
        self._forget(image_id)
        self._internal_log(ids, "INFO", f"Image {image_id} deleted", token.user_id, token.project_id)

    # -- interface for compute: server snapshots (Nova's createImage) --------------
    def create_snapshot(self, name: str, owner: str, properties: dict, ids: list[str],
                        user_id: str | None = None) -> dict:
        """A queued image for a server snapshot, as nova-api POSTs it: formats unknown until upload."""
        image_id = str(uuid.uuid4())
        image = self._new_record(image_id, {"name": name, "visibility": "private", **properties}, owner)
        self.images[image_id] = image
        self._internal_log(ids, "INFO", f"Image {image_id} created", user_id, owner)
        return image

    def snapshot_saving(self, image_id: str) -> dict | None:
        """queued -> saving: nova-compute started the upload; None when the image is gone."""
        image = self.images.get(image_id)
        if image is not None and image["status"] == "queued":
            image.update(status="saving", updated_at=now_iso())
        return image

    def snapshot_uploaded(self, image_id: str, payload: bytes, ids: list[str]) -> dict | None:
        """saving -> active with the snapshot's data; None when the image is gone."""
        image = self.images.get(image_id)
        if image is None:
            return None
        image.update(disk_format=image.get("disk_format") or "qcow2",
                     container_format=image.get("container_format") or "bare")
        self._store(image, payload)
        self._internal_log(ids, "INFO", f"Image {image_id} uploaded", None, image["owner"])
        return image

    def discard_snapshot(self, image_id: str, ids: list[str]) -> bool:
        """Delete a partial snapshot (its server went away mid-snapshot); False when already gone."""
        image = self._forget(image_id)
        if image is not None:
            self._internal_log(ids, "INFO", f"Image {image_id} deleted", None, image["owner"])
        return image is not None

    def images_with(self, owner: str, properties: dict[str, str]) -> list[dict]:
        """The owner's images whose properties include these, oldest first (Nova's backup rotation)."""
        return [image for image in self.images.values()
                if image["owner"] == owner and all(image.get(key) == value for key, value in properties.items())]

    def _internal_log(self, ids: list[str], level: str, message: str, user_id: str | None,
                      project_id: str | None) -> None:
        """A glance-api line for a call nova made: nova's global id, Glance's own local id."""
        ids = [i for i in ids if i]
        context = LogContext(f"req-{uuid.uuid4()}", ids[0] if ids else None, user_id, project_id)
        self.cloud.logs["glance-api"].write(level, "glance.api.v2.images", message, context)

    def _settle_default_owner(self) -> None:
        # services are built before Keystone's bootstrap projects exist: the admin project
        # becomes the default image's owner as soon as it is known
        if self._default_owner_pending:
            admin_project = getattr(self.cloud, "admin_project", None)
            if admin_project is not None:
                self.images[self.default_image_id]["owner"] = admin_project.id
                self._default_owner_pending = False

    def before(self, call: Call) -> None:
        self._settle_default_owner()

    def _add_default_image(self) -> str:
        # a stable id: the same default image in every run, like a devstack that keeps its Glance
        image_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"novastress-fakecloud/{DEFAULT_IMAGE_NAME}"))
        image = self._new_record(image_id, {"name": DEFAULT_IMAGE_NAME, "disk_format": "qcow2",
                                            "container_format": "bare", "visibility": "public"},
                                 None)
        payload = DEFAULT_IMAGE_NAME.encode() * 64
        self._store(image, payload)
        image.update(size=21430272, virtual_size=117440512)
        self.images[image_id] = image
        return image_id

    # -- records -------------------------------------------------------------
    def _new_record(self, image_id: str, spec: dict, owner: str | None) -> dict:
        stamp = now_iso()
        record = {"name": None, "disk_format": None, "container_format": None,
                  "visibility": "shared", "size": None, "virtual_size": None, "status": "queued",
                  "checksum": None, "protected": False, "min_ram": 0, "min_disk": 0,
                  "owner": owner, "os_hidden": False, "os_hash_algo": None, "os_hash_value": None,
                  "id": image_id, "created_at": stamp, "updated_at": stamp, "tags": [],
                  "self": f"/v2/images/{image_id}", "file": f"/v2/images/{image_id}/file",
                  "schema": "/v2/schemas/image"}
        for key, value in spec.items():
            if key not in READ_ONLY:
                record[key] = value
        return record

    def _store(self, image: dict, payload: bytes) -> None:
        self.data[image["id"]] = payload
        image.update(size=len(payload), virtual_size=len(payload), status="active",
                     checksum=hashlib.md5(payload, usedforsecurity=False).hexdigest(),
                     os_hash_algo="sha512", os_hash_value=hashlib.sha512(payload).hexdigest(),
                     stores="fs", updated_at=now_iso())

    def _forget(self, image_id: str) -> dict | None:
        self.data.pop(image_id, None)
        return self.images.pop(image_id, None)

    @staticmethod
    def _visible(token, image: dict) -> bool:
        return (token.is_admin or image["visibility"] in ("public", "community")
                or image["owner"] == token.project_id)

    def _find(self, call: Call, image_id: str) -> dict:
        image = self.images.get(image_id)
        if image is None or not self._visible(call.token, image):
            raise ApiError(404, f"No image found with ID {image_id}", "notfound")
        return image

    def _owned(self, call: Call, image: dict) -> None:
        if not self.may_modify(call.token, image):
            raise ApiError(403, "You are not permitted to modify this image.", "forbidden")

    def _listing(self, token, filters: dict[str, str], visibility: str | None = None,
                 hidden: bool = False) -> list[dict]:
        """Glance's list before paging: what the token sees, filtered, newest first.

        A filter compares an attribute or extra property with `==`; created_at and updated_at
        take an operator (`updated_at=gte:2026-01-02T03:04:05Z`). ValueError for a bad time."""
        times = {key: _time_filter(key, filters[key]) for key in ("created_at", "updated_at")
                 if key in filters}
        exact = {key: value for key, value in filters.items() if key not in times}
        found = []
        for position, image in enumerate(self.images.values()):
            # hidden images are listed only when asked for, like Glance's os_hidden filter
            if not self._visible(token, image) or bool(image.get("os_hidden")) != hidden:
                continue
            if visibility is not None:
                if visibility != "all" and image["visibility"] != visibility:
                    continue
            elif image["visibility"] == "community" and image["owner"] != token.project_id:
                continue  # community images are listed only when asked for
            if any(str(image.get(key)) != value for key, value in exact.items()):
                continue
            if any(not test(parse_time(image[key]), moment) for key, (test, moment) in times.items()):
                continue
            found.append((image["created_at"], position, image))
        # Glance's default order: newest first; its timestamps are finer than these seconds, so
        # the later made of two in one second is the newer
        found.sort(key=lambda entry: entry[:2], reverse=True)
        return [image for _, _, image in found]

    def _page(self, found: list[dict], marker: str | None, limit: int | None) -> list[dict]:
        """The images after `marker`, at most `limit`; ValueError for a marker Glance does not know."""
        if marker is not None:
            if marker not in self.images:
                raise ValueError(f"Invalid marker. Image {marker} could not be found.")
            ids = [image["id"] for image in found]
            found = found[ids.index(marker) + 1:] if marker in ids else []
        return found if limit is None else found[:limit]

    # -- version documents ---------------------------------------------------
    def versions(self, call: Call) -> Response:
        href = f"{self.url}/v2/"
        values = [{"id": vid, "status": status, "links": [{"rel": "self", "href": href}]}
                  for vid, status in GLANCE_VERSIONS]
        return Response.json(300, {"versions": values})

    # -- images ----------------------------------------------------------------
    def list_images(self, call: Call) -> Response:
        request = call.request
        filters = {key: request.arg(key) for key in ("name", "status", "owner", "disk_format",
                                                      "container_format", "id", "created_at",
                                                      "updated_at")
                   if request.arg(key) is not None}
        # Glance filters on any extra property given (Tempest lists a server's backups so)
        filters.update({key: request.arg(key) for key in request.query
                        if key not in BASE_PROPERTIES and key not in NON_FILTERS})
        try:
            limit = int(request.arg("limit") or 25)
        except ValueError:
            raise ApiError(400, "limit param must be an integer", "badrequest") from None
        if limit < 0:
            raise ApiError(400, "limit param must be positive", "badrequest")
        hidden = (request.arg("os_hidden") or "false").lower() == "true"
        try:
            found = self._listing(call.token, filters, request.arg("visibility"), hidden)
            if request.arg("sort_dir") == "asc":
                found.reverse()
            page = self._page(found, request.arg("marker"), None)
        except ValueError as exc:
            raise ApiError(400, str(exc), "badrequest") from None
        body = {"images": page[:limit], "first": "/v2/images", "schema": "/v2/schemas/images"}
        if len(page) > limit and limit:
            body["next"] = f"/v2/images?marker={page[limit - 1]['id']}&limit={limit}"
        return Response.json(200, body)

    def show_image(self, call: Call, image_id: str) -> Response:
        return Response.json(200, self._find(call, image_id))

    def create_image(self, call: Call) -> Response:
        spec = call.body()
        if not isinstance(spec, dict):
            raise ApiError(400, "Invalid JSON body: expected an object", "badrequest")
        forbidden = sorted(key for key in spec if key in READ_ONLY - {"id"})
        if forbidden:
            raise ApiError(403, f"Attribute '{forbidden[0]}' is read-only.", "forbidden")
        visibility = spec.get("visibility", "shared")
        if visibility not in ("public", "private", "shared", "community"):
            raise ApiError(400, f"Invalid value '{visibility}' for parameter 'visibility'", "badrequest")
        if visibility == "public" and not call.token.is_admin:
            raise ApiError(403, 'You are not authorized to complete publicize_image action.',
                           "forbidden")
        image_id = spec.get("id") or str(uuid.uuid4())
        if image_id in self.images:
            raise ApiError(409, f"Image with identifier {image_id} already exists!", "conflict")
        image = self._new_record(image_id, spec, call.token.project_id)
        self.images[image_id] = image
        self.log(call, "INFO", "glance.api.v2.images", f"Image {image_id} created")
        return Response.json(201, image, [("Location", f"{self.url}/v2/images/{image_id}")])

    def update_image(self, call: Call, image_id: str) -> Response:
        image = self._find(call, image_id)
        self._owned(call, image)
        changes = call.body()
        if not isinstance(changes, list):
            raise ApiError(400, "Invalid JSON patch: expected a list of changes", "badrequest")
        for change in changes:
            op, path = change.get("op"), str(change.get("path", "")).lstrip("/")
            if path in READ_ONLY:
                raise ApiError(403, f"Attribute '{path}' is read-only.", "forbidden")
            if op in ("add", "replace"):
                image[path] = change.get("value")
            elif op == "remove":
                if image.pop(path, None) is None:
                    raise ApiError(409, f"Property {path} does not exist.", "conflict")
            else:
                raise ApiError(400, f"Invalid operation: `{op}`", "badrequest")
        image["updated_at"] = now_iso()
        return Response.json(200, image)

    def delete_image(self, call: Call, image_id: str) -> Response:
        image = self._find(call, image_id)
        self._owned(call, image)
        if image.get("protected"):
            raise ApiError(403, f"Image {image_id} is protected and cannot be deleted.", "forbidden")
        self._forget(image_id)
        self.log(call, "INFO", "glance.api.v2.images", f"Image {image_id} deleted")
        return Response(204, b"", content_type=None)

    def upload(self, call: Call, image_id: str) -> Response:
        image = self._find(call, image_id)
        self._owned(call, image)
        if image["status"] != "queued":
            raise ApiError(409, f"Image status transition from {image['status']} to saving is "
                                "not allowed", "conflict")
        self._store(image, call.request.body)
        return Response(204, b"", content_type=None)

    def download(self, call: Call, image_id: str) -> Response:
        image = self._find(call, image_id)
        payload = self.data.get(image_id)
        if payload is None:
            return Response(204, b"", content_type=None)
        return Response(200, payload, [("Content-MD5", image["checksum"])],
                        content_type="application/octet-stream")

    # -- schemas and info --------------------------------------------------------
    def _schema(self) -> dict:
        string = {"type": ["null", "string"]}
        return {"name": "image", "additionalProperties": {"type": "string"},
                "properties": {"id": {"type": "string"}, "name": string,
                               "status": {"type": "string", "enum": [
                                   "queued", "saving", "active", "killed", "deleted",
                                   "uploading", "importing", "pending_delete", "deactivated"]},
                               "visibility": {"type": "string", "enum": [
                                   "community", "public", "private", "shared"]},
                               "protected": {"type": "boolean"}, "os_hidden": {"type": "boolean"},
                               "checksum": string, "owner": string, "size": {"type": ["null", "integer"]},
                               "virtual_size": {"type": ["null", "integer"]},
                               "container_format": string, "disk_format": string,
                               "min_ram": {"type": "integer"}, "min_disk": {"type": "integer"},
                               "created_at": {"type": "string"}, "updated_at": {"type": "string"},
                               "tags": {"type": "array", "items": {"type": "string"}},
                               "self": {"type": "string"}, "file": {"type": "string"},
                               "schema": {"type": "string"}},
                "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
                          {"rel": "describedby", "href": "{schema}"}]}

    def image_schema(self, call: Call) -> Response:
        return Response.json(200, self._schema())

    def images_schema(self, call: Call) -> Response:
        return Response.json(200, {"name": "images", "properties": {
            "images": {"type": "array", "items": self._schema()},
            "schema": {"type": "string"}, "first": {"type": "string"}, "next": {"type": "string"}},
            "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                      {"rel": "describedby", "href": "{schema}"}]})

    def import_info(self, call: Call) -> Response:
        return Response.json(200, {"import-methods": {
            "description": "Import methods available.", "type": "array",
            "value": ["glance-direct", "web-download", "copy-image"]}})

    # -- errors and logs -------------------------------------------------------
    def error(self, call: Call, error: ApiError) -> Response:
        if error.status == 401:
            return Response.json(401, {"error": {"code": 401, "title": "Unauthorized",
                                                 "message": KEYSTONE_401}}, error.headers)
        return webob_error(call.request.header("accept"), error.status, error.message, error.headers)

    def finished(self, call: Call, response: Response) -> None:
        request = call.request
        elapsed = time.monotonic() - call.started
        self.log(call, "INFO", "eventlet.wsgi.server",
                 f'{request.remote_addr} - - "{request.method} {request.target} HTTP/1.1" '
                 f"{response.status} {len(response.body)} {elapsed:.6f}")



def _time_filter(key: str, value: str):
    """(test, moment) of a created_at/updated_at filter; ValueError with Glance's message."""
    operator, _, moment = value.partition(":")
    if operator not in TIME_OPERATORS:     # no operator: the whole value is the time
        operator, moment = "eq", value
    parsed = parse_time(moment)
    if parsed is None:
        raise ValueError(f'Bad "{key}" query filter format. Use ISO 8601 DateTime notation.')
    return TIME_OPERATORS[operator], parsed
