"""The graph tests of tests/unit/test_graph.py on the Firestore emulator: the join is decided
in a Firestore transaction, with branches finishing at once from two clients (two instances)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from google.cloud import firestore

from common.adapters.firestore import FirestoreJobStore
from common.ports import JobStore
from tests.integration.conftest import PROJECT
from tests.unit.test_graph import (  # noqa: F401  (collected here with this module's fixtures)
    test_a_branch_finishing_after_the_other_failed_starts_nothing,
    test_a_branch_held_by_a_live_lease_keeps_the_job_waiting,
    test_a_dead_letter_of_a_branch_that_finished_first_changes_nothing,
    test_a_dead_lettered_branch_fails_the_job_naming_it,
    test_a_failing_branch_fails_the_job_once,
    test_a_finished_step_starts_every_branch_and_the_job_says_both,
    test_branches_finishing_at_the_same_time_start_the_join_once,
    test_duplicate_and_late_branch_deliveries_never_start_the_join_twice,
    test_progress_never_decreases_whatever_branch_finishes_first,
    test_the_join_message_lost_is_sent_again_only_by_the_branch_that_sent_it,
    test_the_join_starts_once_the_last_branch_finishes_with_every_branch_refs,
    test_the_watchdog_redrives_both_branches_and_then_the_join,
    test_the_watchdog_redrives_only_the_branch_whose_message_was_lost,
)


@pytest.fixture
def jobs(firestore_client: Any) -> JobStore:
    return FirestoreJobStore(firestore_client)


@pytest.fixture
def twin(emulators: Any) -> Callable[[], JobStore]:
    """Another instance: its own client, so nothing in this process orders their transactions."""
    return lambda: FirestoreJobStore(firestore.Client(project=PROJECT))


def test_instances_writing_one_job_at_once_lose_no_write(jobs, twin) -> None:
    """Six instances record six steps of one job at the same moment: every record is kept
    (a write that finds the document changed since its read reads it again)."""
    from common.schemas import JobUpdate, StageRecord, StageStatus
    from tests.unit.test_graph import new_job

    job_id = new_job(jobs)
    names = [f"step{n}" for n in range(6)]
    together = threading.Barrier(len(names), timeout=30)
    failures: list[BaseException] = []

    def record(name: str, store: JobStore) -> None:
        together.wait()
        try:
            store.advance(job_id, JobUpdate(stages={name: StageRecord(status=StageStatus.DONE)}))
        except BaseException as exc:  # reported below, with the records
            failures.append(exc)

    threads = [threading.Thread(target=record, args=(name, twin())) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    job = jobs.get(job_id)
    assert job is not None
    assert not failures
    assert {name: job.stages[name].status for name in names if name in job.stages} == dict.fromkeys(
        names, StageStatus.DONE
    )


def test_a_step_reads_the_job_document_once(jobs, monkeypatch) -> None:
    """The runtime's look at the job, the claim and the finish: one read, two writes (the claim
    and the finish start from the copy this instance read or wrote last)."""
    from google.cloud.firestore_v1.document import DocumentReference

    from common.adapters.inline import InlineBus
    from tests.unit.test_graph import Recording, first, get, new_job, run

    reads: list[str] = []
    real_get = DocumentReference.get

    def counted(self: DocumentReference, *args: Any, **kwargs: Any) -> Any:
        reads.append(self.id)
        return real_get(self, *args, **kwargs)

    job_id = new_job(jobs)
    monkeypatch.setattr(DocumentReference, "get", counted)
    bus = InlineBus()
    run(Recording("prepare"), first(job_id), jobs, bus)

    assert reads == [job_id]
    assert get(jobs, job_id).stages["prepare"].status.value == "done"
    assert sorted(message.stage for message in iter(bus.pop, None)) == ["left", "right"]


def test_a_copy_another_instance_has_changed_since_is_read_again(jobs, twin) -> None:
    """This instance's last copy of the job is stale once another writes: its next change
    still keeps the other's, and a decision to write nothing is taken on the document as it
    is now (here: the step the other instance claimed is held, not free)."""
    from common.schemas import Claim, JobUpdate, StageRecord, StageStatus
    from tests.unit.test_graph import DIAMOND, get, new_job

    job_id = new_job(jobs)
    get(jobs, job_id)  # this instance's copy
    other = twin()
    other.advance(job_id, JobUpdate(stages={"prepare": StageRecord(status=StageStatus.DONE)}))
    _, found = other.claim(job_id, "left", "other-owner", 60.0, DIAMOND)
    assert found is Claim.CLAIMED

    _, found = jobs.claim(job_id, "left", "this-owner", 60.0, DIAMOND)
    assert found is Claim.HELD
    jobs.advance(job_id, JobUpdate(stages={"right": StageRecord(status=StageStatus.DONE)}))

    job = get(twin(), job_id)
    assert job.stages["prepare"].status is StageStatus.DONE
    assert job.stages["right"].status is StageStatus.DONE
    lease = job.stages["left"].lease
    assert lease is not None and lease.owner == "other-owner"
