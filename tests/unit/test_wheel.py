"""The package as an image installs it: a wheel in a clean virtual environment, one group only.

Each entry point of the functions that need no model group is started with functions-framework
from that environment (not from this checkout) and answers the `closet.warmup` CloudEvent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from common.emulators import free_port
from common.topology import load
from tests.push import WARMUP, post_cloud_event

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
# The functions the cloud-only image serves: the ones whose topology entry names no group.
CLOUD_ONLY = [spec.name for spec in load().all_functions if spec.group is None]
# Client libraries need no credentials against emulator addresses; a warm-up reaches none.
EMULATORS = {
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
    "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
    "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
    "GOOGLE_CLOUD_PROJECT": "wheel-test",
}


def build_wheel(out: Path) -> Path:
    """From the files the Dockerfile copies, so a file left out of the package shows here."""
    source = out / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("common", "functions"):
        shutil.copytree(ROOT / folder, source / folder, symlinks=True, ignore=ignore)
    (source / "infra").mkdir()
    shutil.copy(ROOT / "infra" / "topology.toml", source / "infra" / "topology.toml")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*pip_wheel, "--wheel-dir", str(out / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (out / "dist").glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A clean virtual environment with the wheel and its `cloud` group; returns (venv, wheel)."""
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(work)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-compile", f"{wheel}[cloud]"],
        check=True,
        capture_output=True,
    )
    return venv, wheel


def warm_up(port: int, deadline_s: float = 120.0) -> int:
    """POST the Cloud Scheduler warm-up CloudEvent until the server answers; its status."""
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            return post_cloud_event(
                f"http://127.0.0.1:{port}/",
                WARMUP,
                "//cloudscheduler.googleapis.com/closet-warmup",
                timeout_s=10,
            )
        except OSError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.2)


def test_the_wheel_ships_the_topology_the_functions_read(installed: tuple[Path, Path]) -> None:
    _, wheel = installed
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("common/topology.toml").decode()

    assert shipped == (ROOT / "infra" / "topology.toml").read_text()


def test_only_the_cloud_group_is_installed(installed: tuple[Path, Path]) -> None:
    venv, _ = installed
    modules = ("functions_framework", "google.cloud.firestore", "torch", "rembg", "google.genai")
    script = (
        "import importlib.util, json, sys, common;"
        f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {modules!r}}}));"
        "print(common.__file__)"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=venv,
    )
    found, package = done.stdout.splitlines()

    assert Path(package).is_relative_to(venv), "the package comes from the wheel"
    assert json.loads(found) == {
        "functions_framework": True,
        "google.cloud.firestore": True,
        "torch": False,
        "rembg": False,
        "google.genai": False,
    }


@pytest.mark.parametrize("function", CLOUD_ONLY)
def test_each_entry_point_starts_from_the_wheel_and_answers_a_warm_up(
    installed: tuple[Path, Path], function: str, tmp_path: Path
) -> None:
    venv, _ = installed
    # What the image's /app/main.py is: the installed entry point, re-exported.
    (tmp_path / "main.py").write_text(f"from functions.{function}.main import {function}\n")
    port = free_port()
    environ = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FUNCTION_TARGET": function,
        "FUNCTION_SOURCE": str(tmp_path / "main.py"),
        "FUNCTION_SIGNATURE_TYPE": "cloudevent",
        "PORT": str(port),
        "WORKERS": "1",
        "THREADS": "2",
        **EMULATORS,
    }
    server = subprocess.Popen(
        [str(venv / "bin" / "functions-framework")],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status = warm_up(port)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)

    assert status == 200, output
