"""A server's tags in the embedded cloud (compute 2.26+), as Nova 34 answers them.

    GET|PUT|DELETE /v2.1/servers/{id}/tags        GET|PUT|DELETE /v2.1/servers/{id}/tags/{tag}

A tag is 1 to 60 characters without '/' or ','; a server has at most 50. PUT of the list replaces
it (200 and the list), PUT of one tag adds it (201 with its Location, 204 when it was there), GET
of one answers 204 or 404. Changes need the server active, paused, suspended or stopped (409
otherwise); reads do not. Before 2.26 the routes do not exist (404).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .http import Response
from .server_fields import not_allowed
from .service import ApiError, Call

if TYPE_CHECKING:  # pragma: no cover
    from .compute import Compute, Server

MIN_MINOR = 26
MAX_TAGS = 50        # Nova's objects.instance.MAX_TAG_COUNT
MAX_LENGTH = 60      # Nova's objects.tag.MAX_TAG_LENGTH
CHANGEABLE = ("active", "paused", "suspended", "stopped")


def tag_problem(tag: Any) -> str | None:
    """What Nova's `tag` JSON schema says of a value; None when it is a valid tag."""
    if not isinstance(tag, str):
        return f"{tag!r} is not of type 'string'"
    if not tag:
        return f"{tag!r} should be non-empty"
    if len(tag) > MAX_LENGTH:
        return f"{tag!r} is too long"
    if "/" in tag or "," in tag:
        return f"{tag!r} does not match '^[^,/]*$'"
    return None


def checked_tags(body: Any) -> list[str]:
    """The `tags` list of a request body (a PUT of the list, a boot at 2.52+), checked as Nova's schema does."""
    if not isinstance(body, dict) or "tags" not in body:
        raise ApiError(400, "Invalid input for field/attribute tags. 'tags' is a required property")
    tags = body["tags"]
    if not isinstance(tags, list):
        raise ApiError(400, f"Invalid input for field/attribute tags. Value: {tags}. {tags!r} is not of type 'array'")
    for position, tag in enumerate(tags):
        problem = tag_problem(tag)
        if problem:
            raise ApiError(400, f"Invalid input for field/attribute tags/{position}. Value: {tag}. {problem}")
    if len(tags) > MAX_TAGS:
        raise ApiError(400, f"Invalid input for field/attribute tags. Value: {tags}. {tags!r} is too long")
    extra = sorted(key for key in body if key != "tags")
    if extra:
        raise ApiError(400, not_allowed(extra))
    return list(dict.fromkeys(tags))


class ServerTags:
    """The routes; the tags live on the server record of the embedded Compute."""

    def __init__(self, compute: "Compute") -> None:
        self.compute = compute

    def add_routes(self, add: Callable) -> None:
        add("GET", "/v2.1/servers/{server_id}/tags", self.list_tags)
        add("PUT", "/v2.1/servers/{server_id}/tags", self.replace_tags)
        add("DELETE", "/v2.1/servers/{server_id}/tags", self.delete_tags)
        add("GET", "/v2.1/servers/{server_id}/tags/{tag}", self.check_tag)
        add("PUT", "/v2.1/servers/{server_id}/tags/{tag}", self.add_tag)
        add("DELETE", "/v2.1/servers/{server_id}/tags/{tag}", self.delete_tag)

    def _server(self, call: Call, server_id: str, change: str | None = None) -> "Server":
        self._since_2_26(call)
        server = self.compute._server(call, server_id)
        if change is not None and server.vm_state not in CHANGEABLE:
            raise ApiError(409, f"Cannot '{change}' instance {server_id} while it is in vm_state {server.vm_state}")
        return server

    def _since_2_26(self, call: Call) -> None:
        """Before 2.26 Nova routes none of these: its 404 for a path it does not know."""
        if self.compute._minor(call) < MIN_MINOR:
            raise ApiError(404, "The resource could not be found.", "notfound")

    def list_tags(self, call: Call, server_id: str) -> Response:
        return Response.json(200, {"tags": list(self._server(call, server_id).tags)})

    def check_tag(self, call: Call, server_id: str, tag: str) -> Response:
        if tag not in self._server(call, server_id).tags:
            raise ApiError(404, f"Server {server_id} has no tag '{tag}'")
        return Response(204, b"", content_type=None)

    def replace_tags(self, call: Call, server_id: str) -> Response:
        self._since_2_26(call)
        tags = checked_tags(call.body())
        server = self._server(call, server_id, "update tags")
        server.tags = tags
        server.touch()
        return Response.json(200, {"tags": list(server.tags)})

    def add_tag(self, call: Call, server_id: str, tag: str) -> Response:
        server = self._server(call, server_id, "update tag")
        problem = tag_problem(tag)
        if problem:
            raise ApiError(400, f"Tag '{tag}' is invalid. It must be a non empty string without characters '/' "
                                f"and ','. Validation error message: {problem}")
        if len(server.tags) >= MAX_TAGS:
            raise ApiError(400, f"The number of tags exceeded the per-server limit {MAX_TAGS}")
        if tag in server.tags:
            return Response(204, b"", content_type=None)
        server.tags.append(tag)
        server.touch()
        return Response(201, b"", [("Location", f"{self.compute._base}/v2.1/servers/{server_id}/tags/{tag}")], None)

    def delete_tags(self, call: Call, server_id: str) -> Response:
        server = self._server(call, server_id, "delete tags")
        server.tags = []
        server.touch()
        return Response(204, b"", content_type=None)

    def delete_tag(self, call: Call, server_id: str, tag: str) -> Response:
        server = self._server(call, server_id, "delete tag")
        if tag not in server.tags:
            raise ApiError(404, f"Instance {server_id} has no tag '{tag}'")
        server.tags.remove(tag)
        server.touch()
        return Response(204, b"", content_type=None)
