"""Compute (placeholder until implemented)."""
from __future__ import annotations

from .service import Service


class Compute(Service):
    name = "compute"
    prefix = "/compute"
    log_name = "nova-api"

    def setup(self) -> None:
        pass
