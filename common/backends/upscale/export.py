"""A Real-ESRGAN `.pth` state dict to ONNX (build time: imports torch).

The architecture and its sizes are read from the state dict's own keys and shapes, so the
release weights and the tests' tiny models of the same layout go through the same code. Writes
`<name>.onnx` (float32, dynamic height and width), optionally `<name>.fp16.onnx` for the CUDA
provider, and `<name>.json` with what serving needs to tile (scale, receptive field).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.backends.upscale.arch import RRDBNet, SRVGGNetCompact
from common.backends.upscale.realesrgan import FP16_SUFFIX, sidecar
from common.models import ModelFetchError

OPSET = 17


class ExportError(ModelFetchError):
    """The weights are not a Real-ESRGAN state dict this export knows."""


def load_state_dict(pth: Path) -> dict[str, torch.Tensor]:
    """The weights of a release `.pth`: `params_ema` when present (the better one), else
    `params`, else the file itself is the state dict. Tensors only: nothing is unpickled."""
    try:
        loaded = torch.load(pth, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        raise ExportError(f"{pth.name}: not a torch state dict ({exc})") from exc
    if isinstance(loaded, dict):
        for key in ("params_ema", "params"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise ExportError(f"{pth.name}: no state dict of tensors inside")
    return loaded


def build(state: dict[str, torch.Tensor]) -> nn.Module:
    """The architecture the state dict was saved from, with its weights loaded."""
    model: nn.Module
    if "conv_first.weight" in state:
        blocks = {int(m[1]) for key in state if (m := re.match(r"body\.(\d+)\.rdb1\.conv1\.", key))}
        model = RRDBNet(
            num_in_ch=state["conv_first.weight"].shape[1],
            num_out_ch=state["conv_last.weight"].shape[0],
            num_feat=state["conv_first.weight"].shape[0],
            num_block=len(blocks),
            num_grow_ch=state["body.0.rdb1.conv1.weight"].shape[0],
        )
    elif "body.0.weight" in state:
        convs = sorted(
            int(m[1])
            for key in state
            if (m := re.match(r"body\.(\d+)\.weight$", key))
            if state[key].dim() == 4
        )
        last = state[f"body.{convs[-1]}.weight"]
        upscale = math.isqrt(last.shape[0] // state["body.0.weight"].shape[1])
        model = SRVGGNetCompact(
            num_in_ch=state["body.0.weight"].shape[1],
            num_out_ch=last.shape[0] // (upscale * upscale),
            num_feat=state["body.0.weight"].shape[0],
            num_conv=len(convs) - 2,
            upscale=upscale,
            act_type="prelu" if "body.1.weight" in state else "leakyrelu",
        )
    else:
        raise ExportError("the state dict is neither SRVGGNetCompact nor RRDBNet")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"the weights do not fit {type(model).__name__}: {exc}") from exc
    return model.eval()


def export_onnx(pth: Path, onnx: Path, *, fp16: bool = False) -> dict[str, Any]:
    """Write `onnx` (and its fp16 twin and sidecar) from `pth`; returns the sidecar's content."""
    model = build(load_state_dict(pth))
    _export(model, onnx, torch.float32)
    if fp16:
        _export(
            model.half(),
            onnx.with_name(onnx.name.removesuffix(".onnx") + FP16_SUFFIX),
            torch.float16,
        )
    assert isinstance(model, RRDBNet | SRVGGNetCompact)
    meta = {
        "architecture": type(model).__name__,
        "scale": model.upscale,
        "receptive_field": model.receptive_field,
        "parameters": sum(p.numel() for p in model.parameters()),
        "opset": OPSET,
    }
    sidecar(onnx).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _export(model: nn.Module, onnx: Path, dtype: torch.dtype) -> None:
    axes = {2: "height", 3: "width"}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about shapes becoming constants
        torch.onnx.export(
            model,
            (torch.zeros((1, 3, 32, 32), dtype=dtype),),
            str(onnx),
            input_names=["image"],
            output_names=["upscaled"],
            dynamic_axes={"image": axes, "upscaled": axes},
            opset_version=OPSET,
            dynamo=False,  # the dynamo exporter needs onnxscript, not installed
        )
