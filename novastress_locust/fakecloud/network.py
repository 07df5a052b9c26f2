"""Network (placeholder until implemented)."""
from __future__ import annotations

from .service import Service


class Network(Service):
    name = "network"
    prefix = "/networking"
    log_name = "neutron-server"

    def setup(self) -> None:
        pass
