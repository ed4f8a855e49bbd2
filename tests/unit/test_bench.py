"""`closet bench --quick` runs every measure and reports every key (no speed is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.bench.report import KEYS, value
from common.cli import main

pytestmark = pytest.mark.slow


def test_the_quick_bench_runs_and_reports_every_key(tmp_path: Path) -> None:
    out, report = tmp_path / "results", tmp_path / "bench.json"

    code = main(
        ["bench", "--quick", "--out", str(out), "--json", str(report), "--cache", str(tmp_path)]
    )

    assert code == 0
    result = json.loads(report.read_text())
    for key in KEYS:
        assert isinstance(value(result, key), int | float), key
    assert result["segment"]["runtime"] == "onnx"
    assert result["cold_start"]["imports_torch"] is False
    assert result["throughput"]["done"] == result["throughput"]["uploads"]
    assert {p.name for p in out.iterdir()} >= {
        "results.md",
        "results.json",
        "waterfall.png",
        "comparisons.png",
        "quality.png",
    }
    table = (out / "results.md").read_text()
    assert all(f"`{key}`" in table for key in KEYS)
