"""`closet dev` as a developer runs it: comes up, serves a job, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from common.config import PROCESS_ENV
from common.emulators import (
    EmulatorUnavailable,
    ephemeral_ports,
    fake_gcs_binary,
    free_port,
    port_is_free,
)
from common.topology import load
from tests.integration.conftest import emulators_unavailable

REPO = Path(__file__).resolve().parents[2]
EMULATORS = ["pubsub", "firestore", "gcs", "auth"]
FUNCTIONS = [spec.name for spec in load().services]
# `make test` builds the page (`make web`); a bare pytest run may not have.
PAGE_BUILT = (REPO / "web" / "dist" / "index.html").is_file()


def free_run_of_ports(count: int) -> int:
    """A base port with `count` free ports from it on (for `--ports BASE`)."""
    for _ in range(50):
        base = free_port()
        # Below the ephemeral range, where free_port picks: no client connection takes them.
        if base + count <= ephemeral_ports().start and all(
            port_is_free("127.0.0.1", p) for p in range(base, base + count)
        ):
            return base
    raise AssertionError("no run of free ports found")


def environment_of(word: str) -> dict[str, str]:
    """The environment of the live process whose command line contains `word`."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and word in (entry / "cmdline").read_bytes().decode():
                pairs = (entry / "environ").read_bytes().split(b"\0")
                return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
        except OSError:
            continue
    raise AssertionError(f"no process with {word!r} on its command line")


def processes_mentioning(words: list[str]) -> list[str]:
    """Command lines of live processes that contain any of `words`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(word in command for word in words):
            found.append(command)
    return found


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_dev_serves_a_submitted_job_and_stops_everything_it_started(tmp_path, stop_signal):
    try:
        fake_gcs_binary()
    except EmulatorUnavailable as exc:
        emulators_unavailable(str(exc))
    state_file = tmp_path / "dev.json"
    logs = tmp_path / "logs"
    base = free_run_of_ports(len(EMULATORS + FUNCTIONS) + 1)  # and the page
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    command = ["dev", "--state", str(state_file), "--logs", str(logs), "--ports", str(base)]
    dev = subprocess.Popen(
        [sys.executable, "-m", "common.cli", *command],
        cwd=REPO,
        env={**env, "GOOGLE_CLOUD_PROJECT": "closet-dev-test"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Generous: the Auth emulator (node) alone may take a minute on a loaded machine.
        deadline = time.monotonic() + 300
        while not state_file.exists() and dev.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if not state_file.exists():
            # Not SIGKILL: closet dev must still stop what it started, or it outlives the test.
            dev.send_signal(signal.SIGINT)
            try:
                output = dev.communicate(timeout=300)[0]
            except subprocess.TimeoutExpired:
                dev.kill()
                output = dev.communicate()[0]
            if "gcloud" in output and "not found" in output:
                emulators_unavailable(output)
            pytest.fail(f"closet dev did not come up:\n{output}")
        state = json.loads(state_file.read_text())
        page_config = (
            json.loads(urllib.request.urlopen(state["page"] + "config.json", timeout=10).read())
            if state["page"]
            else None
        )

        def closet_submit(*options: str) -> subprocess.CompletedProcess[str]:
            """`closet submit` of the sample to this stack, watched to its end, as JSON."""
            return subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "common.cli",
                    "submit",
                    str(REPO / "tests/data/sample-shirt.jpg"),
                    *options,
                    "--watch",
                    "--json",
                    "--state",
                    str(state_file),
                    "--timeout",
                    "60",
                ],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        submit = closet_submit()
        studio = closet_submit("--studio", "--style", "white", "--aspect", "1:1")
        segment_port = state["functions"]["segment"].rstrip("/").rsplit(":", 1)[1]
        segment_env = environment_of(f"--port={segment_port}")
    finally:
        dev.send_signal(stop_signal)
        output = dev.communicate(timeout=60)[0]

    ports = [url.rsplit(":", 1)[1].strip("/") for url in state["functions"].values()]
    ports += [value.rsplit(":", 1)[1] for value in state["env"].values() if ":" in value]
    assert submit.returncode == 0, submit.stdout + submit.stderr
    job = json.loads(submit.stdout.split("\n", 1)[1])
    assert job["status"] == "done" and job["progress"] == 100
    assert studio.returncode == 0, studio.stdout + studio.stderr
    shots = json.loads(studio.stdout.split("\n", 1)[1])
    assert shots["kind"] == "studio" and shots["status"] == "done"
    assert shots["inputs"]["style"] == "white" and shots["inputs"]["aspects"] == ["1:1"]
    assert [item["label"] for item in shots["result"]["items"]] == ["1:1"]
    assert set(state) >= {"project", "buckets", "env", "functions"}
    # Each function process starts with the environment its container image sets.
    assert {k: segment_env.get(k) for k in PROCESS_ENV} == PROCESS_ENV
    assert list(state["functions"]) == FUNCTIONS
    assert state["api"] == state["functions"]["api"].rstrip("/")
    assert {"tryon_prepare", "tryon_generate"} <= set(FUNCTIONS)
    # The fixed ports asked for: the emulators, then the functions in topology order.
    assert ports == [str(base + len(EMULATORS) + i) for i in range(len(FUNCTIONS))] + [
        str(base + i) for i in range(len(EMULATORS))
    ]
    # Every process's log is kept, and was streamed to the console with its name in front.
    assert sorted(p.name for p in logs.iterdir()) == sorted(
        f"{name}.log" for name in EMULATORS + FUNCTIONS + ["web"] * PAGE_BUILT
    )
    # The built page is served with a config.json that points at this stack.
    if PAGE_BUILT:
        page_port = base + len(EMULATORS) + len(FUNCTIONS)
        assert state["page"] == f"http://127.0.0.1:{page_port}/"
        assert f"page      {state['page']}" in output
        assert page_config is not None
        assert page_config["apiUrl"] == state["api"]
        assert page_config["firebase"]["projectId"] == state["project"]
        assert page_config["emulators"] == {
            "auth": state["auth"]["url"],
            "firestore": state["env"]["FIRESTORE_EMULATOR_HOST"],
        }
        ports.append(str(page_port))
    else:
        assert state["page"] is None and "make web" in output
    assert "ingest started" in (logs / "ingest.log").read_text()
    assert re.search(r"^\d\d:\d\d:\d\d ingest +\| INFO +ingest started", output, re.M), output
    assert re.search(r"^\d\d:\d\d:\d\d pubsub +\| ", output, re.M), output
    assert dev.returncode == 0, output
    assert (
        processes_mentioning([f":{port}" for port in ports] + [f"={port}" for port in ports]) == []
    )
    assert not state_file.exists()
    # The Auth emulator (a node process that names no port on its command line) is gone too.
    assert state["auth"]["url"] == f"http://127.0.0.1:{base + EMULATORS.index('auth')}"
    assert state["auth"]["project"] == "demo-closet-dev-test"
    assert all(port_is_free("127.0.0.1", int(port)) for port in ports)
