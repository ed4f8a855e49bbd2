"""Measures taken on the deployed shape: the segment function's cold start, and jobs end to end
on the emulator topology (`closet dev`), one after another and fifty at once."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.bench.inprocess import STAGES, medians, percentile, stage_ms
from common.bench.photo import unique
from common.config import Settings
from common.devstack import REPO, DevStack, FunctionProcess
from common.emulators import free_port
from common.pipelines import PIPELINES
from common.schemas import Job, JobStatus
from common.topology import load

PROJECT = "closet-bench"
WARMUP_HEADERS = {
    "Content-Type": "application/json",
    "ce-specversion": "1.0",
    "ce-type": "closet.warmup",
    "ce-source": "//closet/bench",
    "ce-id": "bench-warmup",
}
# Client libraries only connect on first use: unreachable hosts are fine for a warm-up.
_OFFLINE = {
    "GOOGLE_CLOUD_PROJECT": PROJECT,
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
    "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
    "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
}


def _no_credentials() -> dict[str, str]:
    """Expand is skipped, as with no credentials, whatever this shell holds."""
    return {"GEMINI_API_KEY": "", "GOOGLE_API_KEY": "", "GOOGLE_GENAI_USE_VERTEXAI": "false"}


def _warm(url: str) -> bool:
    request = urllib.request.Request(url, data=b"{}", headers=WARMUP_HEADERS, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return 200 <= int(response.status) < 300
    except urllib.error.HTTPError:
        return False
    except OSError:
        return False


def cold_start(model: Path, runs: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """Seconds from starting the segment function's process to its first warm-up answered."""
    spec = load().function("segment")
    env = {
        **os.environ,
        **_OFFLINE,
        **_no_credentials(),
        "CLOSET_SEGFORMER_PATH": str(model),
        "PYTHONUNBUFFERED": "1",
    }
    samples = []
    for _ in range(runs):
        function = FunctionProcess(spec, free_port(), env)
        start = time.perf_counter()
        function.launch()
        try:
            while not _warm(function.url):
                if function.process is None or function.process.poll() is not None:
                    raise RuntimeError(f"segment function exited:\n{function.output()}")
                if time.perf_counter() - start > timeout_s:
                    raise RuntimeError(f"segment function did not answer:\n{function.output()}")
                time.sleep(0.02)
            samples.append(time.perf_counter() - start)
        finally:
            function.interrupt()
            function.stop()
    return {
        "segment_s": round(statistics.median(samples), 2),
        "samples_s": [round(s, 2) for s in samples],
        "imports_torch": _segment_imports_torch(model),
    }


