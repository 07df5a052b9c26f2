"""Nova's image proxy API of the embedded cloud: `/images` and `/images/{id}/metadata`, answered
from the embedded Glance's own store with the caller's token, as nova-api proxies them.

    GET /v2.1/images[/detail]?name=&status=&changes-since=&server=&type=&minRam=&minDisk=&limit=&marker=
    GET|DELETE /v2.1/images/{id}
    GET|PUT|POST /v2.1/images/{id}/metadata      GET|PUT|DELETE /v2.1/images/{id}/metadata/{key}

Nova removed them from the API in 2.36 (images) and 2.39 (image metadata): a later
microversion answers 404 as for a method that does not exist. A DELETE here deletes the
Glance image; an image made in Glance or by a server snapshot is listed here.
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlencode

from .http import Response
from .image import BASE_PROPERTIES
from .server_fields import not_allowed
from .service import ApiError, Call

if TYPE_CHECKING:  # pragma: no cover
    from .compute import Compute

IMAGES_MAX_MINOR = 35     # Nova's MAX_PROXY_API_SUPPORT_VERSION
METADATA_MAX_MINOR = 38   # Nova's MAX_IMAGE_META_PROXY_API_VERSION
MAX_LIMIT = 1000          # Nova's [api] max_limit
# list query parameter -> the Glance filter nova-api makes of it (property-* pass through)
FILTERS = {"name": "name", "status": "status", "changes-since": "changes-since",
           "server": "property-instance_uuid", "type": "property-image_type",
           "minRam": "min_ram", "minDisk": "min_disk"}
# Glance image status -> Nova image status and progress
STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING", "deleted": "DELETED",
          "pending_delete": "DELETED", "killed": "ERROR"}
PROGRESS = {"queued": 25, "saving": 50, "active": 100}
# nova stores these properties JSON-encoded in Glance and shows them decoded
JSON_PROPERTIES = ("block_device_mapping", "mappings")
TRUE_STRINGS = ("1", "t", "true", "on", "y", "yes")   # oslo's bool_from_string
# Nova's metadata schema: keys (`9-_` is a character range there too) and values up to 255 long
METADATA_KEY = "^[a-zA-Z0-9-_:. ]{1,255}$"
PAGING_PARAMETERS = ("limit", "page_size", "offset")   # positive_integer in Nova's query schema
ALTERNATE_TYPE = "application/vnd.openstack.image"


def _invalid(message: str, path: str | None = None, value=None) -> ApiError:
    """Nova's JSON-schema 400: the failing attribute and its value, when the error has a path."""
    if path is None:
        return ApiError(400, message)
    return ApiError(400, f"Invalid input for field/attribute {path}. Value: {value}. {message}")


def checked_metadata(body, key: str, single: bool = False) -> dict:
    """The `metadata` (or, single, the one-key `meta`) object of a request body, checked in the
    order Nova's JSON schema checks it: the body, the object, its keys and values, its size."""
    if not isinstance(body, dict):
        raise _invalid(f"{body!r} is not of type 'object'")
    if key not in body:
        raise _invalid(f"{key!r} is a required property")
    metadata = body[key]
    if not isinstance(metadata, dict):
        raise _invalid(f"{metadata!r} is not of type 'object'", key, metadata)
    for name, value in metadata.items():
        if not re.search(METADATA_KEY, name):
            continue
        if not isinstance(value, str):
            raise _invalid(f"{value!r} is not of type 'string'", name, value)
        if len(value) > 255:
            raise _invalid(f"{value!r} is too long", name, value)
    unexpected = sorted(name for name in metadata if not re.search(METADATA_KEY, name))
    if unexpected:
        verb = "does" if len(unexpected) == 1 else "do"
        raise _invalid(f"{', '.join(map(repr, unexpected))} {verb} not match any of the regexes: "
                       f"'{METADATA_KEY}'", key, metadata)
    if single and not metadata:
        raise _invalid(f"{metadata!r} should be non-empty", key, metadata)
    if single and len(metadata) > 1:
        raise _invalid(f"{metadata!r} has too many properties", key, metadata)
    extra = sorted(name for name in body if name != key)
    if extra:
        raise _invalid(not_allowed(extra))
    return metadata


def checked_paging(call: Call) -> None:
    """Nova's query schema of the image lists: limit, page_size and offset are digit strings."""
    for name in PAGING_PARAMETERS:
        for value in call.request.query.get(name, ()):
            problem = (f"{value!r} should be non-empty" if value == "" else
                       None if value.isdigit() and value.isascii() else f"{value!r} does not match '^[0-9]*$'")
            if problem:
                raise ApiError(400, f"Invalid input for query parameters {name}. Value: {value}. {problem}")


