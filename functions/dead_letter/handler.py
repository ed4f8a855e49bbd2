"""dead_letter: a message that kept failing becomes a failed job that says which stage and why."""

from __future__ import annotations

from common.ports import JobStore
from common.runtime import dead_letter
from common.schemas import StageMessage


class DeadLetter:
    name = "dead_letter"

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs

    def handle(self, message: StageMessage) -> None:
        dead_letter(self.jobs, message)
