"""Live progress of jobs for the CLI: rich bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import threading
from typing import Self

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.table import Column

from common.ports import JobListener
from common.schemas import Job

OVERALL = "all files"


class JobsProgress:
    """One bar a job and, for several, an overall bar; fed by job store listeners.

    On a terminal the bars follow its width (long names and messages are cut with an
    ellipsis, never wrapped); elsewhere each change is one plain line `label: NN% stage: text`.
    """

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.live = console.is_terminal
        self._lock = threading.Lock()
        self._percent: dict[str, int] = {}
        self._last: dict[str, tuple[object, ...]] = {}
        self._tasks: dict[str, TaskID] = {}
        self._finished: set[str] = set()
        self._progress = Progress(
            TextColumn(
                "{task.description}",
                table_column=Column(ratio=2, no_wrap=True, overflow="ellipsis"),
            ),
            BarColumn(bar_width=None, table_column=Column(ratio=2, min_width=5)),
            TaskProgressColumn(),
            TextColumn(
                "{task.fields[message]}",
                table_column=Column(ratio=2, no_wrap=True, overflow="ellipsis"),
            ),
            console=console,
            expand=True,
            disable=not self.live,
        )
        self._overall: TaskID | None = None
        if self.live and total > 1:
            self._overall = self._progress.add_task(OVERALL, total=100 * total, message="")

    def track(self, label: str) -> JobListener:
        """A listener that shows the changes of one job under `label`."""
        with self._lock:
            self._percent[label] = 0
            if self.live:
                self._tasks[label] = self._progress.add_task(label, total=100, message="queued")

        def on_change(job: Job) -> None:
            self._update(label, job)

        return on_change

    def _update(self, label: str, job: Job) -> None:
        state = (job.status, job.stage, job.progress, job.message)
        with self._lock:
            if self._last.get(label) == state:
                return
            self._last[label] = state
            self._percent[label] = job.progress
            done = sum(self._percent.values())
        if not self.live:
            line = f"{label}: {job.progress:3d}% {job.stage}: {job.message}\n"
            with self._lock:
                self.console.file.write(line)
                self.console.file.flush()
            return
        message = job.message if not job.status.terminal else str(job.status)
        self._progress.update(self._tasks[label], completed=job.progress, message=message)
        self._show_overall(done)

    def finish(self, label: str) -> None:
        """A job ended (done or failed): its share of the overall bar is complete."""
        with self._lock:
            self._percent[label] = 100
            self._finished.add(label)
            done = sum(self._percent.values())
        self._show_overall(done)

    def _show_overall(self, done: int) -> None:
        if self._overall is not None:
            message = f"{len(self._finished)}/{self.total} finished"
            self._progress.update(self._overall, completed=done, message=message)

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()
