"""rembg sessions on a local ONNX file: u2net and its siblings, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

from PIL import Image, ImageChops

from common.backends.background.base import BackgroundBackend
from common.config import Settings
from common.errors import ConfigurationError

# rembg sessions that cannot be built from `<U2NET_HOME>/<name>.onnx` alone: the custom ones
# need a model_path, sam needs an encoder and a decoder file.
_NOT_SINGLE_FILE = frozenset({"sam", "u2net_custom", "dis_custom", "ben_custom"})


class U2netBackground(BackgroundBackend):
    name = "u2net"

    def __init__(self, session: Any) -> None:
        self._session = session

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        from rembg import new_session
        from rembg.sessions import sessions

        model = settings.u2net_model
        session_class = sessions.get(model)
        if (
            session_class is None
            or model in _NOT_SINGLE_FILE
            or not session_class.is_local()
            or session_class.requires_credentials()
        ):
            local = sorted(
                name
                for name, candidate in sessions.items()
                if name not in _NOT_SINGLE_FILE
                and candidate.is_local()
                and not candidate.requires_credentials()
            )
            raise ConfigurationError(
                f"CLOSET_U2NET_MODEL: {model!r} is not a local rembg model; "
                f"choose one of {', '.join(local)}"
            )

        # rembg reads U2NET_HOME from the environment, not from an argument: point it at the
        # directory our settings name so the file checked below is the file rembg opens.
        if not settings.u2net_home:
            raise ConfigurationError("U2NET_HOME must name the directory holding the weights")
        home = Path(settings.u2net_home)
        os.environ["U2NET_HOME"] = str(home)
        weights = home / f"{model}.onnx"
        # rembg downloads whenever its resolver finds nothing; asking that same resolver first
        # (it accepts `<home>/<model>.onnx` and `<home>/models/<model>/<model>.onnx`) means
        # new_session below can only open a file that is already there.
        if session_class.resolve_existing(weights.name) is None:
            raise ConfigurationError(
                f"u2net weights not found: {weights} (set U2NET_HOME to the directory holding "
                f"{weights.name}; weights are baked into the image, never downloaded)"
            )
        return cls(new_session(model))

    def remove(self, image: Image.Image) -> Image.Image:
        rgb = image.convert("RGB")
        masks: list[Image.Image] = self._session.predict(rgb)
        # Most sessions return one mask; u2net_cloth_seg returns one per garment group.
        alpha = masks[0]
        for mask in masks[1:]:
            alpha = ImageChops.lighter(alpha, mask)
        if alpha.size != rgb.size:
            alpha = alpha.resize(rgb.size, Image.Resampling.LANCZOS)
        cutout = rgb.convert("RGBA")
        cutout.putalpha(alpha.convert("L"))
        return cutout
