"""Backdrop backends by name, and the rule that a generative backdrop falls back to `gradient`."""

from __future__ import annotations

import logging

from common.backends import load_class
from common.backends.backdrop.base import (
    STYLES,
    Backdrop,
    BackdropBackend,
    BackdropRequest,
    Style,
    backdrop_prompt,
    cover,
)
from common.backends.backdrop.gradient import GradientBackdrop
from common.config import Settings
from common.errors import ClosetError

BACKENDS: dict[str, str] = {
    "gradient": "common.backends.backdrop.gradient:GradientBackdrop",
    "gemini": "common.backends.backdrop.gemini:GeminiBackdrop",
    "imagen": "common.backends.backdrop.imagen:ImagenBackdrop",
    "space": "common.backends.backdrop.space:SpaceBackdrop",
}

_log = logging.getLogger("closet.backdrop")


def new_backdrop(settings: Settings) -> BackdropBackend:
    cls = load_class("backdrop", BACKENDS, settings.backdrop_backend, BackdropBackend)
    return cls.from_settings(settings)


def render_with_fallback(
    backend: BackdropBackend, request: BackdropRequest, *, retry_transient: bool = False
) -> Backdrop:
    """The backend's backdrop; when it refuses or fails, the `gradient` one and why.

    A plain white sweep is always drawn procedurally: no model does it better. With
    `retry_transient`, a transient failure (429, 5xx, time-out) raises instead, so a delivery
    with attempts left is retried before the job settles for the fallback.
    """
    procedural = GradientBackdrop()
    if isinstance(backend, GradientBackdrop) or request.style == "white":
        return Backdrop(procedural.render(request), procedural.name)
    try:
        image = backend.render(request)
        if image.size != request.size or image.mode != "RGB":
            image = cover(image, request.size)
        return Backdrop(image, backend.name)
    except ClosetError as exc:
        if exc.retryable and retry_transient:
            raise
        reason = f"{backend.name} backdrop {_verb(exc)}: {exc.message}"
    except Exception as exc:  # a broken answer must not fail the job: the gradient is fine
        _log.exception("backdrop backend %s crashed", backend.name)
        reason = f"{backend.name} backdrop failed: {type(exc).__name__}: {exc}"
    return Backdrop(procedural.render(request), procedural.name, fallback=reason)


def _verb(exc: ClosetError) -> str:
    return "refused" if exc.code == "backend_refused" else "failed"


__all__ = [
    "BACKENDS",
    "STYLES",
    "Backdrop",
    "BackdropBackend",
    "BackdropRequest",
    "Style",
    "backdrop_prompt",
    "new_backdrop",
    "render_with_fallback",
]
