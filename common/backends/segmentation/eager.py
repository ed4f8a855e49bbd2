"""The torch runtime for a directory with transformers weights and no `model.onnx`.

For development and for measuring the serving path against: a deployed segment function
serves `model.onnx` and never imports this module (nor torch, nor transformers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self, cast

import numpy as np
import numpy.typing as npt
import torch
from transformers import SegformerForSemanticSegmentation
from transformers.utils import logging as transformers_logging

from common.backends.segmentation.segformer import Logits
from common.errors import ConfigurationError

# A download-style progress bar per load is noise in Cloud Logging.
transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def load_model(path: Path) -> SegformerForSemanticSegmentation:
    try:
        model = SegformerForSemanticSegmentation.from_pretrained(
            path, local_files_only=True, dtype=torch.float32
        )
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot load the segformer model from {path}: {exc}") from exc
    cast(torch.nn.Module, model).eval()  # no dropout; inference_mode handles the grads
    return model


class TorchLogits:
    runtime = "torch"

    def __init__(self, model: SegformerForSemanticSegmentation, threads: int) -> None:
        self.model = model
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    @classmethod
    def from_dir(cls, path: Path, threads: int) -> Self:
        return cls(load_model(path), threads)

    def __call__(self, pixel_values: npt.NDArray[np.float32]) -> Logits:
        with torch.inference_mode():
            logits = self.model(pixel_values=torch.from_numpy(pixel_values)).logits
        return cast(Logits, logits.numpy())

    def warmup(self) -> None:
        self(np.zeros((1, 3, 64, 64), dtype=np.float32))
