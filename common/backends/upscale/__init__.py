"""Upscale backends by name."""

from __future__ import annotations

from common.backends import load_class
from common.backends.upscale.base import Device, UpscaleBackend, target_size
from common.config import Settings

BACKENDS: dict[str, str] = {
    "lanczos": "common.backends.upscale.lanczos:LanczosUpscale",
    "realesrgan": "common.backends.upscale.realesrgan:RealEsrganUpscale",
}


def new_upscale(settings: Settings) -> UpscaleBackend:
    """The configured backend; unset, Real-ESRGAN when its ONNX file is there, else lanczos."""
    cls = load_class("upscale", BACKENDS, settings.resolved_upscale_backend, UpscaleBackend)
    return cls.from_settings(settings)


__all__ = ["BACKENDS", "Device", "UpscaleBackend", "new_upscale", "target_size"]
