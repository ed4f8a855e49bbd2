"""Studio measures: Real-ESRGAN on ONNX Runtime against eager torch on the same
SRVGGNetCompact-shaped model, tiled against whole, and the composition of three aspects."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from common.bench.inprocess import median_ms, percentile, timed
from common.schemas import Job

_SEED = 11
_LAYOUT_VERSION = 2
ASPECTS = ("1:1", "4:5", "9:16")


def compact_model(cache: Path) -> Path:
    """`realesr-general-x4v3`'s shape (64 features, 32 convs, PReLU) with random weights, as
    `.pth` and as the ONNX file `closet models fetch` would export from it; built once."""
    folder = cache / f"realesrgan-compact-random-v{_LAYOUT_VERSION}"
    onnx = folder / "realesr-general-x4v3.onnx"
    if onnx.is_file():
        return onnx
    import torch

    from common.backends.upscale.arch import SRVGGNetCompact
    from common.backends.upscale.export import export_onnx

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(_SEED)
    model = SRVGGNetCompact(num_feat=64, num_conv=32, upscale=4, act_type="prelu")
    convs = [layer for layer in model.body if isinstance(layer, torch.nn.Conv2d)]
    with torch.no_grad():
        # He initialisation keeps activations at a trained model's scale through 34 layers;
        # PyTorch's default shrinks them layer by layer into denormal floats, which slow a
        # CPU down many times and would make the comparison about denormals, not runtimes.
        for conv in convs:
            torch.nn.init.kaiming_normal_(conv.weight, a=0.25)
            if conv.bias is not None:
                torch.nn.init.zeros_(conv.bias)
        convs[-1].weight.mul_(0.05)  # a small residual over the nearest-neighbour base
    torch.save({"params": model.state_dict()}, folder / "realesr-general-x4v3.pth")
    export_onnx(folder / "realesr-general-x4v3.pth", onnx)
    return onnx


def _photo(side: int) -> np.ndarray:
    rng = np.random.default_rng(_SEED)
    coarse = rng.uniform(0, 255, (side // 8 + 2, side // 8 + 2, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32) / 255.0


def upscale_comparison(onnx: Path, sides: tuple[int, ...], runs: int) -> dict[str, Any]:
    """Output megapixels a second for ONNX Runtime (tiled as served) and eager torch."""
    import torch

    from common.backends.upscale.export import build, load_state_dict
    from common.backends.upscale.realesrgan import RealEsrganUpscale

    served = RealEsrganUpscale(onnx)
    eager = build(load_state_dict(onnx.with_suffix(".pth")))
    rows: list[dict[str, Any]] = []
    for side in sides:
        rgb = _photo(side)
        tensor = torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None]

        def forward(tensor: torch.Tensor = tensor) -> None:
            with torch.inference_mode():
                eager(tensor)

        def serve(rgb: np.ndarray = rgb) -> None:
            served.run(rgb)

        ort_ms = median_ms(timed(serve, runs))
        eager_ms = median_ms(timed(forward, runs))
        megapixels = (side * 4) ** 2 / 1e6
        rows.append(
            {
                "input": f"{side}x{side}",
                "output": f"{side * 4}x{side * 4}",
                "ort_ms": ort_ms,
                "eager_ms": eager_ms,
                "ort_mp_per_s": round(megapixels / (ort_ms / 1000), 2),
                "eager_mp_per_s": round(megapixels / (eager_ms / 1000), 2),
            }
        )
    largest = rows[-1]
    # Tiled against whole: four tiles, cut off-centre (each tile also computes its overlap).
    rgb = _photo(sides[0])
    whole = served.run(rgb, tile=10_000)
    tiled = served.run(rgb, tile=sides[0] // 2 + 3)
    return {
        "model": "SRVGGNetCompact 64x32 (realesr-general-x4v3's shape), random weights",
        "device": served.device,
        "tile": served.tile,
        "overlap": served.pad,
        "rows": rows,
        "ort_mp_per_s": largest["ort_mp_per_s"],
        "speedup_vs_eager": round(float(largest["eager_ms"]) / max(largest["ort_ms"], 1e-3), 2),
        "tiled_max_diff": round(float(np.abs(whole - tiled).max()) * 255, 3),
    }


def subject(size: tuple[int, int]) -> Image.Image:
    """A garment-like cut-out with a soft matte edge that still carries a white background."""
    width, height = size
    alpha = Image.new("L", size, 0)
    corners = [(0.3, 0.05), (0.7, 0.05), (0.95, 0.95), (0.05, 0.95)]
    ImageDraw.Draw(alpha).polygon([(width * x, height * y) for x, y in corners], fill=255)
    alpha = alpha.filter(ImageFilter.GaussianBlur(1.5))
    colour = Image.new("RGB", size, (250, 250, 250))
    colour.paste((120, 40, 60), (0, 0, width, height), alpha.point(lambda a: 255 if a > 200 else 0))
    colour.putalpha(alpha)
    return colour


def compose_timing(runs: int) -> dict[str, Any]:
    """Three aspects at 1080 px wide of a subject prepared at the size they need."""
    from common.backends.backdrop import BackdropRequest
    from common.backends.backdrop.gradient import GradientBackdrop
    from common.studio import compose, palette, required_subject_size, subject_box

    sample = subject((600, 800))
    left, top, right, bottom = subject_box(sample)
    need = required_subject_size(ASPECTS, subject=(right - left, bottom - top))
    scale = need / max(right - left, bottom - top)
    prepared = sample.resize((round(sample.width * scale), round(sample.height * scale)))
    request = BackdropRequest("gradient", None, (1080, 1920), palette(prepared))
    backdrop = GradientBackdrop().render(request)
    backdrop_ms = median_ms(timed(lambda: GradientBackdrop().render(request), runs))

    def three() -> None:
        fresh = prepared.copy()  # what a compose stage gets: the subject once, three frames
        for aspect in ASPECTS:
            compose(fresh, backdrop, aspect)

    return {
        "aspects": list(ASPECTS),
        "subject": f"{prepared.width}x{prepared.height}",
        "three_aspects_ms": median_ms(timed(three, runs)),
        "backdrop_gradient_ms": backdrop_ms,
    }


# What a studio job of the benchmark asks for: three frames, the default (gradient) backdrop,
# no caption (no credentials), from the 4000x3000 photo.
STUDIO_REQUEST = {"aspect": ",".join(ASPECTS)}


def studio_jobs_summary(
    latencies: list[float], jobs: list[Job], growth_mb: dict[str, float], memory_from: int
) -> dict[str, Any]:
    """Studio jobs end to end: latency percentiles, each step's median, memory growth."""
    from common.pipelines import PIPELINES

    steps = PIPELINES["studio"].stages
    rows = [
        {name: float(job.stages[name].ms or 0) for name in steps if name in job.stages}
        for job in jobs
    ]
    last = jobs[-1]
    return {
        "jobs": len(jobs),
        "p50_s": round(statistics.median(latencies), 2),
        "p95_s": round(percentile(latencies, 0.95), 2),
        "latencies_s": [round(v, 2) for v in latencies],
        "stages_ms": {
            name: round(statistics.median(row[name] for row in rows if name in row), 1)
            for name in steps
            if any(name in row for row in rows)
        },
        "ran": {name: last.stages[name].status.value for name in steps if name in last.stages},
        "frames": [item.label for item in last.result.items] if last.result else [],
        "memory_from_job": memory_from,
        "memory_growth_mb": round(max(0.0, *growth_mb.values()), 1),
        "function_growth_mb": {name: round(mb, 1) for name, mb in growth_mb.items()},
    }
