"""Measures taken in this process: the stage breakdown, encoding against the old system's
method, the segmentation serving path against transformers eager, memory growth per stage and
cut-out quality."""

from __future__ import annotations

import base64
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common.backends.background.classic import ClassicBackground
from common.backends.lazy import Backends
from common.backends.segmentation.segformer import SegformerSegmentation
from common.backends.segmentation.single import SingleGarment
from common.bench.photo import unique
from common.bench.scenes import render, specs
from common.config import Settings
from common.pipeline import LocalPipeline
from common.pipelines import PIPELINES
from common.runtime import Stage
from common.schemas import Job, JobStatus, StageMessage
from common.stage import StageOutcome

STAGES = PIPELINES["closet"].stages


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def timed(action: Callable[[], object], runs: int) -> list[float]:
    """Seconds per run of `action`, after one untimed run (lazy initialisation, caches)."""
    action()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def pipeline_settings(model: Path, root: Path) -> Settings:
    """The embedded default with the B2-sized model: classic background, no credentials."""
    return Settings.from_env({}, segformer_path=model, local_root=root)


def local_pipeline(settings: Settings) -> LocalPipeline:
    backends = Backends(settings, generative=None)  # expand is skipped: no credentials
    return LocalPipeline(settings, backends=backends, kinds=("closet",))


def stage_ms(job: Job) -> dict[str, float]:
    """Each stage's own time and the time between stages, from the job document."""
    out: dict[str, float] = {}
    previous_end = None
    for name in STAGES:
        record = job.stages.get(name)
        if record is None or record.started_at is None or record.ended_at is None:
            continue
        out[name] = (record.ended_at - record.started_at).total_seconds() * 1000
        if previous_end is not None:
            out[f"{name}.wait"] = (record.started_at - previous_end).total_seconds() * 1000
        previous_end = record.ended_at
    return out


def percentile(values: list[float], share: float) -> float:
    """The value `share` of the way up the sorted values (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = dict.fromkeys(k for row in rows for k in row)
    return {k: round(statistics.median(row[k] for row in rows if k in row), 1) for k in keys}


def stage_breakdown(pipeline: LocalPipeline, jpeg: bytes, runs: int) -> dict[str, Any]:
    """Median stage times of `runs` jobs of the photo (new bytes each time), in-process."""
    rows = []
    totals = []
    for n in range(runs + 1):
        start = time.perf_counter()
        job = pipeline.process(unique(jpeg, n), "bench.jpg")
        elapsed = time.perf_counter() - start
        if job.status is not JobStatus.DONE:
            raise RuntimeError(f"bench job failed: {job.error}")
        if n:  # the first job pays for lazy initialisation
            rows.append(stage_ms(job))
            totals.append(elapsed)
    return {"stages_ms": medians(rows), "job_ms": median_ms(totals), "runs": runs}


def seed_encode(intermediates: list[Image.Image]) -> None:
    """The old system's optimised encoding: thumbnail, JPEG 85 optimised, base64, 4 threads."""

    def encode(image: Image.Image) -> bytes:
        image = image.copy()
        image.thumbnail((1024, 1024))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=85, optimize=True)
        return base64.b64encode(buffer.getvalue())

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(encode, intermediates))


def encode_comparison(jpeg: bytes, finalize_ms: float, runs: int) -> dict[str, Any]:
    full = Image.open(io.BytesIO(jpeg))
    full.load()
    # Seven full-resolution RGBA intermediates, one per step of the old pipeline.
    intermediates = [full.convert("RGBA") for _ in range(7)]
    seed_ms = median_ms(timed(lambda: seed_encode(intermediates), runs))
    return {
        "seed_ms": seed_ms,
        "finalize_ms": finalize_ms,
        "speedup_vs_seed": round(seed_ms / max(finalize_ms, 1e-3), 1),
        "seed_method": "7 full-resolution RGBA images: thumbnail((1024, 1024)), JPEG 85 "
        "optimize=True, base64, 4 threads",
    }


def working_image(jpeg: bytes, edge: int = 1024) -> Image.Image:
    opened = Image.open(io.BytesIO(jpeg))
    opened.draft("RGB", (edge, edge))
    image = opened.convert("RGB")
    image.thumbnail((edge, edge), Image.Resampling.BOX)
    return image


def eager_label_map(eager_dir: Path) -> Callable[[Image.Image], np.ndarray]:
    """transformers eager fp32, as its documentation runs the model: processor, model,
    bilinear upsampling of the logits, argmax."""
    import torch
    from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

    processor = SegformerImageProcessor.from_pretrained(eager_dir)
    model = SegformerForSemanticSegmentation.from_pretrained(eager_dir, dtype=torch.float32)
    model.eval()  # type: ignore[no-untyped-call]

    def label_map(image: Image.Image) -> np.ndarray:
        with torch.inference_mode():
            inputs = processor(images=image, return_tensors="pt")
            logits = model(**inputs).logits
            upsampled = torch.nn.functional.interpolate(
                logits, size=(image.height, image.width), mode="bilinear", align_corners=False
            )
            return np.asarray(upsampled[0].argmax(dim=0).numpy(), dtype=np.uint8)

    return label_map


