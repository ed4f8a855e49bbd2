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

from common.backends.segmentation.segformer import available_cpus, export_onnx
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
            json.loads(line)["pid"]
            for line in function.output().splitlines()
            if line.startswith("{") and "loaded its models" in line
        ]
        yield Served(master, int(workers[0]), loaded, status)
    finally:
        function.interrupt()
        function.stop()


def test_the_model_loads_in_the_worker_with_onnx_runtimes_threads(onnx_model: Path) -> None:
    with serving_segment(function_env(CLOSET_SEGMENTATION_BACKEND="single")) as baseline:
        baseline_threads = (Served.threads(baseline.master), Served.threads(baseline.worker))
    with serving_segment(function_env(CLOSET_SEGFORMER_PATH=str(onnx_model))) as served:
        threads = (Served.threads(served.master), Served.threads(served.worker))

        assert served.warmup_status == 200
        assert served.loaded_in == [served.worker], "loaded once, in the worker, not the master"
        # Same code, same clients: the only difference is the model's, and it is the worker's.
        assert threads[0] == baseline_threads[0], "no model thread is left in the master"
        # The session's intra-op pool has one thread per allowed CPU besides the caller's; a pool
        # made in the master is not in the worker. (ONNX Runtime's own import thread is not
        # counted: the baseline's process may start one thread more or fewer.)
        assert threads[1] - baseline_threads[1] >= available_cpus() - 1


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
