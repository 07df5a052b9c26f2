"""A server's addresses and password sub-resources in the embedded cloud, as Nova 34 answers them.

    GET /v2.1/servers/{id}/ips                  {"addresses": {"private": [{"version": 4, "addr": ...}]}}
    GET /v2.1/servers/{id}/ips/{network}        {"private": [...]}, 404 for a network it is not on
    GET|DELETE /v2.1/servers/{id}/os-server-password

The embedded guests post no encrypted password to the metadata service: the password is "".
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .http import Response
from .service import ApiError, Call

if TYPE_CHECKING:  # pragma: no cover
    from .compute import Compute


class ServerExtras:
    """The routes, answered from the server record and addresses of the embedded Compute."""

    def __init__(self, compute: "Compute") -> None:
        self.compute = compute

    def add_routes(self, add: Callable) -> None:
        add("GET", "/v2.1/servers/{server_id}/ips", self.list_ips)
        add("GET", "/v2.1/servers/{server_id}/ips/{network}", self.show_ips)
        add("GET", "/v2.1/servers/{server_id}/os-server-password", self.show_password)
        add("DELETE", "/v2.1/servers/{server_id}/os-server-password", self.clear_password)

    def _networks(self, call: Call, server_id: str) -> dict[str, list[dict]]:
        """The server's addresses by network, as the ips API shows them: version and address only."""
        addresses = self.compute._addresses(self.compute._server(call, server_id))
        return {label: [{"version": entry["version"], "addr": entry["addr"]} for entry in entries]
                for label, entries in addresses.items()}

    def list_ips(self, call: Call, server_id: str) -> Response:
        return Response.json(200, {"addresses": self._networks(call, server_id)})

    def show_ips(self, call: Call, server_id: str, network: str) -> Response:
        networks = self._networks(call, server_id)
        if network not in networks:
            raise ApiError(404, "Instance is not a member of specified network")
        return Response.json(200, {network: networks[network]})

    def show_password(self, call: Call, server_id: str) -> Response:
        self.compute._server(call, server_id)
        return Response.json(200, {"password": ""})

    def clear_password(self, call: Call, server_id: str) -> Response:
        """Nova writes the cleared password as empty chunks into the system metadata (a later
        snapshot's image shows them as properties)."""
        server = self.compute._server(call, server_id)
        server.system_metadata.update({f"password_{chunk}": "" for chunk in range(4)})
        return Response(204, b"", content_type=None)
