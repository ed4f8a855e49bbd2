"""The studio's imaging: the subject's box and colours, and the composition of a shot."""

from __future__ import annotations

from common.studio.compose import (
    ASPECTS,
    MARGIN,
    MARGIN_BOTTOM,
    WIDTH,
    Placement,
    compose,
    defringe,
    frame_size,
    place,
    required_subject_size,
    subject_area,
)
from common.studio.subject import RGB, Box, palette, subject_box, trimmed

__all__ = [
    "ASPECTS",
    "MARGIN",
    "MARGIN_BOTTOM",
    "RGB",
    "WIDTH",
    "Box",
    "Placement",
    "compose",
    "defringe",
    "frame_size",
    "palette",
    "place",
    "required_subject_size",
    "subject_area",
    "subject_box",
    "trimmed",
]
