"""A server's metadata API in the embedded cloud, as Nova 34 answers it.

    GET|PUT|POST /v2.1/servers/{id}/metadata       GET|PUT|DELETE /v2.1/servers/{id}/metadata/{key}

PUT replaces every item, POST merges; the item calls work on one key. The body is checked first
(Nova's JSON schema, 400), then the server (404), then the item (400 when a PUT's body names
another key, 404 when a key is not there), the lock and the state (409: a server that is building
or in a task, or not active, paused, suspended or stopped), and the project's `metadata_items`
quota (403).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .http import Response
from .image_proxy import checked_metadata
from .service import ApiError, Call

if TYPE_CHECKING:  # pragma: no cover
    from .compute import Compute, Server

# the vm_states Nova's compute API lets metadata change in (with no task under way)
CHANGEABLE = ("active", "paused", "suspended", "stopped")


class ServerMetadata:
    """The routes; state stays on the server record of the embedded Compute."""

    def __init__(self, compute: "Compute") -> None:
        self.compute = compute

    def add_routes(self, add: Callable) -> None:
        add("GET", "/v2.1/servers/{server_id}/metadata", self.list_metadata)
        add("PUT", "/v2.1/servers/{server_id}/metadata", self.replace_metadata)
        add("POST", "/v2.1/servers/{server_id}/metadata", self.merge_metadata)
        add("GET", "/v2.1/servers/{server_id}/metadata/{key}", self.show_item)
        add("PUT", "/v2.1/servers/{server_id}/metadata/{key}", self.set_item)
        add("DELETE", "/v2.1/servers/{server_id}/metadata/{key}", self.delete_item)

    def list_metadata(self, call: Call, server_id: str) -> Response:
        return Response.json(200, {"metadata": dict(self.compute._server(call, server_id).metadata)})

    def show_item(self, call: Call, server_id: str, key: str) -> Response:
        metadata = self.compute._server(call, server_id).metadata
        if key not in metadata:
            raise ApiError(404, "Metadata item was not found")
        return Response.json(200, {"meta": {key: metadata[key]}})

    def merge_metadata(self, call: Call, server_id: str) -> Response:
        changes = checked_metadata(call.body(), "metadata")
        server = self.compute._server(call, server_id)
        return Response.json(200, {"metadata": self._save(call, server, {**server.metadata, **changes},
                                                          "update metadata")})

    def replace_metadata(self, call: Call, server_id: str) -> Response:
        metadata = checked_metadata(call.body(), "metadata")
        server = self.compute._server(call, server_id)
        return Response.json(200, {"metadata": self._save(call, server, metadata, "update metadata")})

    def set_item(self, call: Call, server_id: str, key: str) -> Response:
        meta = checked_metadata(call.body(), "meta", single=True)
        server = self.compute._server(call, server_id)
        if key not in meta:
            raise ApiError(400, "Request body and URI mismatch")
        self._save(call, server, {**server.metadata, **meta}, "update metadata")
        return Response.json(200, {"meta": meta})

    def delete_item(self, call: Call, server_id: str, key: str) -> Response:
        server = self.compute._server(call, server_id)
        if key not in server.metadata:
            raise ApiError(404, "Metadata item was not found")
        self._changeable(call, server, "delete metadata")
        server.metadata.pop(key, None)
        server.touch()
        return Response(204, b"", content_type=None)

    def _changeable(self, call: Call, server: "Server", action: str) -> None:
        self.compute._check_locked(call, server)
        self.compute._conflict(server, action, CHANGEABLE)

    def _save(self, call: Call, server: "Server", metadata: dict, action: str) -> dict:
        self._changeable(call, server, action)
        limit = self.compute._limits(server.project_id)["metadata_items"]
        if metadata and 0 <= limit < len(metadata):
            raise ApiError(403, f"Maximum number of metadata items exceeds {limit}")
        server.metadata = dict(metadata)
        server.touch()
        return dict(server.metadata)