def _segment_imports_torch(model: Path) -> bool:
    """Whether the segment function's module, with its model loaded, brought in torch."""
    script = (
        "import sys, runpy\n"
        "runpy.run_path('functions/segment/main.py')['service'].load()\n"
        "print('torch' in sys.modules or 'transformers' in sys.modules)\n"
    )
    env = {**os.environ, **_OFFLINE, **_no_credentials(), "CLOSET_SEGFORMER_PATH": str(model)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"the segment function did not import:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1] == "True"


@dataclass
class _Watch:
    """A Firestore listener: when the job's `done` (or failure) was first seen."""

    finished: threading.Event = field(default_factory=threading.Event)
    seen_at: float = 0.0
    job: Job | None = None

    def __call__(self, job: Job) -> None:
        if job.status.terminal and not self.finished.is_set():
            self.seen_at = time.perf_counter()
            self.job = job
            self.finished.set()


@contextlib.contextmanager
def running_stack(model: Path) -> Iterator[DevStack]:
    saved = dict(os.environ)
    settings = Settings.from_env({}, project=PROJECT)
    function_env = {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "CLOSET_SEGFORMER_PATH": str(model),
        "CLOSET_BACKGROUND_BACKEND": "classic",
        **_no_credentials(),
    }
    stack = DevStack(settings, function_env=function_env)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


class _Client:
    def __init__(self, stack: DevStack) -> None:
        from google.cloud import firestore, storage  # type: ignore[attr-defined]

        from common.adapters.firestore import FirestoreJobStore

        self.stack = stack
        self.jobs = FirestoreJobStore(firestore.Client(project=stack.project))
        self.bucket = storage.Client(project=stack.project).bucket(stack.settings.uploads_bucket)

    def submit(
        self, data: bytes, folder: str = "", metadata: dict[str, str] | None = None
    ) -> tuple[str, _Watch, float]:
        """Upload with a job id the listener already follows; returns when the upload ended."""
        job_id = f"bench-{uuid.uuid4().hex[:16]}"
        watch = _Watch()
        self.jobs.listen(job_id, watch)
        blob = self.bucket.blob(f"users/bench/{folder}{job_id}.jpg")
        blob.metadata = {"job-id": job_id, **(metadata or {})}
        blob.upload_from_string(data, content_type="image/jpeg")
        return job_id, watch, time.perf_counter()


def _finished(watch: _Watch, job_id: str, timeout_s: float) -> Job:
    if not watch.finished.wait(timeout_s) or watch.job is None:
        raise RuntimeError(f"bench job {job_id} did not finish within {timeout_s} s")
    if watch.job.status is not JobStatus.DONE:
        raise RuntimeError(f"bench job {job_id} failed: {watch.job.error}")
    return watch.job


def end_to_end(stack: DevStack, jpeg: bytes, sequential: int, concurrent: int) -> dict[str, Any]:
    client = _Client(stack)
    # Prewarmed functions, as min-instances keep them: one job first, not counted.
    job_id, watch, _ = client.submit(unique(jpeg, 900_000))
    _finished(watch, job_id, 300)

    latencies, overheads, rows = [], [], []
    for n in range(sequential):
        job_id, watch, uploaded = client.submit(unique(jpeg, 910_000 + n))
        job = _finished(watch, job_id, 120)
        latency = watch.seen_at - uploaded
        compute = sum((job.stages[s].ms or 0) for s in STAGES if s in job.stages) / 1000
        latencies.append(latency)
        overheads.append(latency - compute)
        rows.append(stage_ms(job))

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(concurrent, 16)) as pool:
        submitted = list(
            pool.map(lambda n: client.submit(unique(jpeg, 920_000 + n)), range(concurrent))
        )
    done = [_finished(watch, job_id, 900) for job_id, watch, _ in submitted]
    last = max(watch.seen_at for _, watch, _ in submitted)
    minutes = (last - start) / 60
    return {
        "e2e": {
            "uploads": sequential,
            "p50_s": round(statistics.median(latencies), 2),
            "p95_s": round(percentile(latencies, 0.95), 2),
            "overhead_ms": round(statistics.median(overheads) * 1000, 1),
            "latencies_s": [round(v, 2) for v in latencies],
            "stages_ms": medians(rows),
        },
        "throughput": {
            "uploads": concurrent,
            "done": len(done),
            "seconds": round(minutes * 60, 1),
            "jobs_per_min": round(len(done) / minutes, 1),
        },
    }


def studio_jobs(stack: DevStack, jpeg: bytes, jobs: int, memory_from: int) -> dict[str, Any]:
    """Studio jobs one after another, upload to `done`; the studio functions' resident memory
    between job `memory_from` and the last."""
    from common.bench.studio import STUDIO_REQUEST, studio_jobs_summary

    client = _Client(stack)
    steps = set(PIPELINES["studio"].stages)

    def one(n: int) -> tuple[float, Job]:
        job_id, watch, uploaded = client.submit(unique(jpeg, n), "studio/", STUDIO_REQUEST)
        job = _finished(watch, job_id, 120)
        return watch.seen_at - uploaded, job

    one(940_000)  # prewarmed, as min-instances keep them: one job first, not counted
    latencies, done = [], []
    before: dict[str, float] = {}
    for n in range(1, jobs + 1):
        latency, job = one(940_000 + n)
        latencies.append(latency)
        done.append(job)
        if n == memory_from:
            before = {k: v for k, v in stack.rss_mb().items() if k in steps}
    after = stack.rss_mb()
    growth = {name: after[name] - mb for name, mb in before.items()}
    return studio_jobs_summary(latencies, done, growth, memory_from)
