"""Volume (placeholder until implemented)."""
from __future__ import annotations

from .service import Service


class Volume(Service):
    name = "volume"
    prefix = "/volume"
    log_name = "cinder-volume"

    def setup(self) -> None:
        pass
