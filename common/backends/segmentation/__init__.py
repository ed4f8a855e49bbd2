"""Segmentation backends by name."""

from __future__ import annotations

from common.backends import load_class
from common.backends.segmentation.base import GarmentMask, SegmentationBackend
from common.config import Settings

BACKENDS: dict[str, str] = {
    "single": "common.backends.segmentation.single:SingleGarment",
    "segformer": "common.backends.segmentation.segformer:SegformerSegmentation",
}


def new_segmentation(settings: Settings) -> SegmentationBackend:
    name = settings.resolved_segmentation_backend
    cls = load_class("segmentation", BACKENDS, name, SegmentationBackend)
    return cls.from_settings(settings)


__all__ = ["BACKENDS", "GarmentMask", "SegmentationBackend", "new_segmentation"]
