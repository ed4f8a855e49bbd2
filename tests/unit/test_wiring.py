"""The one declaration of pipelines, and imports that run one way: entry point, service,
runtime, handler, ports. No function imports another stage's handler or the dev-stack code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import ConfigurationError
from common.pipelines import HANDLERS, PIPELINES, all_stages
from common.topology import load

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))
# Code a deployed function must never load: the local runner and the emulator harness.
LOCAL_ONLY = ("common.pipeline", "common.devstack", "common.emulators", "common.cli")

PROBE = """
import json, sys, importlib
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("common", "functions")))))
"""


def test_every_stage_of_every_pipeline_has_a_handler_and_a_function() -> None:
    topology = load()
    functions = {spec.name for spec in topology.functions}
    for pipeline in PIPELINES.values():
        assert pipeline.steps[-1].progress == 100
        progress = [step.progress for step in pipeline.steps]
        assert progress == sorted(progress), pipeline.kind
        for stage in pipeline.stages:
            assert stage in HANDLERS and stage in functions
            assert (ROOT / "functions" / stage / "main.py").is_file()
    assert set(FUNCTIONS) == {*all_stages(), "dead_letter", "watchdog", "api"}


def test_a_topology_without_a_function_for_a_declared_stage_fails_at_load(
    tmp_path: Path,
) -> None:
    text = (ROOT / "infra" / "topology.toml").read_text()
    cut = text.replace('name = "tryon_generate"', 'name = "something_else"')
    declaration = tmp_path / "topology.toml"
    declaration.write_text(cut)

    with pytest.raises(ConfigurationError, match="tryon_generate"):
        load(declaration)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_imports_its_own_handler_and_no_local_code(
    function: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        # Clients are built at import; nothing is contacted until a request arrives.
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
        "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
        "GOOGLE_CLOUD_PROJECT": "closet-wiring",
        "CLOSET_LOCAL_ROOT": str(tmp_path),
    }
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, f"functions.{function}.main"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    loaded = set(json.loads(probe.stdout.splitlines()[-1]))

    assert not loaded & set(LOCAL_ONLY)
    handlers = {m for m in loaded if m.startswith("functions.") and m.endswith(".handler")}
    has_handler = function in HANDLERS or (ROOT / "functions" / function / "handler.py").is_file()
    own = {f"functions.{function}.handler"} if has_handler else set()
    assert handlers == own
