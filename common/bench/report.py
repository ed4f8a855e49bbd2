"""The benchmark's outputs: the JSON, a Markdown table with each target, and PNG charts."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.bench.inprocess import STAGES

# The keys every run reports (`--json`), as dotted paths into the result.
KEYS: tuple[str, ...] = (
    "encode.speedup_vs_seed",
    "segment.stage_ms",
    "segment.speedup_vs_eager",
    "segment.agreement",
    "cold_start.segment_s",
    "e2e.p50_s",
    "e2e.p95_s",
    "e2e.overhead_ms",
    "throughput.jobs_per_min",
    "memory.max_growth_mb",
    "quality.cutout_iou_median",
    "quality.cutout_iou_min",
    "quality.flatlay_items_right",
    "upscale.ort_mp_per_s",
    "upscale.speedup_vs_eager",
    "upscale.tiled_max_diff",
    "compose.three_aspects_ms",
    "studio.p50_s",
    "studio.memory_growth_mb",
    "cost.usd_per_1000_images",
)


@dataclass(frozen=True)
class Target:
    key: str
    compare: Callable[[float, float], bool]
    bound: float
    says: str


TARGETS: tuple[Target, ...] = (
    Target("encode.speedup_vs_seed", operator.ge, 10, "≥ 10"),
    Target("segment.stage_ms", operator.le, 700, "≤ 700"),
    Target("segment.speedup_vs_eager", operator.ge, 3, "≥ 3"),
    Target("segment.agreement", operator.ge, 0.995, "≥ 0.995"),
    Target("cold_start.segment_s", operator.le, 3, "≤ 3"),
    Target("e2e.p50_s", operator.le, 1.5, "≤ 1.5"),
    Target("e2e.p95_s", operator.le, 2.5, "≤ 2.5"),
    Target("e2e.overhead_ms", operator.le, 400, "≤ 400"),
    Target("memory.max_growth_mb", operator.le, 50, "≤ 50"),
    Target("quality.cutout_iou_median", operator.ge, 0.95, "≥ 0.95"),
    Target("quality.cutout_iou_min", operator.ge, 0.90, "≥ 0.90"),
    Target("upscale.ort_mp_per_s", operator.ge, 1.5, "≥ 1.5"),
    Target("upscale.speedup_vs_eager", operator.ge, 1.5, "≥ 1.5"),
    Target("upscale.tiled_max_diff", operator.le, 1.0, "≤ 1 (of 255)"),
    Target("compose.three_aspects_ms", operator.le, 150, "≤ 150"),
    Target("studio.p50_s", operator.le, 2.5, "≤ 2.5 (the old service: 30)"),
    Target("studio.memory_growth_mb", operator.le, 50, "≤ 50"),
)


def value(result: dict[str, Any], key: str) -> Any:
    node: Any = result
    for part in key.split("."):
        node = node[part]
    return node


def missing_keys(result: dict[str, Any]) -> list[str]:
    out = []
    for key in KEYS:
        try:
            value(result, key)
        except (KeyError, TypeError):
            out.append(key)
    return out


def verdicts(result: dict[str, Any]) -> dict[str, bool]:
    out = {t.key: bool(t.compare(float(value(result, t.key)), t.bound)) for t in TARGETS}
    quality = result["quality"]
    out["quality.flatlay_items_right"] = quality["flatlay_items_right"] == quality["flatlay_scenes"]
    return out


def markdown(result: dict[str, Any]) -> str:
    held = verdicts(result)
    targets = {t.key: t.says for t in TARGETS}
    quality = result["quality"]
    targets["quality.flatlay_items_right"] = (
        f"{quality['flatlay_scenes']} of {quality['flatlay_scenes']}"
    )
    lines = [
        f"`closet bench{' --quick' if result['quick'] else ''}` on {result['machine']}, "
        f"{result['date']}; medians over repeated runs.",
        "",
        "| measure | value | target | holds |",
        "|---|---|---|---|",
    ]
    for key in KEYS:
        mark = "" if key not in held else ("yes" if held[key] else "**no**")
        lines.append(f"| `{key}` | {value(result, key)} | {targets.get(key, '')} | {mark} |")
    lines += ["", "| stage (in-process, ms) | median |", "|---|---|"]
    for name, ms in result["stages"]["stages_ms"].items():
        lines.append(f"| {name} | {ms} |")
    e2e = result["e2e"]
    lines += [
        "",
        f"End to end on {e2e['topology']}: {e2e['uploads']} sequential uploads of the "
        f"{result['photo']} JPEG; throughput: {result['throughput']['uploads']} at once.",
        "",
        f"Encoding: the old method {result['encode']['seed_ms']} ms "
        f"({result['encode']['seed_method']}), our finalize {result['encode']['finalize_ms']} ms.",
        "",
        f"Segmentation ({result['segment']['image']}): serving path "
        f"({result['segment']['runtime']}) {result['segment']['serving_ms']} ms, of which the "
        f"forward pass {result['segment']['forward_ms']} ms; transformers eager fp32 "
        f"{result['segment']['eager_ms']} ms.",
        "",
        f"Cost: ${result['cost']['usd_per_1000_images']} per 1000 images against "
        f"${result['cost']['seed_usd_per_1000_images']} for the old system. Assumptions:",
        "",
    ]
    lines += [f"- {a}" for a in result["cost"]["assumptions"]]
    upscale = result["upscale"]
    lines += [
        "",
        f"Upscale x4 ({upscale['model']}; ONNX Runtime on {upscale['device']}, tiles of "
        f"{upscale['tile']} px overlapping by {upscale['overlap']}; eager torch fp32 whole):",
        "",
        "| input | output | ONNX Runtime ms | MP/s | eager torch ms | MP/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in upscale["rows"]:
        lines.append(
            f"| {row['input']} | {row['output']} | {row['ort_ms']} | {row['ort_mp_per_s']} | "
            f"{row['eager_ms']} | {row['eager_mp_per_s']} |"
        )
    compose = result["compose"]
    lines += [
        "",
        f"Compose: {', '.join(compose['aspects'])} at 1080 px wide from a "
        f"{compose['subject']} cut-out, {compose['three_aspects_ms']} ms together (the gradient "
        f"backdrop itself {compose['backdrop_gradient_ms']} ms).",
    ]
    studio = result["studio"]
    lines += [
        "",
        f"Studio jobs on {studio['topology']}: {studio['jobs']} one after another from the "
        f"{result['photo']} JPEG to {', '.join(studio['frames'])} at 1080 px wide (gradient "
        f"backdrop, no caption): p50 {studio['p50_s']} s, p95 {studio['p95_s']} s, against "
        "30 s a picture for the old service on a V100. Memory growth per function from job "
        f"{studio['memory_from_job']} on: "
        + ", ".join(f"{k} {v} MB" for k, v in studio["function_growth_mb"].items())
        + ".",
        "",
        "| studio step | median ms | last job |",
        "|---|---|---|",
    ]
    for name, ms in studio["stages_ms"].items():
        lines.append(f"| {name} | {ms} | {studio['ran'].get(name, '')} |")
    lines += ["", "| scene | category | IoU | items (expected) |", "|---|---|---|---|"]
    for row in quality["scenes"]:
        lines.append(
            f"| {row['scene']} | {row['category']} | {row['iou']} | "
            f"{row['items']} ({row['expected_items']}) |"
        )
    return "\n".join(lines) + "\n"


def charts(result: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    # The stage waterfall of one job: each stage after the wait before it.
    timeline = result["e2e"]["stages_ms"]
    fig, ax = plt.subplots(figsize=(8, 3))
    clock = 0.0
    for row, stage in enumerate(STAGES):
        wait = timeline.get(f"{stage}.wait", 0.0)
        ms = timeline.get(stage, 0.0)
        if wait:
            ax.barh(row, wait, left=clock, color="#cccccc")
        ax.barh(row, ms, left=clock + wait, color="#3b6ea5")
        ax.text(clock + wait + ms + 5, row, f"{ms:.0f} ms", va="center", fontsize=8)
        clock += wait + ms
    ax.set_yticks(range(len(STAGES)), STAGES)
    ax.invert_yaxis()
    ax.set_xlabel("ms since the job started (grey: between stages)")
    ax.set_title(f"One job, stage by stage ({result['e2e']['topology']})")
    fig.tight_layout()
    written.append(_save(fig, folder / "waterfall.png"))

    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    pairs = [
        ("encoding, ms", result["encode"]["seed_ms"], result["encode"]["finalize_ms"], "old"),
        (
            "segmentation, ms",
            result["segment"]["eager_ms"],
            result["segment"]["serving_ms"],
            "eager",
        ),
    ]
    for ax, (title, theirs, ours, label) in zip(axes, pairs, strict=False):
        ax.bar([label, "ours"], [theirs, ours], color=["#b0b0b0", "#3b6ea5"])
        ax.set_title(title)
    latencies = result["e2e"]["latencies_s"]
    axes[2].plot(range(1, len(latencies) + 1), latencies, marker="o", color="#3b6ea5")
    axes[2].set_title("end to end per upload, s")
    axes[2].set_ylim(bottom=0)
    fig.tight_layout()
    written.append(_save(fig, folder / "comparisons.png"))

    scenes = result["quality"]["scenes"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.barh([s["scene"] for s in scenes], [s["iou"] for s in scenes], color="#3b6ea5")
    ax.axvline(0.95, color="#aa3333", linestyle="--", linewidth=1)
    ax.set_xlim(0.8, 1.0)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("cut-out IoU against the true mask")
    fig.tight_layout()
    written.append(_save(fig, folder / "quality.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write(result: dict[str, Any], folder: Path, json_path: Path | None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "results.md"
    table.write_text(markdown(result))
    written = [table, *charts(result, folder)]
    data = json.dumps(result, indent=2) + "\n"
    (folder / "results.json").write_text(data)
    written.append(folder / "results.json")
    if json_path is not None:
        json_path.write_text(data)
        written.append(json_path)
    return written
