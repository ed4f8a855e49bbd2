"""SegFormer clothes parsing in the `mattmdjaga/segformer_b2_clothes` layout, weights on disk.

The directory holds `config.json` (the labels), an optional `preprocessor_config.json`, and
either `model.onnx` (run by ONNX Runtime, about three times faster on CPU; `export_onnx` writes
it) or the transformers weights (run by torch).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, cast

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from transformers import (
    SegformerConfig,
    SegformerForSemanticSegmentation,
    SegformerImageProcessorPil,
)
from transformers.utils import logging as transformers_logging

from common.backends.segmentation.base import GarmentMask, Mask, SegmentationBackend
from common.config import Settings
from common.errors import ConfigurationError
from common.models import MANIFEST

# A download-style progress bar per load is noise in Cloud Logging.
transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

if TYPE_CHECKING:
    import onnxruntime

LabelMap = npt.NDArray[np.integer[Any]]

# The 18 labels of segformer_b2_clothes, in id order.
LABELS: tuple[str, ...] = (
    "Background",
    "Hat",
    "Hair",
    "Sunglasses",
    "Upper-clothes",
    "Skirt",
    "Pants",
    "Dress",
    "Belt",
    "Left-shoe",
    "Right-shoe",
    "Face",
    "Left-leg",
    "Right-leg",
    "Left-arm",
    "Right-arm",
    "Bag",
    "Scarf",
)

# Item label -> the label ids it covers; left and right shoe are one item.
GARMENTS: dict[str, tuple[int, ...]] = {
    "hat": (1,),
    "sunglasses": (3,),
    "upper-clothes": (4,),
    "skirt": (5,),
    "pants": (6,),
    "dress": (7,),
    "belt": (8,),
    "shoes": (9, 10),
    "bag": (16,),
    "scarf": (17,),
}

ONNX_FILE = "model.onnx"
_WEIGHT_FILES = (
    ONNX_FILE,
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def garments_from_label_map(label_map: LabelMap, foreground: Mask) -> list[GarmentMask]:
    """One mask per garment present inside `foreground`, largest first."""
    if label_map.shape != foreground.shape:
        raise ValueError(
            f"label map {label_map.shape} and foreground {foreground.shape} differ in shape"
        )
    # Count once, then build masks only for the labels that are present.
    counts = np.bincount(label_map[foreground].ravel(), minlength=len(LABELS))
    areas = {item: int(counts[list(ids)].sum()) for item, ids in GARMENTS.items()}
    present = [item for item in GARMENTS if areas[item] > 0]
    present.sort(key=lambda item: areas[item], reverse=True)  # stable: ties keep label order
    garments = []
    for item in present:
        ids = GARMENTS[item]
        mask = label_map == ids[0] if len(ids) == 1 else np.isin(label_map, ids)
        mask &= foreground
        garments.append(GarmentMask(label=item, mask=mask))
    return garments


def _check_labels(config: SegformerConfig, path: Path) -> None:
    id2label = {int(k): str(v).strip().lower() for k, v in (config.id2label or {}).items()}
    expected = {i: name.lower() for i, name in enumerate(LABELS)}
    if id2label != expected:
        found = ", ".join(f"{k} {v}" for k, v in sorted(id2label.items()))
        raise ConfigurationError(
            f"segformer model in {path} does not have the segformer_b2_clothes labels "
            f"(18 labels, 0 Background .. 17 Scarf); it has: {found}"
        )


def _available_cpus() -> int:
    # Both runtimes size their pools from the host's cores; a container may be allowed fewer.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _Logits(Protocol):
    """Pixel values (1, 3, H, W) to logits (1, 18, H/4, W/4)."""

    runtime: str

    def __call__(self, pixel_values: npt.NDArray[np.float32]) -> torch.Tensor: ...

    def warmup(self) -> None: ...


class _TorchLogits:
    runtime = "torch"

    def __init__(self, model: SegformerForSemanticSegmentation) -> None:
        cast(torch.nn.Module, model).eval()  # no dropout; inference_mode handles the grads
        self.model = model
        if torch.get_num_threads() > _available_cpus():
            torch.set_num_threads(_available_cpus())

    def __call__(self, pixel_values: npt.NDArray[np.float32]) -> torch.Tensor:
        with torch.inference_mode():
            return cast(
                torch.Tensor, self.model(pixel_values=torch.from_numpy(pixel_values)).logits
            )

    def warmup(self) -> None:
        self(np.zeros((1, 3, 64, 64), dtype=np.float32))


class _OnnxLogits:
    runtime = "onnx"

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.session = session
        self.input_name = str(session.get_inputs()[0].name)
        shape = session.get_inputs()[0].shape
        # An export may fix the input size; warm up with it, else with a small image.
        self.warmup_shape = tuple(d if isinstance(d, int) else 64 for d in shape)

    def __call__(self, pixel_values: npt.NDArray[np.float32]) -> torch.Tensor:
        outputs = self.session.run(None, {self.input_name: pixel_values})
        return torch.from_numpy(np.asarray(outputs[0], dtype=np.float32))

    def warmup(self) -> None:
        self(np.zeros((1, 3, *self.warmup_shape[2:]), dtype=np.float32))


def _is_optimized(onnx_path: Path) -> bool:
    """True when the manifest `closet models fetch` wrote says the graph is saved optimised."""
    manifest = onnx_path.parent / MANIFEST
    try:
        saved = json.loads(manifest.read_text()).get("onnx", {})
    except (OSError, ValueError, AttributeError):
        return False
    return (
        isinstance(saved, dict) and saved.get("file") == onnx_path.name and "optimization" in saved
    )


def _onnx_session(path: Path) -> onnxruntime.InferenceSession:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigurationError(f"{path} needs onnxruntime, which is not installed") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _available_cpus()
    # `closet models fetch` saves the graph already optimised: redoing it costs every start.
    options.graph_optimization_level = (
        onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        if _is_optimized(path)
        else onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors derive from Exception only
        raise ConfigurationError(f"cannot load the segformer ONNX model {path}: {exc}") from exc


def _processor(path: Path) -> SegformerImageProcessorPil:
    if (path / "preprocessor_config.json").is_file():
        return SegformerImageProcessorPil.from_pretrained(path, local_files_only=True)
    # The real model's preprocessing: 512x512, ImageNet mean and std.
    return SegformerImageProcessorPil()


class _LogitsOnly(torch.nn.Module):
    """The model with a tensor output, as the exporter wants it."""

    def __init__(self, model: SegformerForSemanticSegmentation) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.model(pixel_values=pixel_values).logits)


def export_onnx(path: Path) -> Path:
    """Write `model.onnx` next to the transformers weights in `path` (a build step, not serving)."""
    model = SegformerForSemanticSegmentation.from_pretrained(
        path, local_files_only=True, dtype=torch.float32
    )
    cast(torch.nn.Module, model).eval()
    size = _processor(path).size

    target = path / ONNX_FILE
    with warnings.catch_warnings():
        # The legacy exporter warns that it is legacy, and the tracer about a shape check
        # that is constant for a fixed input size.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "Converting a tensor to a Python boolean")
        torch.onnx.export(
            _LogitsOnly(model).eval(),
            (torch.zeros((1, 3, size["height"], size["width"]), dtype=torch.float32),),
            str(target),
            input_names=["pixel_values"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,  # the dynamo exporter needs onnxscript, not installed
        )
    return target


class SegformerSegmentation(SegmentationBackend):
    name = "segformer"

    def __init__(self, logits: _Logits, processor: SegformerImageProcessorPil) -> None:
        self.logits = logits
        self.processor = processor

    @property
    def runtime(self) -> str:
        return self.logits.runtime

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        path = settings.segformer_path
        if path is None:
            raise ConfigurationError("segformer backend needs CLOSET_SEGFORMER_PATH")
        if not path.is_dir():
            raise ConfigurationError(f"segformer model directory not found: {path}")
        if not (path / "config.json").is_file():
            raise ConfigurationError(f"segformer model config not found: {path / 'config.json'}")
        if not any((path / name).is_file() for name in _WEIGHT_FILES):
            raise ConfigurationError(
                f"segformer weights not found in {path}: expected {' or '.join(_WEIGHT_FILES)}"
            )
        try:
            config = SegformerConfig.from_pretrained(path, local_files_only=True)
            _check_labels(config, path)
            processor = _processor(path)
            if (path / ONNX_FILE).is_file():
                logits: _Logits = _OnnxLogits(_onnx_session(path / ONNX_FILE))
            else:
                model = SegformerForSemanticSegmentation.from_pretrained(
                    path, config=config, local_files_only=True, dtype=torch.float32
                )
                logits = _TorchLogits(model)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot load the segformer model from {path}: {exc}") from exc
        return cls(logits, processor)

    def label_map(self, image: Image.Image) -> npt.NDArray[np.uint8]:
        """The per-pixel label id of the RGB `image`, at the image's size."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        inputs = self.processor(images=rgb, return_tensors="np")
        pixel_values = np.asarray(inputs["pixel_values"], dtype=np.float32)
        logits = self.logits(pixel_values)
        with torch.inference_mode():
            upsampled = torch.nn.functional.interpolate(
                logits, size=(rgb.height, rgb.width), mode="bilinear", align_corners=False
            )
            labels = upsampled[0].argmax(dim=0).to(torch.uint8)
        return cast(npt.NDArray[np.uint8], labels.numpy())

    def segment(self, image: Image.Image, foreground: Mask) -> list[GarmentMask]:
        return garments_from_label_map(self.label_map(image), foreground)

    def warmup(self) -> None:
        self.logits.warmup()
