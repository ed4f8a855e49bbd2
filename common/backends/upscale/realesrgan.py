"""Real-ESRGAN x4 through ONNX Runtime, tiled: serving imports numpy and onnxruntime, never torch.

The ONNX file comes from `closet models fetch` (the release weights exported by
`common.backends.upscale.export`); beside it, `<model>.json` tells the architecture's scale and
receptive field. Tiles overlap by more than the receptive field, so each output pixel is
computed from exactly the input the whole image would give it: tiled equals whole (to float
rounding) while memory stays that of one tile at any image size.

The alpha does not go through the model (trained on photographs, it would sharpen and invent
texture in a matte): it is resized with Lanczos to the output size. The colour under
transparent and edge pixels is first filled from the subject's interior, so the old background
cannot bleed into the subject's edge through the convolutions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from PIL import Image

from common.backends.upscale.base import UpscaleBackend, target_size
from common.backends.upscale.lanczos import resize_rgba
from common.config import Settings
from common.errors import ConfigurationError
from common.studio.compose import defringe

SCALE = 4
FP16_SUFFIX = ".fp16.onnx"
"""The half-precision export beside the float one, used on the CUDA provider."""
RECEPTIVE_FIELD = {"SRVGGNetCompact": 34, "RRDBNet": 349}
"""Input pixels each output pixel depends on, each side, by architecture (when no sidecar)."""


def sidecar(onnx: Path) -> Path:
    return onnx.with_name(onnx.name.removesuffix(FP16_SUFFIX).removesuffix(".onnx") + ".json")


def _providers(device: str) -> list[Any]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise ConfigurationError(
            "CLOSET_UPSCALE_DEVICE=cuda but ONNX Runtime has no CUDA provider "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or use auto"
        )
    return ["CPUExecutionProvider"]


class RealEsrganUpscale(UpscaleBackend):
    name = "realesrgan"

    def __init__(
        self, onnx: Path, *, tile: int = 512, device: str = "auto", threads: int | None = None
    ) -> None:
        import onnxruntime

        if not onnx.is_file():
            raise ConfigurationError(
                f"the realesrgan upscale backend needs {onnx}; run `closet models fetch "
                "--function upscale` (or unset CLOSET_UPSCALE_BACKEND for lanczos)"
            )
        providers = _providers(device)
        half = onnx.with_name(onnx.name.removesuffix(".onnx") + FP16_SUFFIX)
        path = half if providers[0] == "CUDAExecutionProvider" and half.is_file() else onnx
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:  # else ONNX Runtime's own choice
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        ran = self.session.get_providers()[0]
        self.device = "cuda" if ran == "CUDAExecutionProvider" else "cpu"
        self.model_path = path
        model_input = self.session.get_inputs()[0]
        self._input = model_input.name
        self._dtype = np.float16 if "float16" in model_input.type else np.float32
        meta = json.loads(sidecar(onnx).read_text()) if sidecar(onnx).is_file() else {}
        self.scale = int(meta.get("scale", SCALE))
        architecture = str(meta.get("architecture", "SRVGGNetCompact"))
        receptive = int(meta.get("receptive_field", RECEPTIVE_FIELD.get(architecture, 64)))
        self.tile = tile
        self.pad = receptive + 2  # wider than the receptive field: tiles agree with the whole

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        onnx = settings.upscale_onnx
        if onnx is None:
            raise ConfigurationError(
                "the realesrgan upscale backend needs CLOSET_UPSCALE_DIR (the folder "
                f"`closet models fetch` writes {settings.upscale_model}.onnx to)"
            )
        return cls(
            onnx,
            tile=settings.upscale_tile,
            device=settings.upscale_device,
            threads=settings.model_threads,
        )

    def upscale(self, image: Image.Image, scale: float) -> Image.Image:
        size = target_size(image.size, scale)
        rgba = image.convert("RGBA")
        if scale <= 1:
            return resize_rgba(rgba, size)
        passes = max(1, math.ceil(math.log(scale, self.scale) - 1e-9))
        current = rgba
        for _ in range(passes):
            current = self._x4(current)
        if current.size == size:
            return current
        return resize_rgba(current, size)

    def _x4(self, rgba: Image.Image) -> Image.Image:
        """One pass of the model: colour through it, alpha by Lanczos beside it."""
        alpha = rgba.getchannel("A")
        opaque = alpha.getextrema()[0] == 255
        colour = rgba if opaque else defringe(rgba, fill=self.pad)
        rgb = np.asarray(colour.convert("RGB"), dtype=np.float32) / 255.0
        out = np.empty((rgb.shape[0] * self.scale, rgb.shape[1] * self.scale, 3), np.uint8)
        for where, tile in self._tiles(rgb, self.tile):
            # Bytes tile by tile: no float copy of the whole output.
            out[where] = np.clip(tile * 255.0 + 0.5, 0, 255).astype(np.uint8)
        result = Image.fromarray(out, "RGB")
        big = (rgba.width * self.scale, rgba.height * self.scale)
        result.putalpha(alpha.resize(big, Image.Resampling.LANCZOS))
        return result

    def run(self, rgb: npt.NDArray[np.float32], tile: int | None = None) -> npt.NDArray[np.float32]:
        """The model on an H×W×3 array in 0..1, tile by tile; returns (sH)×(sW)×3 floats."""
        height, width = rgb.shape[:2]
        out = np.empty((height * self.scale, width * self.scale, 3), dtype=np.float32)
        for where, result in self._tiles(rgb, tile or self.tile):
            out[where] = result
        return out

    def _tiles(
        self, rgb: npt.NDArray[np.float32], tile: int
    ) -> Iterator[tuple[tuple[slice, slice], npt.NDArray[np.float32]]]:
        """Each tile's place in the output and the model's output there (H×W×3), computed
        from the tile and `pad` pixels of input around it."""
        height, width = rgb.shape[:2]
        s, pad = self.scale, self.pad
        planar = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=self._dtype)
        for y0 in range(0, height, tile):
            for x0 in range(0, width, tile):
                y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
                ya, xa = max(0, y0 - pad), max(0, x0 - pad)
                yb, xb = min(height, y1 + pad), min(width, x1 + pad)
                patch = planar[None, :, ya:yb, xa:xb]
                result = self.session.run(None, {self._input: patch})[0][0]
                inner = result[:, s * (y0 - ya) : s * (y1 - ya), s * (x0 - xa) : s * (x1 - xa)]
                where = (slice(s * y0, s * y1), slice(s * x0, s * x1))
                yield where, inner.transpose(1, 2, 0).astype(np.float32, copy=False)

    def warmup(self) -> None:
        self.run(np.zeros((16, 16, 3), dtype=np.float32))
