"""Build step: transformers weights to the serving graph `model.onnx`, optimised once, here.

Needs torch, transformers and onnxruntime; runs when the container image is built, never while
serving. The graph is optimised by ONNX Runtime (fusions, constant folding) and saved, so a
starting instance loads it without redoing that work.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import cast

import torch
from transformers import SegformerForSemanticSegmentation

from common.backends.segmentation.eager import load_model
from common.backends.segmentation.segformer import ONNX_FILE, Preprocessing


class _LogitsOnly(torch.nn.Module):
    """The model with a tensor output, as the exporter wants it."""

    def __init__(self, model: SegformerForSemanticSegmentation) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.model(pixel_values=pixel_values).logits)


def export_serving_graph(path: Path, preprocessing: Preprocessing) -> Path:
    """Export the model in `path` at its input size, optimise it, write `path/model.onnx`."""
    import onnxruntime

    model = load_model(path)
    target = path / ONNX_FILE
    raw = path / "model.unoptimised.onnx"
    with warnings.catch_warnings():
        # The legacy exporter warns that it is legacy, and the tracer about a shape check
        # that is constant for a fixed input size.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "Converting a tensor to a Python boolean")
        torch.onnx.export(
            _LogitsOnly(model).eval(),
            (torch.zeros((1, 3, preprocessing.height, preprocessing.width), dtype=torch.float32),),
            str(raw),
            input_names=["pixel_values"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,  # the dynamo exporter needs onnxscript, not installed
        )
    # Extended, not all: the layout transforms of `all` are specific to the building CPU.
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    onnxruntime.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
    raw.unlink()
    return target
