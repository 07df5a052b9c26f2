"""Image (placeholder until implemented)."""
from __future__ import annotations

from .service import Service


class Image(Service):
    name = "image"
    prefix = "/image"
    log_name = "glance-api"

    def setup(self) -> None:
        pass
