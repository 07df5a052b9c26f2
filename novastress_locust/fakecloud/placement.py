"""Placement (placeholder until implemented)."""
from __future__ import annotations

from .service import Service


class Placement(Service):
    name = "placement"
    prefix = "/placement"
    log_name = "placement-api"

    def setup(self) -> None:
        pass
