"""Build step: transformers weights to the serving graph `model.onnx`, optimised once, here.

Needs torch, transformers and onnxruntime; runs when the container image is built, never while
serving. The decode head is rewritten to do the same arithmetic with far fewer operations
(`_FoldedHead`), and the graph is optimised by ONNX Runtime (fusions, constant folding) and
saved, so a starting instance loads it without redoing that work.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, cast

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


class _FoldedHead(torch.nn.Module):
    """The same logits with the decode head's fuse layer folded into its projections.

    The all-MLP head projects each encoder stage to 768 channels, upsamples all four to a
    quarter of the input, concatenates them (3072 channels) and fuses them with a 1x1
    convolution and batch norm: about 60% of the model's multiply-adds, spent at the highest
    resolution. Projection, bilinear upsampling, the fuse convolution and an inference batch
    norm are all linear and upsampling acts on each channel alone, so they commute: each stage
    is projected straight to the fused 768 channels at its own resolution, then upsampled
    and summed. Same function, up to float rounding; a fraction of the work.
    """

    def __init__(self, model: SegformerForSemanticSegmentation) -> None:
        super().__init__()
        self.encoder = model.segformer
        head: Any = model.decode_head
        width = int(head.linear_fuse.out_channels)
        stages = len(head.linear_projections)
        fuse = head.linear_fuse.weight.detach().double()[:, :, 0, 0]
        norm = head.batch_norm
        scale = norm.weight.detach().double() / torch.sqrt(
            norm.running_var.detach().double() + norm.eps
        )
        bias = norm.bias.detach().double() - norm.running_mean.detach().double() * scale
        self.projections = torch.nn.ModuleList()
        for index, mlp in enumerate(head.linear_projections):
            # The head concatenates the stages last first.
            block = stages - 1 - index
            part = fuse[:, block * width : (block + 1) * width]
            weight = scale[:, None] * (part @ mlp.proj.weight.detach().double())
            bias = bias + scale * (part @ mlp.proj.bias.detach().double())
            conv = torch.nn.Conv2d(weight.shape[1], width, kernel_size=1, bias=False)
            conv.weight = torch.nn.Parameter(weight.float()[:, :, None, None])
            self.projections.append(conv)
        self.bias = torch.nn.Parameter(bias.float()[None, :, None, None])
        self.classifier = head.classifier

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        states = self.encoder(pixel_values, output_hidden_states=True).hidden_states
        size = states[0].shape[2:]
        fused = self.projections[0](states[0])
        for state, projection in zip(states[1:], self.projections[1:], strict=True):
            fused = fused + torch.nn.functional.interpolate(
                projection(state), size=size, mode="bilinear", align_corners=False
            )
        return cast(torch.Tensor, self.classifier(torch.relu(fused + self.bias)))


def serving_module(model: SegformerForSemanticSegmentation) -> torch.nn.Module:
    """What is exported: the folded head where the model's layout allows it."""
    if getattr(model.config, "reshape_last_stage", True) is False:
        return _LogitsOnly(model).eval()
    return _FoldedHead(model).eval()


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
            serving_module(model),
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
