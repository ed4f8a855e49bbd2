"""`closet run`, driven as a user would: a real process, real files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests import badinputs

REPO = Path(__file__).resolve().parents[2]


def closet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CLOSET_", "GEMINI", "GOOGLE_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "common.cli", *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    badinputs.garment_photo(4000, 3000).save(folder / "big.jpg", quality=90)
    for case in badinputs.bad_inputs():
        (folder / case.filename).write_bytes(case.data)
    return folder


def test_good_photo_exits_0_and_writes_job_json_and_images(tmp_path, inputs):
    run = closet("run", str(inputs / "big.jpg"), "--out", str(tmp_path / "out"), cwd=tmp_path)

    assert run.returncode == 0, run.stderr
    [job_file] = list((tmp_path / "out").glob("*/job.json"))
    job = json.loads(job_file.read_text())
    assert job["status"] == "done" and job["progress"] == 100
    assert job["id"] == job_file.parent.name
    for item in job["result"]["items"]:
        assert (tmp_path / "out" / item["image"]["path"]).is_file()
        assert max(item["image"]["width"], item["image"]["height"]) <= 1024
    assert "done" in run.stdout and str(job_file) in run.stdout


def test_json_flag_prints_the_final_documents_as_a_list(tmp_path, inputs):
    run = closet(
        "run",
        str(inputs / "big.jpg"),
        str(inputs / "notes.jpg"),
        "--out",
        str(tmp_path / "out"),
        "--json",
        cwd=tmp_path,
    )

    documents = json.loads(run.stdout)
    assert run.returncode == 1
    assert [d["status"] for d in documents] == ["done", "failed"]
    assert documents[1]["error"]["code"] == "invalid_image"


@pytest.mark.parametrize(
    "case",
    [case for case in badinputs.bad_inputs() if case.code],
    ids=lambda case: case.name,
)
def test_bad_input_exits_1_with_its_code_and_no_traceback(tmp_path, inputs, case):
    run = closet("run", str(inputs / case.filename), "--out", str(tmp_path / "out"), cwd=tmp_path)

    [job_file] = list((tmp_path / "out").glob("*/job.json"))
    job = json.loads(job_file.read_text())
    assert run.returncode == 1
    assert job["status"] == "failed" and job["error"]["code"] == case.code
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    assert case.code in run.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--out", "x"),
        ("run", "missing.jpg", "--out", "x"),
        ("run", "missing.jpg"),
        ("fly",),
    ],
)
def test_usage_errors_exit_2(tmp_path, args):
    run = closet(*args, cwd=tmp_path)

    assert run.returncode == 2
    assert "Traceback" not in run.stderr


def test_bad_configuration_exits_2_with_the_variable_named(tmp_path, inputs):
    env_run = subprocess.run(
        [sys.executable, "-m", "common.cli", "run", str(inputs / "big.jpg"), "--out", "o"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "CLOSET_WORKING_SIZE": "huge"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert env_run.returncode == 2
    assert "CLOSET_WORKING_SIZE" in env_run.stderr and "Traceback" not in env_run.stderr


def test_plain_progress_lines_when_not_a_terminal(tmp_path, inputs):
    run = closet("run", str(inputs / "big.jpg"), "--out", str(tmp_path / "out"), cwd=tmp_path)

    lines = [line for line in run.stderr.splitlines() if line.startswith("big.jpg:")]
    percents = [int(line.split(":")[1].split("%")[0]) for line in lines]
    assert percents == sorted(percents) and percents[-1] == 100
    assert "\r" not in run.stderr


SAMPLES = REPO / "tests" / "data"


def test_tryon_of_a_garment_photo_runs_the_closet_job_then_the_tryon(tmp_path):
    out = tmp_path / "out"
    first = closet(
        "tryon", str(SAMPLES / "sample-person.jpg"), str(SAMPLES / "sample-shirt.jpg"),
        "--out", str(out), "--json", cwd=tmp_path,
    )  # fmt: skip

    assert first.returncode == 0, first.stderr
    closet_job, tryon_job = json.loads(first.stdout)
    assert (closet_job["kind"], tryon_job["kind"]) == ("closet", "tryon")
    assert tryon_job["status"] == "done"
    assert tryon_job["inputs"]["garment"] == f"{closet_job['id']}/items/0"
    (item,) = tryon_job["result"]["items"]
    assert (out / item["image"]["path"]).is_file() and (out / item["thumbnail"]["path"]).is_file()
    assert (out / "tryon" / tryon_job["id"] / "job.json").is_file()

    # An item of that earlier output, tried on again into the same folder: from the cache.
    [item_image] = (out / closet_job["id"] / "items").glob("0-*.thumb.webp")
    again = closet(
        "tryon", str(SAMPLES / "sample-person.jpg"),
        str(item_image).replace(".thumb", ""), "--out", str(out), "--json", cwd=tmp_path,
    )  # fmt: skip

    assert again.returncode == 0, again.stderr
    adopted, repeat = json.loads(again.stdout)
    assert adopted["id"] == closet_job["id"]
    assert repeat["status"] == "done" and repeat["cacheHit"] is True


def test_tryon_without_a_person_exits_1_with_the_code_and_no_traceback(tmp_path):
    empty = tmp_path / "wall.jpg"
    Image.new("RGB", (480, 720), (236, 234, 230)).save(empty)

    run = closet(
        "tryon", str(empty), str(SAMPLES / "sample-shirt.jpg"), "--out", str(tmp_path / "o"),
        cwd=tmp_path,
    )  # fmt: skip

    assert run.returncode == 1
    assert "no_person_found" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_tryon_with_a_missing_file_is_a_usage_error(tmp_path):
    run = closet(
        "tryon", str(tmp_path / "nobody.jpg"), str(SAMPLES / "sample-shirt.jpg"),
        "--out", str(tmp_path / "o"), cwd=tmp_path,
    )  # fmt: skip

    assert run.returncode == 2 and "nobody.jpg" in run.stderr
