"""`closet bench`: every measure in one run, then the table, the charts and the JSON."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.bench import inprocess, report, studio
from common.bench.cost import cost
from common.bench.model import model_dirs
from common.bench.photo import unique, upload_photo

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "closet-bench"


@dataclass(frozen=True)
class Plan:
    """How much of everything: the full run, or the quick one that only proves it all works."""

    quick: bool
    model: str  # b2 or tiny
    stage_runs: int
    timing_runs: int
    cold_starts: int
    memory_jobs: tuple[int, int]
    sequential: int
    concurrent: int
    on_emulators: bool
    photo: tuple[int, int]
    upscale_sides: tuple[int, ...]
    """Input sides of the upscale comparison (x4 each): the issue's 256 and 512 in full."""
    studio_jobs: tuple[int, int]
    """Studio jobs one after another, and the job after which their memory is first read."""

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, "tiny", 1, 1, 1, (2, 4), 2, 2, False, (1600, 1200), (64,), (3, 1))
        return cls(
            False, "b2", 10, 5, 3, (50, 250), 20, 50, True, (4000, 3000), (256, 512), (100, 10)
        )


Progress = Callable[[str], None]


def run(
    quick: bool, out: Path, json_path: Path | None, cache: Path, say: Progress
) -> dict[str, Any]:
    plan = Plan.of(quick)
    say(f"models and photo (cached in {cache})")
    eager_dir, serving_dir = model_dirs(cache, plan.model)
    jpeg = upload_photo(cache, *plan.photo)
    root = inprocess.scratch_root()
    try:
        result = _measure(plan, eager_dir, serving_dir, jpeg, root, say, cache)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["written"] = [str(p) for p in report.write(result, out, json_path)]
    return result


def _measure(
    plan: Plan,
    eager_dir: Path,
    serving_dir: Path,
    jpeg: bytes,
    root: Path,
    say: Progress,
    cache: Path,
) -> dict[str, Any]:
    from common.bench import topology

    result: dict[str, Any] = {
        "quick": plan.quick,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "model": "SegFormer-B2-sized, random weights, 18 labels"
        if plan.model == "b2"
        else "tiny SegFormer (quick run), random weights, 18 labels",
        "photo": f"{plan.photo[0]}x{plan.photo[1]}, {len(jpeg) / 1e6:.1f} MB",
    }
    settings = inprocess.pipeline_settings(serving_dir, root / "blobs")
    pipeline = inprocess.local_pipeline(settings)

    say("stage breakdown, in-process")
    stages = inprocess.stage_breakdown(pipeline, jpeg, plan.stage_runs)
    result["stages"] = stages
    finalize_ms = stages["stages_ms"]["finalize"]

    say("encoding against the old method")
    result["encode"] = inprocess.encode_comparison(jpeg, finalize_ms, plan.timing_runs)

    say("segmentation: serving path against transformers eager")
    image = inprocess.working_image(jpeg)
    segment = inprocess.segmentation_comparison(eager_dir, serving_dir, image, plan.timing_runs)
    segment["stage_ms"] = stages["stages_ms"]["segment"]
    result["segment"] = segment

    say("cold start of the segment function")
    result["cold_start"] = topology.cold_start(serving_dir, plan.cold_starts)

    first, last = plan.memory_jobs
    say(f"memory: jobs {first} to {last}, in-process")
    result["memory"] = inprocess.memory_growth(pipeline, jpeg, first, last)

    say("cut-out quality on generated scenes")
    result["quality"] = inprocess.cutout_quality(plan.quick, settings.min_garment_area)

    say("studio: Real-ESRGAN on ONNX Runtime against eager torch, tiled against whole")
    result["upscale"] = studio.upscale_comparison(
        studio.compact_model(cache), plan.upscale_sides, plan.timing_runs
    )
    say("studio: composing three aspects")
    result["compose"] = studio.compose_timing(max(3, plan.timing_runs))

    studio_jobs, memory_from = plan.studio_jobs
    if plan.on_emulators:
        say(f"end to end on the emulators: {plan.sequential} uploads, then {plan.concurrent}")
        with topology.running_stack(serving_dir) as stack:
            measured = topology.end_to_end(stack, jpeg, plan.sequential, plan.concurrent)
            say(f"studio jobs on the emulators: {studio_jobs} one after another")
            measured["studio"] = topology.studio_jobs(stack, jpeg, studio_jobs, memory_from)
        measured["e2e"]["topology"] = "the emulator topology (closet dev)"
        measured["studio"]["topology"] = measured["e2e"]["topology"]
    else:
        say("end to end, in-process (quick: no emulators)")
        measured = _in_process_end_to_end(pipeline, jpeg, plan.sequential, plan.concurrent)
        say(f"studio jobs in-process: {studio_jobs}")
        measured["studio"] = inprocess.studio_jobs(settings, jpeg, studio_jobs, memory_from)
        measured["studio"]["topology"] = "in-process (quick run)"
    result |= measured
    result["cost"] = cost(result["e2e"]["stages_ms"])
    missing = report.missing_keys(result)
    if missing:
        raise RuntimeError(f"the benchmark did not measure {', '.join(missing)}")
    result["targets_hold"] = report.verdicts(result)
    return result


def _in_process_end_to_end(
    pipeline: Any, jpeg: bytes, sequential: int, concurrent: int
) -> dict[str, Any]:
    """The quick run's stand-in for the topology: the same jobs through the local runner."""
    latencies, overheads, rows = [], [], []
    for n in range(sequential):
        start = time.perf_counter()
        job = pipeline.process(unique(jpeg, 50_000 + n), "e2e.jpg")
        latency = time.perf_counter() - start
        compute = sum((r.ms or 0) for r in job.stages.values()) / 1000
        latencies.append(latency)
        overheads.append(latency - compute)
        rows.append(inprocess.stage_ms(job))
    start = time.perf_counter()
    for n in range(concurrent):
        pipeline.process(unique(jpeg, 60_000 + n), "throughput.jpg")
    minutes = (time.perf_counter() - start) / 60
    return {
        "e2e": {
            "topology": "in-process (quick run)",
            "uploads": sequential,
            "p50_s": round(statistics.median(latencies), 2),
            "p95_s": round(max(latencies), 2),
            "overhead_ms": round(statistics.median(overheads) * 1000, 1),
            "latencies_s": [round(v, 2) for v in latencies],
            "stages_ms": inprocess.medians(rows),
        },
        "throughput": {
            "uploads": concurrent,
            "done": concurrent,
            "seconds": round(minutes * 60, 1),
            "jobs_per_min": round(concurrent / minutes, 1),
        },
    }


def command(args: Any) -> int:
    """`closet bench`: prints the table; the files are under `--out`."""
    out = args.out or Path("bench/results/quick" if args.quick else "bench/results")
    started = time.monotonic()

    def say(step: str) -> None:
        elapsed = time.monotonic() - started
        print(f"closet bench [{elapsed:6.1f} s]: {step}", file=sys.stderr, flush=True)

    result = run(args.quick, out, args.json, args.cache or DEFAULT_CACHE, say)
    print((out / "results.md").read_text(), end="")
    say("wrote " + ", ".join(result["written"]))
    return 0
