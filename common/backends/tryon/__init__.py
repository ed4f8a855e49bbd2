"""Try-on backends by name."""

from __future__ import annotations

from common.backends import load_class
from common.backends.tryon.base import CATEGORIES, Progress, TryonBackend, TryonRequest
from common.config import Settings

BACKENDS: dict[str, str] = {
    "overlay": "common.backends.tryon.overlay:OverlayTryon",
    "fashn": "common.backends.tryon.fashn:FashnTryon",
    "vertex": "common.backends.tryon.vertex:VertexTryon",
    "gemini": "common.backends.tryon.gemini:GeminiTryon",
    "space": "common.backends.tryon.space:SpaceTryon",
}


def tryon_class(settings: Settings) -> type[TryonBackend]:
    """The configured backend's class: what it wants (sizes, backdrop) without a client."""
    return load_class("try-on", BACKENDS, settings.tryon_backend, TryonBackend)


def new_tryon(settings: Settings) -> TryonBackend:
    return tryon_class(settings).from_settings(settings)


__all__ = [
    "BACKENDS",
    "CATEGORIES",
    "Progress",
    "TryonBackend",
    "TryonRequest",
    "new_tryon",
    "tryon_class",
]
