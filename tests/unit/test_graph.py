"""Pipelines as graphs: fan-out, a join decided once on the job document, branch failures,
progress, redrives and dead letters. The pipeline is declared here and injected: it is not one
of the product's pipelines.

tests/integration/test_graph_firestore.py runs the same tests on the Firestore emulator (its
`jobs` and `twin` fixtures replace the in-memory ones below).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from common.adapters.inline import InlineBus
from common.adapters.memory import MemoryJobStore
from common.config import Settings
from common.errors import InvalidImage, TransientError
from common.graph import Pipeline, Step
from common.pipeline import LocalPipeline
from common.pipelines import PIPELINES
from common.ports import JobStore
from common.runtime import Delivery, StageOutcome, StepLeased, dead_letter, run_stage
from common.schemas import Job, JobStatus, Source, StageMessage, StageStatus, utcnow
from common.topology import load
from common.watchdog import Watchdog, pending_messages

DIAMOND = Pipeline(
    kind="diamond",
    path="diamond/",
    describes="one step, two branches side by side, and a step that joins them",
    steps=(
        Step("prepare", 20, "Preparing"),
        Step("left", 50, "Going left"),
        Step("right", 70, "Going right", after=("prepare",)),
        Step("join", 100, "Joining", after=("left", "right")),
    ),
)
GRAPHS = {"diamond": DIAMOND}
LATER = timedelta(hours=1)


class Recording:
    """A stage that records its calls; it may fail, or wait for the test before finishing."""

    def __init__(
        self,
        name: str,
        error: Exception | None = None,
        before_return: Callable[[], object] | None = None,
    ) -> None:
        self.name = name
        self.error = error
        self.before_return = before_return
        self.calls = 0

    def handle(self, message: StageMessage) -> StageOutcome:
        self.calls += 1
        if self.before_return is not None:
            self.before_return()
        if self.error is not None:
            raise self.error
        finished = self.name == "join"
        return StageOutcome(
            backend="test",
            refs={self.name: f"work/{message.job_id}/{self.name}"},
            finished=finished,
        )


@pytest.fixture
def jobs() -> JobStore:
    return MemoryJobStore()


@pytest.fixture
def twin(jobs: JobStore) -> Callable[[], JobStore]:
    """Another handle on the same jobs (in the cloud: another instance's client)."""
    return lambda: jobs


def new_job(jobs: JobStore) -> str:
    job_id = f"diamond-{uuid.uuid4().hex[:12]}"
    source = Source(bucket="b", name=f"users/u/diamond/{job_id}.jpg", generation="1")
    jobs.create(Job(id=job_id, uid="u", kind="diamond", stage="prepare", source=source))
    return job_id


def run(stage: Recording, message: StageMessage, jobs: JobStore, bus: InlineBus) -> Delivery:
    return run_stage(stage, message, jobs, bus, pipelines=GRAPHS, max_attempts=3)


def first(job_id: str) -> StageMessage:
    return StageMessage(job_id=job_id, kind="diamond", stage="prepare", refs={"upload": "x"})


def drained(bus: InlineBus, job_id: str | None = None) -> list[StageMessage]:
    """The messages published (of `job_id`: a sweep on a shared store finds other tests' jobs)."""
    return [m for m in iter(bus.pop, None) if job_id is None or m.job_id == job_id]


def prepared(jobs: JobStore, bus: InlineBus) -> tuple[str, dict[str, StageMessage]]:
    """A job whose first step is done: the messages of both branches, by stage."""
    job_id = new_job(jobs)
    run(Recording("prepare"), first(job_id), jobs, bus)
    return job_id, {message.stage: message for message in drained(bus)}


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def get(jobs: JobStore, job_id: str) -> Job:
    job = jobs.get(job_id)
    assert job is not None
    return job


# -- the declaration --------------------------------------------------------------------------


def test_a_line_declares_each_step_after_the_one_before() -> None:
    closet = PIPELINES["closet"]

    assert closet.after("ingest") == ()
    assert closet.following("ingest") == ("remove_background",)
    assert closet.after("finalize") == ("expand",) and closet.following("finalize") == ()


def test_a_graph_fans_out_and_joins() -> None:
    assert DIAMOND.following("prepare") == ("left", "right")
    assert DIAMOND.after("join") == ("left", "right")
    assert DIAMOND.following("left") == DIAMOND.following("right") == ("join",)


@pytest.mark.parametrize(
    ("steps", "complaint"),
    [
        ((Step("a", 10, "A"), Step("b", 100, "B", after=("c",))), "not declared before"),
        ((Step("a", 50, "A"), Step("b", 40, "B")), "must exceed"),
        (
            (Step("a", 10, "A"), Step("b", 50, "B"), Step("c", 100, "C", after=("a",))),
            "lead nowhere",
        ),
        ((Step("a", 10, "A"), Step("a", 100, "A again")), "declared twice"),
    ],
)
def test_a_graph_that_cannot_run_is_refused_at_declaration(
    steps: tuple[Step, ...], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        Pipeline(kind="bad", path="bad/", describes="", steps=steps)


# -- running it -------------------------------------------------------------------------------


def test_a_finished_step_starts_every_branch_and_the_job_says_both(jobs) -> None:
    bus = InlineBus()

    job_id, branches = prepared(jobs, bus)

    assert set(branches) == {"left", "right"}
    assert all(
        m.refs == {"upload": "x", "prepare": f"work/{job_id}/prepare"} for m in branches.values()
    )
    job = get(jobs, job_id)
    assert job.message == "Going left · Going right" and job.stage == "left"
    assert job.stages["prepare"].handed_to == ["left", "right"]


def test_the_join_starts_once_the_last_branch_finishes_with_every_branch_refs(jobs) -> None:
    bus = InlineBus()
    job_id, branches = prepared(jobs, bus)

    run(Recording("right"), branches["right"], jobs, bus)
    after_one = get(jobs, job_id)
    assert drained(bus) == []
    assert after_one.message == "Going left" and after_one.stage == "left"
    run(Recording("left"), branches["left"], jobs, bus)

    [joined] = drained(bus)
    assert joined.stage == "join"
    assert joined.refs == {
        "upload": "x",
        "prepare": f"work/{job_id}/prepare",
        "left": f"work/{job_id}/left",
        "right": f"work/{job_id}/right",
    }
    job = get(jobs, job_id)
    assert job.stages["right"].handed_to == [] and job.stages["left"].handed_to == ["join"]
    assert job.message == "Joining"


def test_duplicate_and_late_branch_deliveries_never_start_the_join_twice(jobs) -> None:
    bus = InlineBus()
    job_id, branches = prepared(jobs, bus)
    left, right, join = Recording("left"), Recording("right"), Recording("join")
    run(left, branches["left"], jobs, bus)

    # A copy of the first branch, before and after the other finishes.
    assert run(left, branches["left"], jobs, bus) is Delivery.DUPLICATE
    run(right, branches["right"], jobs, bus)
    assert run(left, branches["left"], jobs, bus) is Delivery.DUPLICATE
    [joined] = drained(bus)

    def copy_of_the_join_meanwhile() -> None:
        with pytest.raises(StepLeased):  # the join's claim holds the copy off
            run(join, joined, jobs, bus)

    join.before_return = copy_of_the_join_meanwhile
    run(join, joined, jobs, bus)
    # Late copies of both branches and of the join, once the job is done.
    messages = {**branches, "join": joined}
    late = [run(stage, messages[stage.name], jobs, bus) for stage in (left, right, join)]

    assert late == [Delivery.IGNORED] * 3
    assert drained(bus) == []
    assert (left.calls, right.calls, join.calls) == (1, 1, 1)
    job = get(jobs, job_id)
    assert job.status is JobStatus.DONE and job.progress == 100


def test_the_join_message_lost_is_sent_again_only_by_the_branch_that_sent_it(jobs) -> None:
    bus = InlineBus()
    _, branches = prepared(jobs, bus)
    run(Recording("left"), branches["left"], jobs, bus)
    run(Recording("right"), branches["right"], jobs, bus)
    lost = drained(bus)  # the instance died before its publish went out

    run(Recording("left"), branches["left"], jobs, bus)
    assert drained(bus) == []
    run(Recording("right"), branches["right"], jobs, bus)

    assert drained(bus) == lost


def test_branches_finishing_at_the_same_time_start_the_join_once(jobs, twin) -> None:
    for _ in range(5):
        bus = InlineBus()
        job_id, branches = prepared(jobs, bus)
        together = threading.Barrier(2, timeout=30)
        stores = [jobs, twin()]
        stages = [Recording(name, before_return=together.wait) for name in ("left", "right")]
        threads = [
            threading.Thread(target=run, args=(stage, branches[stage.name], store, bus))
            for stage, store in zip(stages, stores, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        assert [m.stage for m in drained(bus)] == ["join"]
        job = get(jobs, job_id)
        starters = [s for s in ("left", "right") if job.stages[s].handed_to == ["join"]]
        assert len(starters) == 1


def test_a_failing_branch_fails_the_job_once(jobs, twin) -> None:
    bus = InlineBus()
    job_id, branches = prepared(jobs, bus)
    # Both branches are at work when the first fails; the second fails after it.
    both_working = threading.Barrier(2, timeout=30)
    first_failed = threading.Event()
    left = Recording("left", InvalidImage("left cannot"), before_return=both_working.wait)

    def right_waits() -> None:
        both_working.wait()
        assert first_failed.wait(30)

    right = Recording("right", InvalidImage("right cannot either"), before_return=right_waits)
    found: dict[str, Delivery] = {}

    def deliver(stage: Recording, store: JobStore) -> None:
        found[stage.name] = run(stage, branches[stage.name], store, bus)
        if stage is left:
            first_failed.set()

    threads = [
        threading.Thread(target=deliver, args=(left, jobs)),
        threading.Thread(target=deliver, args=(right, twin())),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert found == {"left": Delivery.FAILED, "right": Delivery.IGNORED}
    job = get(jobs, job_id)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert (job.error.stage, job.error.message) == ("left", "left cannot")
    assert job.stages["right"].status is StageStatus.RUNNING
    assert drained(bus) == []


def test_a_branch_finishing_after_the_other_failed_starts_nothing(jobs) -> None:
    bus = InlineBus()
    job_id, branches = prepared(jobs, bus)
    run(Recording("left", InvalidImage("left cannot")), branches["left"], jobs, bus)

    right = Recording("right")
    delivery = run(right, branches["right"], jobs, bus)

    assert delivery is Delivery.IGNORED and right.calls == 0
    assert get(jobs, job_id).error.stage == "left"  # type: ignore[union-attr]


@pytest.mark.parametrize("order", [("left", "right"), ("right", "left")])
def test_progress_never_decreases_whatever_branch_finishes_first(
    jobs, order: tuple[str, str]
) -> None:
    bus = InlineBus()
    job_id, branches = prepared(jobs, bus)
    seen: list[int] = []
    unsubscribe = jobs.listen(job_id, lambda job: seen.append(job.progress))
    wait_for(lambda: bool(seen))  # Firestore's first report comes a moment after listening

    after_each = []
    for name in order:
        run(Recording(name), branches[name], jobs, bus)
        after_each.append(get(jobs, job_id).progress)
    run(Recording("join"), *drained(bus), jobs, bus)
    wait_for(lambda: 100 in seen)  # Firestore's listener reports a moment later
    unsubscribe()

    assert after_each == [DIAMOND.step(order[0]).progress, 70]
    assert get(jobs, job_id).progress == 100
    assert seen == sorted(seen) and seen[0] == 20


# -- stuck and dead-lettered branches ---------------------------------------------------------


def test_the_watchdog_redrives_only_the_branch_whose_message_was_lost(jobs) -> None:
    bus = InlineBus()
    job_id, branches = prepared(jobs, bus)
    run(Recording("left"), branches["left"], jobs, bus)  # right's message is lost
    watchdog = Watchdog(jobs, bus, load(), stuck_after_s=60, pipelines=GRAPHS)

    report = watchdog.sweep(utcnow() + LATER)

    assert job_id in report.redriven
    [resent] = drained(bus, job_id)
    assert resent == branches["right"]
    assert get(jobs, job_id).message.startswith("Resuming: no progress at right")


def test_the_watchdog_redrives_both_branches_and_then_the_join(jobs) -> None:
    bus = InlineBus()
    job_id, branches = prepared(jobs, bus)  # both messages lost
    watchdog = Watchdog(jobs, bus, load(), stuck_after_s=60, pipelines=GRAPHS)

    watchdog.sweep(utcnow() + LATER)
    resent = {m.stage: m for m in drained(bus, job_id)}
    assert resent == branches
    for name in ("left", "right"):
        run(Recording(name), resent[name], jobs, bus)
    joined = drained(bus)

    job = get(jobs, job_id)
    assert pending_messages(job, GRAPHS) == joined  # what a second redrive would send


def test_a_branch_held_by_a_live_lease_keeps_the_job_waiting(jobs) -> None:
    bus = InlineBus()
    job_id, _ = prepared(jobs, bus)
    jobs.claim(job_id, "left", "working-instance", 10 * 3600, DIAMOND)
    job = get(jobs, job_id)
    assert job.message == "Going left · Going right"

    report = Watchdog(jobs, bus, load(), stuck_after_s=60, pipelines=GRAPHS).sweep(utcnow() + LATER)

    assert job_id in report.waiting and drained(bus, job_id) == []


def test_a_dead_lettered_branch_fails_the_job_naming_it(jobs) -> None:
    bus = InlineBus()
    job_id, branches = prepared(jobs, bus)
    run(Recording("left"), branches["left"], jobs, bus)
    failing = Recording("right", TransientError("503 from the model"))
    for _ in range(3):
        with pytest.raises(TransientError):
            run(failing, branches["right"], jobs, bus)

    dead_letter(jobs, branches["right"], GRAPHS)

    job = get(jobs, job_id)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.stage == "right" and "503" in job.error.message


def test_a_dead_letter_of_a_branch_that_finished_first_changes_nothing(jobs) -> None:
    bus = InlineBus()
    job_id, branches = prepared(jobs, bus)
    run(Recording("left"), branches["left"], jobs, bus)  # it started nothing: right still runs

    dead_letter(jobs, branches["left"], GRAPHS)

    assert not get(jobs, job_id).status.terminal


# -- the in-process runner --------------------------------------------------------------------


def test_the_local_runner_runs_a_graph_to_the_end(tmp_path: Path) -> None:
    stages = {name: Recording(name) for name in DIAMOND.stages}
    settings = Settings.from_env({}, local_root=tmp_path / "local")
    runner = LocalPipeline(settings, retry_delay_s=0, pipelines=GRAPHS, stages=stages)
    job_id = new_job(runner.jobs)

    runner.bus.publish(first(job_id))
    runner.drain()

    job = get(runner.jobs, job_id)
    assert job.status is JobStatus.DONE and job.message == "Done"
    assert {name: stage.calls for name, stage in stages.items()} == dict.fromkeys(DIAMOND.stages, 1)
    assert all(job.stages[s].status is StageStatus.DONE for s in DIAMOND.stages)
