"""`closet`, driven as a user would: a real process, real files, exit codes."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from common.cli import build_parser
from tests import badinputs

REPO = Path(__file__).resolve().parents[2]


def closet(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLOSET_", "GEMINI", "GOOGLE_", "FORCE_COLOR", "TTY_"))
        and not k.endswith("_EMULATOR_HOST")
    }
    return subprocess.run(
        [sys.executable, "-m", "common.cli", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(REPO), **(env or {})},
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
        ("run", "x.jpg", "--workers", "0"),
        ("dev", "--ports", "nonsense"),
        ("dev", "--ports", "pubsub=99999"),
        ("dev", "--ports", "redis=8085"),
        ("fly",),
    ],
)
def test_usage_errors_exit_2(tmp_path, args):
    run = closet(*args, cwd=tmp_path)

    assert run.returncode == 2
    assert "Traceback" not in run.stderr


def one_line_error(run: subprocess.CompletedProcess[str]) -> str:
    """The whole of stderr, asserted to be one line and exit code 2."""
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    [line] = run.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CLOSET_WORKING_SIZE", "huge", "integer"),
        ("CLOSET_OUTPUT_QUALITY", "abc", "integer"),
        ("CLOSET_OUTPUT_QUALITY", "0", "greater than or equal to 1"),
        ("CLOSET_REMOTE_TIMEOUT_S", "-3", "greater than 0"),
        ("CLOSET_OUTPUT_FORMAT", "bmp", "'webp', 'jpeg', 'png' or 'avif'"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_variable_and_exit_2(
    tmp_path, inputs, name, value, says
):
    run = closet("run", str(inputs / "big.jpg"), "--out", "o", cwd=tmp_path, env={name: value})

    line = one_line_error(run)
    assert line.startswith("closet run: configuration error: ")
    assert f"{name}={value!r}" in line and says in line
    assert "invalid literal" not in line


def test_out_that_is_a_file_is_a_usage_error(tmp_path, inputs):
    (tmp_path / "taken").write_text("not a folder")

    run = closet("run", str(inputs / "big.jpg"), "--out", "taken", cwd=tmp_path)

    assert "--out taken is a file" in one_line_error(run)


@pytest.mark.parametrize("out", ["taken/inside", "/proc/closet-out"], ids=["under-a-file", "proc"])
def test_out_that_cannot_be_written_is_a_usage_error(tmp_path, inputs, out):
    (tmp_path / "taken").write_text("not a folder")

    run = closet("run", str(inputs / "big.jpg"), "--out", out, cwd=tmp_path)

    assert f"--out {out} is not a writable folder" in one_line_error(run)


def write_state(tmp_path: Path, text: str) -> Path:
    state = tmp_path / "dev.json"
    state.write_text(text)
    return state


@pytest.mark.parametrize("command", ["submit", "watch"])
@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        ("{garbled", "is not JSON"),
        ('["a list"]', "has no `env` of `closet dev`"),
        ('{"env": {"PUBSUB_EMULATOR_HOST": 8085}}', "has no `env` of `closet dev`"),
    ],
    ids=["missing", "garbled", "not-an-object", "env-not-strings"],
)
def test_a_bad_state_file_is_a_usage_error(tmp_path, inputs, command, content, says):
    state = tmp_path / "dev.json" if content is None else write_state(tmp_path, content)
    target = str(inputs / "big.jpg") if command == "submit" else "some-job-id"

    run = closet(command, target, "--state", str(state), cwd=tmp_path)

    line = one_line_error(run)
    assert str(state) in line and says in line


@pytest.mark.parametrize("command", ["submit", "watch"])
def test_no_google_credentials_is_a_usage_error(tmp_path, inputs, command):
    target = str(inputs / "big.jpg") if command == "submit" else "some-job-id"
    # No emulator, no key file, a HOME without gcloud's credentials, no metadata server.
    env = {"HOME": str(tmp_path), "GOOGLE_APPLICATION_CREDENTIALS": "", "NO_GCE_CHECK": "True"}

    run = closet(command, target, "--timeout", "5", cwd=tmp_path, env=env)

    line = one_line_error(run)
    assert "no Google Cloud credentials" in line and "DefaultCredentialsError" not in line


def test_an_unknown_closet_variable_is_one_warning_naming_the_closest(tmp_path):
    run = closet("config", cwd=tmp_path, env={"CLOSET_OUTPUT_QUALTY": "90"})

    warnings = [line for line in run.stderr.splitlines() if "CLOSET_OUTPUT_QUALTY" in line]
    assert run.returncode == 0
    assert len(warnings) == 1
    assert "did you mean CLOSET_OUTPUT_QUALITY?" in warnings[0]


def test_config_prints_each_setting_with_its_origin_and_masks_secrets(tmp_path):
    env = {"CLOSET_OUTPUT_QUALITY": "70", "GEMINI_API_KEY": "sk-very-secret"}

    run = closet("config", "--out", "somewhere", "--json", cwd=tmp_path, env=env)

    rows = {row["variable"]: row for row in json.loads(run.stdout)}
    assert run.returncode == 0
    assert rows["CLOSET_OUTPUT_QUALITY"] == {
        "name": "output_quality",
        "variable": "CLOSET_OUTPUT_QUALITY",
        "value": "70",
        "origin": "environment",
    }
    assert rows["CLOSET_LOCAL_ROOT"]["origin"] == "argument"
    assert rows["CLOSET_LOCAL_ROOT"]["value"] == str(Path("somewhere") / ".closet")
    assert rows["CLOSET_WORKING_SIZE"]["origin"] == "default"
    assert rows["GEMINI_API_KEY"]["value"] == "****"
    assert "sk-very-secret" not in run.stdout + run.stderr


def test_config_table_names_every_variable(tmp_path):
    run = closet("config", cwd=tmp_path, env={"CLOSET_CACHE": "false"})

    assert re.search(r"^CLOSET_CACHE\s+false\s+\(environment\)$", run.stdout, re.M)
    assert re.search(r"^CLOSET_OUTPUT_FORMAT\s+webp\s+\(default\)$", run.stdout, re.M)


def test_version(tmp_path):
    run = closet("--version", cwd=tmp_path)

    assert run.returncode == 0
    assert re.fullmatch(r"closet \d+\.\d+\.\d+\S*\n", run.stdout)


def test_plain_progress_lines_when_not_a_terminal(tmp_path, inputs):
    run = closet("run", str(inputs / "big.jpg"), "--out", str(tmp_path / "out"), cwd=tmp_path)

    lines = [line for line in run.stderr.splitlines() if line.startswith("big.jpg:")]
    percents = [int(line.split(":")[1].split("%")[0]) for line in lines]
    assert percents == sorted(percents) and percents[-1] == 100
    assert "\r" not in run.stderr


@pytest.fixture(scope="module")
def album(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two photos, one in a subfolder, and a file that is not an image."""
    folder = tmp_path_factory.mktemp("album")
    badinputs.garment_photo(320, 240).save(folder / "shirt one.jpg", quality=90)
    (folder / "sub").mkdir()
    badinputs.garment_photo(240, 320).save(folder / "sub" / "tee.png")
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_a_folder_is_expanded_to_its_images(tmp_path, album):
    run = closet("run", str(album), "--json", cwd=tmp_path)

    documents = json.loads(run.stdout)
    assert run.returncode == 0, run.stderr
    assert [d["source"]["name"].rsplit("-", 1)[-1] for d in documents] == ["shirt one.jpg"]


