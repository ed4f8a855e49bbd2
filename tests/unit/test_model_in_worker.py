"""The segment function served as `closet dev` serves it: its model loads in gunicorn's worker.

functions-framework imports the entry point in gunicorn's master and forks the worker; a model
loaded at import left ONNX Runtime's intra-op threads behind in the master, and the worker ran
every inference on one thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import SegformerForSemanticSegmentation, SegformerImageProcessorPil

from common.backends.segmentation.segformer import export_onnx
from common.devstack import FunctionProcess
from common.emulators import EmulatorError, free_port
from common.topology import load
from tests.push import WARMUP, post_cloud_event
from tests.unit.test_segformer import save_model_where_label_wins, tiny_config

pytestmark = pytest.mark.slow
UPPER_CLOTHES = 4


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SegFormer as `closet models fetch` leaves it: configs and `model.onnx` only."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("segformer")
    model = SegformerForSemanticSegmentation(tiny_config())
    save_model_where_label_wins(model, UPPER_CLOTHES, folder)
    SegformerImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(folder)
    export_onnx(folder)
    (folder / "model.safetensors").unlink()
    return folder


@dataclass
class Served:
    master: int
    worker: int
    loaded_in: list[int]
    """The pid of every "loaded its models" log line."""
    threads_started: list[int]
    """What each of those lines says the loading started: native threads, pools included."""
    warmup_status: int

    @staticmethod
    def threads(pid: int) -> int:
        return len(os.listdir(f"/proc/{pid}/task"))


def function_env(**closet: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOSET_", "SERVER_"))}
    # Emulator addresses that nothing answers: a warm-up touches no cloud service.
    env |= {
        "FIRESTORE_EMULATOR_HOST": "localhost:1",
        "PUBSUB_EMULATOR_HOST": "localhost:1",
        "STORAGE_EMULATOR_HOST": "http://localhost:1",
        "GOOGLE_CLOUD_PROJECT": "closet-worker-test",
    }
    return env | closet


@contextmanager
def serving_segment(env: dict[str, str]) -> Iterator[Served]:
    """The segment function, started as `closet dev` starts it, after one warm-up."""
    function = FunctionProcess(load().function("segment"), free_port(), env)
    function.launch()
    try:
        function.wait_until_ready(timeout_s=180)
        status = post_cloud_event(function.url, WARMUP, "//cloudscheduler.googleapis.com/test")
        assert function.process is not None
        master = function.process.pid
        workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        assert len(workers) == 1, function.output()
        loaded = [
            json.loads(line)
            for line in function.output().splitlines()
            if line.startswith("{") and "loaded its models" in line
        ]
        yield Served(
            master,
            int(workers[0]),
            [line["pid"] for line in loaded],
            [line["threads_started"] for line in loaded],
            status,
        )
    finally:
        function.interrupt()
        function.stop()


def test_the_model_loads_in_the_worker_with_onnx_runtimes_threads(onnx_model: Path) -> None:
    def pool_of(threads: int) -> dict[str, str]:
        return function_env(CLOSET_SEGFORMER_PATH=str(onnx_model), CLOSET_CPU_THREADS=str(threads))

    with serving_segment(pool_of(1)) as one:
        master_threads_with_one = Served.threads(one.master)
    with serving_segment(pool_of(3)) as three:
        master_threads = Served.threads(three.master)

        assert one.warmup_status == three.warmup_status == 200
        assert one.loaded_in == [one.worker], "loaded once, in the worker, not the master"
        assert three.loaded_in == [three.worker]
        # Same code, same model: only the size of ONNX Runtime's intra-op pool differs, and the
        # master does not have it.
        assert master_threads == master_threads_with_one, "no model thread is left in the master"
        # A pool of three is the calling thread and two of its own, started in the worker as it
        # loaded: counted there, in one process, around the loading only (the clients' threads
        # come and go with timing, so whole processes are not compared).
        assert three.threads_started[0] - one.threads_started[0] == 2
        assert Served.threads(three.worker) >= 1 + three.threads_started[0]


def test_a_model_that_cannot_load_stops_the_function_at_start(tmp_path: Path) -> None:
    env = function_env(CLOSET_SEGFORMER_PATH=str(tmp_path / "no-such-model"))
    function = FunctionProcess(load().function("segment"), free_port(), env)
    function.launch()
    try:
        with pytest.raises(EmulatorError, match="exited") as failed:
            function.wait_until_ready(timeout_s=180)
    finally:
        function.interrupt()
        function.stop()

    assert "segment could not load its models" in str(failed.value)
    assert "segformer model directory not found" in str(failed.value)
