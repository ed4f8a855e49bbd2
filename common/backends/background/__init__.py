"""Background backends by name (see rembg's sessions for the model)."""

from __future__ import annotations

from common.backends import load_class
from common.backends.background.base import BackgroundBackend
from common.config import Settings

BACKENDS: dict[str, str] = {
    "classic": "common.backends.background.classic:ClassicBackground",
    "u2net": "common.backends.background.u2net:U2netBackground",
    "space": "common.backends.background.space:SpaceBackground",
    "removebg": "common.backends.background.removebg:RemoveBgBackground",
}


def new_background(settings: Settings) -> BackgroundBackend:
    cls = load_class("background", BACKENDS, settings.background_backend, BackgroundBackend)
    return cls.from_settings(settings)


__all__ = ["BACKENDS", "BackgroundBackend", "new_background"]