def segmentation_comparison(
    eager_dir: Path, serving_dir: Path, image: Image.Image, runs: int
) -> dict[str, Any]:
    serving = SegformerSegmentation.from_settings(Settings.from_env({}, segformer_path=serving_dir))
    eager = eager_label_map(eager_dir)
    ours = serving.label_map(image)
    theirs = eager(image)
    pixel_values = serving.processor(image)
    serving_ms = median_ms(timed(lambda: serving.label_map(image), runs))
    forward_ms = median_ms(timed(lambda: serving.logits(pixel_values), runs))
    eager_ms = median_ms(timed(lambda: eager(image), runs))
    return {
        "runtime": serving.runtime,
        "serving_ms": serving_ms,
        "forward_ms": forward_ms,
        "eager_ms": eager_ms,
        "speedup_vs_eager": round(eager_ms / max(serving_ms, 1e-3), 2),
        "agreement": round(float((ours == theirs).mean()), 5),
        "image": f"{image.width}x{image.height}",
    }


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Measured:
    """A stage that records how much resident memory each of its runs left behind."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.name = stage.name
        self.growth: list[float] = []

    def handle(self, message: StageMessage) -> StageOutcome:
        before = _rss_mb()
        try:
            return self.stage.handle(message)
        finally:
            self.growth.append(_rss_mb() - before)


def memory_growth(pipeline: LocalPipeline, jpeg: bytes, first: int, last: int) -> dict[str, Any]:
    """Resident memory each stage gained between job `first` and job `last`."""
    measured = {name: _Measured(pipeline.stages[name]) for name in STAGES}
    for name, stage in measured.items():
        pipeline.stages[name] = stage
    rss = {}
    for n in range(1, last + 1):
        job = pipeline.process(unique(jpeg, 10_000 + n), "memory.jpg")
        if job.status is not JobStatus.DONE:
            raise RuntimeError(f"bench job failed: {job.error}")
        if n == first:
            rss["first"] = _rss_mb()
            for stage in measured.values():
                stage.growth.clear()
    rss["last"] = _rss_mb()
    per_stage = {name: round(sum(stage.growth), 1) for name, stage in measured.items()}
    return {
        "jobs": [first, last],
        "stage_growth_mb": per_stage,
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
        "max_growth_mb": max(0.0, *per_stage.values()),
    }


def studio_jobs(settings: Settings, jpeg: bytes, jobs: int, memory_from: int) -> dict[str, Any]:
    """The quick run's stand-in for studio jobs on the topology: the same jobs in-process."""
    from common.bench.studio import STUDIO_REQUEST, studio_jobs_summary

    backends = Backends(settings, generative=None)
    pipeline = LocalPipeline(settings, backends=backends, kinds=("studio",))
    latencies, done, before = [], [], 0.0
    for n in range(1, jobs + 1):
        start = time.perf_counter()
        job = pipeline.process(
            unique(jpeg, 70_000 + n), "studio.jpg", folder="studio/", metadata=STUDIO_REQUEST
        )
        latencies.append(time.perf_counter() - start)
        if job.status is not JobStatus.DONE:
            raise RuntimeError(f"bench studio job failed: {job.error}")
        done.append(job)
        if n == memory_from:
            before = _rss_mb()
    return studio_jobs_summary(latencies, done, {"in-process": _rss_mb() - before}, memory_from)


def cutout_quality(quick: bool, min_area: float) -> dict[str, Any]:
    """IoU of the classic cut-out against the true mask, and items found without weights."""
    background, single = ClassicBackground(), SingleGarment()
    rows: list[dict[str, Any]] = []
    for spec in specs(quick):
        scene = render(spec)
        found = np.asarray(background.remove(scene.image).getchannel("A")) >= 128
        iou = float((found & scene.truth).sum() / max(1, (found | scene.truth).sum()))
        items = [g for g in single.segment(scene.image, found) if g.mask.mean() >= min_area]
        rows.append(
            {
                "scene": spec.name,
                "category": spec.category,
                "iou": round(iou, 4),
                "items": len(items),
                "expected_items": scene.items,
            }
        )
    counted = [r for r in rows if r["category"] in ("flatlay", "hole-strap")]
    ious = [float(r["iou"]) for r in rows]
    return {
        "scenes": rows,
        "cutout_iou_median": round(statistics.median(ious), 4),
        "cutout_iou_min": round(min(ious), 4),
        "flatlay_items_right": sum(r["items"] == r["expected_items"] for r in counted),
        "flatlay_scenes": len(counted),
    }


def scratch_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="closet-bench-"))