def glance_filters(call: Call) -> dict[str, str]:
    """The Glance v2 list filters nova-api makes of the query (images.py, then glance.py)."""
    request = call.request
    filters = {FILTERS.get(param, param): request.arg(param) for param in request.query
               if param in FILTERS or param.startswith("property-")}
    server = filters.get("property-instance_uuid")
    if server and "/" in server:    # a server's URL: its last part is the id
        filters["property-instance_uuid"] = server.rsplit("/", 1)[1]
    if "status" in filters:
        filters["status"] = filters["status"].lower()
    converted = {}
    for name, value in filters.items():
        if name.startswith("property-"):
            # nova strips the prefix with str.lstrip, a set of characters: kept, quirks and all
            converted[name.lstrip("property-")] = value
        elif name == "changes-since":
            converted["updated_at"] = f"gte:{value}"
        else:
            converted[name] = value
    return converted


class ImageProxy:
    """The routes of Nova's images and image metadata controllers, on the compute service."""

    def __init__(self, compute: "Compute") -> None:
        self.compute = compute
        self.glance = compute.cloud.image

    def add_routes(self, add: Callable) -> None:
        add("GET", "/v2.1/images/detail", self.list_images_detail)   # before /images/{image_id}
        add("GET", "/v2.1/images", self.list_images)
        add("GET", "/v2.1/images/{image_id}", self.show_image)
        add("DELETE", "/v2.1/images/{image_id}", self.delete_image)
        add("GET", "/v2.1/images/{image_id}/metadata", self.list_metadata)
        add("PUT", "/v2.1/images/{image_id}/metadata", self.replace_metadata)
        add("POST", "/v2.1/images/{image_id}/metadata", self.merge_metadata)
        add("GET", "/v2.1/images/{image_id}/metadata/{key}", self.show_metadata_item)
        add("PUT", "/v2.1/images/{image_id}/metadata/{key}", self.set_metadata_item)
        add("DELETE", "/v2.1/images/{image_id}/metadata/{key}", self.delete_metadata_item)

    # -- helpers -------------------------------------------------------------------------------
    def _until(self, call: Call, max_minor: int) -> None:
        """Nova's answer to a method its requested microversion does not have."""
        if self.compute._minor(call) > max_minor:
            raise ApiError(404, "The resource could not be found.", "notfound")

    def _image(self, call: Call, image_id: str) -> dict:
        image = self.glance.visible_image(call.token, image_id)
        if image is None:
            raise ApiError(404, "Image not found.")
        return image

    def _metadata(self, image: dict) -> dict:
        metadata = self.glance.properties(image)
        for key in JSON_PROPERTIES:
            if isinstance(metadata.get(key), str):
                try:
                    metadata[key] = json.loads(metadata[key])
                except ValueError:
                    pass
        return metadata

    def _links(self, image_id: str) -> list[dict]:
        return [*self.compute._links("images", image_id),
                {"rel": "alternate", "type": ALTERNATE_TYPE, "href": f"{self.glance.url}/images/{image_id}"}]

    def _brief_view(self, image: dict) -> dict:
        return {"id": image["id"], "name": image.get("name"), "links": self._links(image["id"])}

    def _view(self, image: dict) -> dict:
        metadata = self._metadata(image)
        view = {"id": image["id"], "name": image.get("name"), "minRam": int(image.get("min_ram") or 0),
                "minDisk": int(image.get("min_disk") or 0), "metadata": metadata,
                "created": image.get("created_at"), "updated": image.get("updated_at"),
                "status": STATUS.get(image["status"], "UNKNOWN"), "progress": PROGRESS.get(image["status"], 0),
                "OS-EXT-IMG-SIZE:size": image["size"] if image.get("size") is not None else 0,
                "links": self._links(image["id"])}
        server_id = metadata.get("instance_uuid")
        if server_id is not None:
            view["server"] = {"id": server_id, "links": self.compute._links("servers", server_id)}
        disk_config = metadata.get("auto_disk_config")
        if disk_config is not None:
            view["OS-DCF:diskConfig"] = "AUTO" if str(disk_config).strip().lower() in TRUE_STRINGS else "MANUAL"
        return view

    def _check_quota(self, call: Call, metadata: dict) -> None:
        limit = self.compute._limits(call.token.project_id)["metadata_items"]
        if metadata and 0 <= limit < len(metadata):
            raise ApiError(403, "Image metadata limit exceeded")

    def _save(self, call: Call, image: dict, metadata: dict) -> None:
        """nova-api's image update with purge_props: Glance's 403s become Nova's ImageNotAuthorized."""
        denied = ApiError(403, f"Not authorized for image {image['id']}.")
        if not self.glance.may_modify(call.token, image):
            raise denied
        # nova-api sends the image back as it read it, and it read visibility as Glance v1's
        # is_public: a shared or community image comes back private
        visibility = "public" if image["visibility"] == "public" else "private"
        # it also flattens the metadata into the image before the image's own attributes: a key
        # naming one of them (name, checksum...) is overwritten by the attribute and lost
        properties = {key: value for key, value in metadata.items() if key not in BASE_PROPERTIES}
        try:
            self.glance.replace_properties(image, properties, call.ids, call.token, visibility)
        except ValueError:      # a property Glance reserves for itself (os_glance_*)
            raise denied from None

    # -- images --------------------------------------------------------------------------------
    def list_images(self, call: Call) -> Response:
        return self._list(call, "images", self._brief_view)

    def list_images_detail(self, call: Call) -> Response:
        return self._list(call, "images/detail", self._view)

    def _list(self, call: Call, collection: str, view: Callable[[dict], dict]) -> Response:
        self._until(call, IMAGES_MAX_MINOR)
        checked_paging(call)
        request = call.request
        limit = int(request.arg("limit") or 0)
        try:
            # a limit of 0 is no limit: nova-api passes only the parameters that are set
            images = self.glance.listed_images(call.token, glance_filters(call), request.arg("marker"),
                                               limit or None)
        except ValueError as exc:   # Glance's 400, as glanceclient words it
            raise ApiError(400, f"400 Bad Request: {exc} (HTTP 400)") from None
        body: dict = {"images": [view(image) for image in images]}
        # Nova links the next page when the page is as long as the limit (or max_limit)
        page_size = min(int(request.arg("limit", str(MAX_LIMIT))), MAX_LIMIT)
        if page_size and page_size == len(images):
            params: dict[str, str] = {}
            for name, value in sorted((name, value) for name, values in request.query.items()
                                      for value in values):
                params[name] = value
            params["marker"] = images[-1]["id"]
            body["images_links"] = [{"rel": "next",
                                     "href": f"{self.compute._base}/v2.1/{collection}?{urlencode(params)}"}]
        return Response.json(200, body)

    def show_image(self, call: Call, image_id: str) -> Response:
        self._until(call, IMAGES_MAX_MINOR)
        return Response.json(200, {"image": self._view(self._image(call, image_id))})

    def delete_image(self, call: Call, image_id: str) -> Response:
        self._until(call, IMAGES_MAX_MINOR)
        image = self._image(call, image_id)
        if not self.glance.may_modify(call.token, image) or image.get("protected"):
            raise ApiError(403, "You are not allowed to delete the image.")
        self.glance.remove_image(image_id, call.ids, call.token)
        return Response(204, b"", content_type=None)

    # -- image metadata ------------------------------------------------------------------------
    def list_metadata(self, call: Call, image_id: str) -> Response:
        self._until(call, METADATA_MAX_MINOR)
        return Response.json(200, {"metadata": self._metadata(self._image(call, image_id))})

    def show_metadata_item(self, call: Call, image_id: str, key: str) -> Response:
        self._until(call, METADATA_MAX_MINOR)
        metadata = self._metadata(self._image(call, image_id))
        if key not in metadata:
            raise ApiError(404, "The resource could not be found.", "notfound")
        return Response.json(200, {"meta": {key: metadata[key]}})

    def merge_metadata(self, call: Call, image_id: str) -> Response:
        body = call.body()      # a malformed body is a 400 at any microversion
        self._until(call, METADATA_MAX_MINOR)
        changes = checked_metadata(body, "metadata")
        image = self._image(call, image_id)
        metadata = {**self.glance.properties(image), **changes}
        self._check_quota(call, metadata)
        self._save(call, image, metadata)
        return Response.json(200, {"metadata": self._metadata(image)})

    def replace_metadata(self, call: Call, image_id: str) -> Response:
        body = call.body()
        self._until(call, METADATA_MAX_MINOR)
        metadata = checked_metadata(body, "metadata")
        image = self._image(call, image_id)
        self._check_quota(call, metadata)
        self._save(call, image, dict(metadata))
        return Response.json(200, {"metadata": metadata})

    def set_metadata_item(self, call: Call, image_id: str, key: str) -> Response:
        body = call.body()
        self._until(call, METADATA_MAX_MINOR)
        meta = checked_metadata(body, "meta", single=True)
        if key not in meta:
            raise ApiError(400, "Request body and URI mismatch")
        image = self._image(call, image_id)
        metadata = {**self.glance.properties(image), key: meta[key]}
        self._check_quota(call, metadata)
        self._save(call, image, metadata)
        return Response.json(200, {"meta": meta})

    def delete_metadata_item(self, call: Call, image_id: str, key: str) -> Response:
        self._until(call, METADATA_MAX_MINOR)
        image = self._image(call, image_id)
        metadata = self.glance.properties(image)
        if key not in metadata:
            raise ApiError(404, "Invalid metadata key")
        del metadata[key]
        self._save(call, image, metadata)
        return Response(204, b"", content_type=None)
