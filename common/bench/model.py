"""A SegFormer-B2-sized model with the 18 clothes labels and random weights, in the on-disk
layout of `mattmdjaga/segformer_b2_clothes`: the compute of the real model, no download.

Built once into a cache folder (the transformers weights for the eager comparison, and
`model.onnx` written by the same build step a container image runs).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from common.backends.segmentation.segformer import LABELS, ONNX_FILE

# segformer_b2_clothes: MiT-b2 encoder, 768-wide all-MLP decoder.
B2: dict[str, Any] = {
    "depths": [3, 4, 6, 3],
    "hidden_sizes": [64, 128, 320, 512],
    "num_attention_heads": [1, 2, 5, 8],
    "decoder_hidden_size": 768,
}
# The quick benchmark's stand-in: same graph, a fraction of the width and depth.
TINY: dict[str, Any] = {
    "depths": [1, 1, 1, 1],
    "hidden_sizes": [16, 32, 64, 128],
    "num_attention_heads": [1, 1, 2, 4],
    "decoder_hidden_size": 64,
}
_SEED = 7
_LAYOUT_VERSION = 2  # bump when what is built here changes


def model_dirs(cache: Path, size: str) -> tuple[Path, Path]:
    """(transformers weights only, serving layout with model.onnx) for `size` (b2 or tiny)."""
    root = cache / f"segformer-{size}-random-v{_LAYOUT_VERSION}"
    eager, serving = root / "eager", root / "serving"
    if (serving / ONNX_FILE).is_file() and (eager / "config.json").is_file():
        return eager, serving
    _build(root, B2 if size == "b2" else TINY)
    return eager, serving


def _build(root: Path, shape: dict[str, Any]) -> None:
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from common.backends.segmentation.segformer import export_onnx

    shutil.rmtree(root, ignore_errors=True)
    id2label = dict(enumerate(LABELS))
    config = SegformerConfig(
        id2label=id2label,
        label2id={name: i for i, name in id2label.items()},
        **shape,
    )
    torch.manual_seed(_SEED)
    model = SegformerForSemanticSegmentation(config)
    with torch.no_grad():
        # Random weights, but garments should win somewhere: lift the garment labels a little
        # so that a job finds garments and the label map has real boundaries to upsample.
        bias: Any = model.decode_head.classifier.bias
        for label in (4, 6, 7, 16):
            bias[label] += 0.5
    eager = root / "eager"
    model.save_pretrained(eager)
    (eager / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "do_resize": True,
                "size": {"height": 512, "width": 512},
                "resample": 2,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
                "image_processor_type": "SegformerImageProcessor",
            }
        )
    )
    serving = root / "serving"
    shutil.copytree(eager, serving)
    export_onnx(serving)
    # The deployed layout: configs and model.onnx only, so nothing can fall back to torch.
    for weights in serving.glob("*.safetensors"):
        weights.unlink()
