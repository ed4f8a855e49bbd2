"""SegFormer clothes parsing in the `mattmdjaga/segformer_b2_clothes` layout, weights on disk.

The directory holds `config.json` (the labels), an optional `preprocessor_config.json`, and
either `model.onnx` (the serving path: ONNX Runtime, numpy, no torch; `export_onnx` writes it
at build time) or the transformers weights (run by torch, for development).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np
import numpy.typing as npt
from PIL import Image

from common.backends.segmentation.base import GarmentMask, Mask, SegmentationBackend
from common.backends.segmentation.upsample import upsampled_argmax
from common.config import Settings
from common.errors import ConfigurationError
from common.models import MANIFEST

if TYPE_CHECKING:
    import onnxruntime

LabelMap = npt.NDArray[np.integer[Any]]
Logits = npt.NDArray[np.float32]

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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} is not a JSON object")
    return data


def check_labels(config: dict[str, Any], path: Path) -> None:
    """The model's `id2label` must be segformer_b2_clothes' 18 labels."""
    raw = config.get("id2label") or {}
    id2label = {int(k): str(v).strip().lower() for k, v in raw.items()}
    expected = {i: name.lower() for i, name in enumerate(LABELS)}
    if id2label != expected:
        found = ", ".join(f"{k} {v}" for k, v in sorted(id2label.items()))
        raise ConfigurationError(
            f"segformer model in {path} does not have the segformer_b2_clothes labels "
            f"(18 labels, 0 Background .. 17 Scarf); it has: {found}"
        )


def _triple(values: Any) -> tuple[float, float, float]:
    if isinstance(values, int | float):
        return (float(values),) * 3
    first, second, third = (float(v) for v in values)
    return first, second, third


@dataclass(frozen=True)
class Preprocessing:
    """SegformerImageProcessor's steps in numpy: resize, rescale, normalise, channels first."""

    height: int = 512
    width: int = 512
    resize: bool = True
    resample: int = int(Image.Resampling.BILINEAR)
    rescale: float | None = 1 / 255
    mean: tuple[float, float, float] | None = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] | None = (0.229, 0.224, 0.225)

    @classmethod
    def from_dir(cls, path: Path) -> Preprocessing:
        """From `preprocessor_config.json`, or the real model's defaults when there is none."""
        file = path / "preprocessor_config.json"
        if not file.is_file():
            return cls()
        config = _read_json(file)
        size = config.get("size") or {}
        default = cls()
        normalise = bool(config.get("do_normalize", True))
        mean = _triple(config.get("image_mean", default.mean)) if normalise else None
        std = _triple(config.get("image_std", default.std)) if normalise else None
        rescale = float(config.get("rescale_factor", 1 / 255))
        return cls(
            height=int(size.get("height", default.height)),
            width=int(size.get("width", default.width)),
            resize=bool(config.get("do_resize", True)),
            resample=int(config.get("resample", default.resample)),
            rescale=rescale if config.get("do_rescale", True) else None,
            mean=mean,
            std=std,
        )

    def __call__(self, image: Image.Image) -> npt.NDArray[np.float32]:
        """Pixel values (1, 3, H, W) of an RGB image."""
        if self.resize and image.size != (self.width, self.height):
            image = image.resize((self.width, self.height), Image.Resampling(self.resample))
        pixels = np.asarray(image, dtype=np.float32)
        # One fused scale and shift per channel: (x * rescale - mean) / std.
        scale = np.full(3, self.rescale if self.rescale is not None else 1.0, dtype=np.float32)
        shift = np.zeros(3, dtype=np.float32)
        if self.mean is not None and self.std is not None:
            std = np.asarray(self.std, dtype=np.float32)
            scale = scale / std
            shift = -np.asarray(self.mean, dtype=np.float32) / std
        chw = np.ascontiguousarray((pixels * scale + shift).transpose(2, 0, 1))
        return chw[None].astype(np.float32, copy=False)


class LogitsRuntime(Protocol):
    """Pixel values (1, 3, H, W) to logits (1, 18, H/4, W/4)."""

    runtime: str

    def __call__(self, pixel_values: npt.NDArray[np.float32]) -> Logits: ...

    def warmup(self) -> None: ...


class OnnxLogits:
    runtime = "onnx"

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.session = session
        self.input_name = str(session.get_inputs()[0].name)
        shape = session.get_inputs()[0].shape
        # An export may fix the input size; warm up with it, else with a small image.
        self.warmup_shape = tuple(d if isinstance(d, int) else 64 for d in shape)

    def __call__(self, pixel_values: npt.NDArray[np.float32]) -> Logits:
        outputs = self.session.run(None, {self.input_name: pixel_values})
        return np.asarray(outputs[0], dtype=np.float32)

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


def onnx_session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    """A CPU session on `threads` threads; a graph optimised at build time is not redone."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigurationError(f"{path} needs onnxruntime, which is not installed") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
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


def export_onnx(path: Path) -> Path:
    """Write the serving graph `model.onnx` next to the transformers weights in `path`.

    A build step (it needs torch and transformers); serving never calls it.
    """
    from common.backends.segmentation.export import export_serving_graph

    return export_serving_graph(path, Preprocessing.from_dir(path))


def _torch_logits(path: Path, threads: int) -> LogitsRuntime:
    from common.backends.segmentation.eager import TorchLogits

    return TorchLogits.from_dir(path, threads)


class SegformerSegmentation(SegmentationBackend):
    name = "segformer"

    def __init__(self, logits: LogitsRuntime, processor: Preprocessing) -> None:
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
        check_labels(_read_json(path / "config.json"), path)
        processor = Preprocessing.from_dir(path)
        if (path / ONNX_FILE).is_file():
            logits: LogitsRuntime = OnnxLogits(
                onnx_session(path / ONNX_FILE, settings.model_threads)
            )
        else:
            logits = _torch_logits(path, settings.model_threads)
        return cls(logits, processor)

    def label_map(self, image: Image.Image) -> npt.NDArray[np.uint8]:
        """The per-pixel label id of the RGB `image`, at the image's size."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        logits = self.logits(self.processor(rgb))
        return upsampled_argmax(logits[0], rgb.height, rgb.width)

    def segment(self, image: Image.Image, foreground: Mask) -> list[GarmentMask]:
        return garments_from_label_map(self.label_map(image), foreground)

    def warmup(self) -> None:
        self.logits.warmup()