def test_recursive_takes_subfolders_and_out_defaults_to_closet_out(tmp_path, album):
    run = closet("run", str(album), "--recursive", "--workers", "2", cwd=tmp_path)

    out = tmp_path / "closet-out"
    folders = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert run.returncode == 0, run.stderr
    assert len(folders) == 2
    assert re.fullmatch(r"shirt-one-[0-9a-f]{8}", folders[0])
    assert re.fullmatch(r"tee-[0-9a-f]{8}", folders[1])
    for name in folders:
        job = json.loads((tmp_path / "closet-out" / name / "job.json").read_text())
        assert job["id"] == name and job["status"] == "done"


def test_summary_names_the_backends_and_why_a_stage_was_skipped(tmp_path, album):
    run = closet("run", str(album / "shirt one.jpg"), cwd=tmp_path)

    assert run.returncode == 0, run.stderr
    assert "remove_background=classic" in run.stdout
    assert "segment=single: single-garment mode" in run.stdout
    assert "skipped:  expand: no generative credentials" in run.stdout
    assert re.search(r"outputs:  closet-out/shirt-one-[0-9a-f]{8}$", run.stdout, re.M)


def test_verbose_is_accepted_after_the_subcommand(tmp_path, album):
    run = closet("run", str(album / "shirt one.jpg"), "-v", cwd=tmp_path)

    assert run.returncode == 0, run.stderr
    assert re.search(r"INFO +ingest started +jobId=shirt-one-[0-9a-f]{8} +stage=ingest", run.stderr)


@pytest.mark.parametrize("folder", ["empty", "only-text"])
def test_a_folder_without_images_is_a_usage_error(tmp_path, folder):
    (tmp_path / folder).mkdir()
    if folder == "only-text":
        (tmp_path / folder / "notes.txt").write_text("x")

    run = closet("run", folder, cwd=tmp_path)

    assert f"no images (.jpg, .jpeg, .png, .webp, .gif) in folder {folder}" in one_line_error(run)


def test_dev_on_a_port_in_use_is_a_usage_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        run = closet("dev", "--ports", f"pubsub={port}", "--logs", "logs", cwd=tmp_path)

    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"closet dev: error: pubsub-emulator: port 127.0.0.1:{port} is already in use" in (
        run.stderr
    )


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def test_every_subcommand_and_argument_has_help_and_the_epilog():
    parser = build_parser()

    for name, command in subcommands(parser).items():
        assert command.description, name
        assert command.epilog and "exit codes:" in command.epilog, name
        for action in command._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
    assert set(subcommands(parser)) >= {"run", "dev", "submit", "watch", "config"}


def test_readme_shows_closet_help_as_it_is(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps to the terminal's width
    parser = build_parser()
    readme = (REPO / "README.md").read_text()

    usages = "".join(command.format_usage() for command in subcommands(parser).values())

    assert f"```text\n{parser.format_help()}```" in readme
    assert f"```text\n{usages}```" in readme


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
