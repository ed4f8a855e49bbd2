"""The progress display of `closet run` and `closet watch`, rendered by a real rich console."""

from __future__ import annotations

import io
import re

from rich.cells import cell_len
from rich.console import Console

from common.progress import OVERALL, JobsProgress
from common.schemas import Job, JobStatus, Source

LONG = "a photo whose file name is far longer than the terminal is wide.jpg"


def job(progress: int, message: str, status: JobStatus = JobStatus.RUNNING) -> Job:
    source = Source(bucket="uploads", name="users/u/photo.jpg", generation="1")
    return Job(id="job", uid="u", status=status, progress=progress, message=message, source=source)


def rendered_rows(output: str) -> list[str]:
    """Every row written, without the escape sequences (cursor moves, colours)."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)
    return [row for row in re.split(r"[\r\n]", text) if row.strip()]


def test_on_a_terminal_every_row_fits_its_width_with_an_overall_bar():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=50, color_system=None)

    with JobsProgress(console, total=2) as progress:
        first = progress.track(LONG)
        second = progress.track("b.jpg")
        first(job(35, "Removing the background of a rather large photograph"))
        second(job(100, "Done", JobStatus.DONE))
        progress.finish("b.jpg")

    rows = rendered_rows(out.getvalue())
    assert rows, out.getvalue()
    assert all(cell_len(row) <= 50 for row in rows)
    last = rows[-3:]
    assert last[0].startswith(OVERALL) and "1/2 finished" in last[0]
    assert "68%" in last[0]  # (35 + 100) / 200
    assert last[1].startswith("a photo whose") and "…" in last[1] and "35%" in last[1]
    assert last[2].startswith("b.jpg") and "100%" in last[2]


def test_one_job_has_no_overall_bar():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system=None)

    with JobsProgress(console, total=1) as progress:
        progress.track("only.jpg")(job(60, "Found 1 garment"))

    assert OVERALL not in out.getvalue()


def test_elsewhere_each_change_is_one_plain_line():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=20)

    with JobsProgress(console, total=2) as progress:
        listener = progress.track(LONG)
        listener(job(10, "Photo accepted"))
        listener(job(10, "Photo accepted"))
        listener(job(100, "Done", JobStatus.DONE))

    assert out.getvalue().splitlines() == [
        f"{LONG}:  10% ingest: Photo accepted",
        f"{LONG}: 100% ingest: Done",
    ]
