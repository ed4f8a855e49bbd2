"""The studio pipeline in-process: every stage over the local ports, `closet studio`, and what
the job says when a backdrop falls back or a caption cannot be written."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Self

import pytest
from PIL import Image

from common.backends.backdrop import BackdropBackend, BackdropRequest
from common.backends.caption import Caption as WrittenCaption
from common.backends.caption import CaptionBackend
from common.backends.lazy import Backends
from common.cli import main
from common.config import Settings
from common.errors import BackendRefused, CaptionInvalid
from common.pipeline import LocalPipeline
from common.schemas import Job, JobStatus, StageStatus
from tests import badinputs
from tests.unit.test_pipeline import CountingBackground

SAMPLE = Path(__file__).parents[1] / "data" / "sample-shirt.jpg"
FRAMES = {"1:1": (1080, 1080), "4:5": (1080, 1350), "9:16": (1080, 1920)}


class RefusingBackdrop(BackdropBackend):
    """A generative backdrop whose model declines every prompt."""

    name = "gemini"

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def render(self, request: BackdropRequest) -> Image.Image:
        raise BackendRefused("the prompt was blocked (SAFETY)")


class ScriptedCaption(CaptionBackend):
    """Answers a fixed caption, or fails the way a model's unparsable answer does."""

    name = "gemini"

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str | None, str]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    def caption(
        self, image: Image.Image, context: str | None, language: str
    ) -> WrittenCaption | None:
        self.calls.append((context, language))
        if self.error is not None:
            raise self.error
        return WrittenCaption(
            title="Red cotton tee",
            story="A soft red tee, size M.",
            hashtags=["#tee", "#red"],
            alt_text="A red T-shirt on a pastel backdrop",
            language=language,
        )


def make(tmp_path: Path, **backends: object) -> tuple[LocalPipeline, CountingBackground]:
    settings = Settings.from_env({}, local_root=tmp_path / "local")
    background = CountingBackground()
    made = Backends(settings, background=background, generative=None, **backends)  # type: ignore[arg-type]
    runner = LocalPipeline(settings, results_dir=tmp_path / "out", backends=made, retry_delay_s=0)
    return runner, background


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def studio(runner: LocalPipeline, data: bytes, **metadata: str) -> Job:
    return runner.process(data, "photo.jpg", folder="studio/", metadata=metadata)


def test_closet_studio_makes_every_frame_of_the_sample_at_1080_wide(tmp_path, capsys) -> None:
    out = tmp_path / "out"

    code = main(["studio", str(SAMPLE), "--out", str(out), "--style", "gradient", "--json"])

    assert code == 0
    [job] = [Job.model_validate(j) for j in json.loads(capsys.readouterr().out)]
    assert job.kind == "studio" and job.status is JobStatus.DONE and job.progress == 100
    assert job.result is not None
    sizes = {item.label: (item.image.width, item.image.height) for item in job.result.items}
    assert sizes == FRAMES
    for item in job.result.items:
        with Image.open(out / item.image.path) as shot:
            assert shot.size == FRAMES[item.label]
        assert (out / item.thumbnail.path).is_file()
        left, top, right, bottom = item.bbox
        assert 0 < left < right < 1080 and 0 < top < bottom < FRAMES[item.label][1]
    assert (out / job.result.manifest).is_file()  # type: ignore[operator]
    stages = job.stages
    assert stages["studio_prepare"].backend == "classic"
    assert stages["backdrop"].backend == "gradient" and stages["backdrop"].reason is None
    assert stages["upscale"].status.finished
    # No caption backend is configured here: the job is done without words, and says so.
    assert stages["caption"].status is StageStatus.SKIPPED and stages["caption"].code is None
    assert job.result.caption is None
    assert (out / "studio" / job.id / "job.json").is_file()


def test_a_small_subject_is_upscaled_and_a_large_one_is_not(tmp_path) -> None:
    runner, _ = make(tmp_path)

    small = studio(runner, jpeg(badinputs.garment_photo(240, 180)), aspect="9:16")
    large = studio(runner, jpeg(badinputs.garment_photo(3000, 2250)), aspect="1:1")

    assert small.status is JobStatus.DONE and large.status is JobStatus.DONE, small.error
    upscaled = small.stages["upscale"]
    assert upscaled.status is StageStatus.DONE and upscaled.backend == "lanczos/cpu"
    skipped = large.stages["upscale"]
    assert skipped.status is StageStatus.SKIPPED
    assert skipped.reason is not None and "the largest frame shows it at" in skipped.reason


@pytest.mark.parametrize(
    ("metadata", "complaint"),
    [
        ({"style": "neon"}, "`style` must be one of"),
        ({"style": "scene"}, "needs metadata `prompt`"),
        ({"aspect": "1:1,3:2"}, "'3:2'"),
        ({"context": "x" * 2001}, "at most 2000"),
        ({"language": "en; drop table"}, "`language`"),
        ({"subject": "not-an-item"}, "JOB_ID/items/N"),
    ],
)
def test_bad_metadata_fails_with_invalid_request_before_any_model_runs(
    tmp_path, metadata: dict[str, str], complaint: str
) -> None:
    runner, background = make(tmp_path)

    job = studio(runner, jpeg(badinputs.garment_photo()), **metadata)

    assert job.status is JobStatus.FAILED and job.error is not None
    assert (job.error.code, job.error.stage) == ("invalid_request", "studio_prepare")
    assert complaint in job.error.message
    assert background.calls == 0 and "backdrop" not in job.stages


def test_a_finished_closet_item_is_a_subject_only_for_its_owner(tmp_path) -> None:
    caption = ScriptedCaption()
    runner, _ = make(tmp_path, caption=caption)
    closet = runner.process(jpeg(badinputs.garment_photo()), "shirt.jpg", uid="ana")
    item = f"{closet.id}/items/0"

    mine = runner.process(
        b"{}",
        "request.json",
        uid="ana",
        folder="studio/",
        metadata={"subject": item, "context": "size M", "language": "fr"},
    )
    theirs = runner.process(
        b"{}", "request.json", uid="bob", folder="studio/", metadata={"subject": item}
    )

    assert mine.status is JobStatus.DONE, mine.error
    # The item is a cut-out already: no second background removal.
    assert mine.stages["studio_prepare"].backend == "upload-alpha"
    assert mine.result is not None and mine.result.caption is not None
    assert mine.result.caption.title == "Red cotton tee" and mine.result.caption.language == "fr"
    assert caption.calls == [("size M", "fr")]
    assert theirs.status is JobStatus.FAILED and theirs.error is not None
    assert theirs.error.code == "item_not_found"


def test_an_unparsable_caption_skips_the_caption_and_the_job_still_delivers(tmp_path) -> None:
    caption = ScriptedCaption(CaptionInvalid("the answer is not JSON of the caption's shape"))
    runner, _ = make(tmp_path, caption=caption)

    job = studio(runner, jpeg(badinputs.garment_photo()), aspect="1:1,4:5")

    assert job.status is JobStatus.DONE and job.result is not None
    assert len(job.result.items) == 2 and job.result.caption is None
    record = job.stages["caption"]
    assert record.status is StageStatus.SKIPPED and record.code == "caption_invalid"
    assert record.reason is not None and "not JSON" in record.reason
    assert job.result.notes and "no caption" in job.result.notes[0]
    assert "no caption" in job.message


def test_a_refused_generative_backdrop_falls_back_to_the_gradient_and_says_why(tmp_path) -> None:
    runner, _ = make(tmp_path, backdrop=RefusingBackdrop())

    job = studio(
        runner, jpeg(badinputs.garment_photo()), aspect="1:1", style="scene", prompt="a beach"
    )

    assert job.status is JobStatus.DONE and job.result is not None
    record = job.stages["backdrop"]
    assert record.status is StageStatus.DONE and record.backend == "gradient"
    assert record.reason is not None and "refused" in record.reason and "SAFETY" in record.reason
    assert job.result.notes == [f"backdrop: {record.reason}"]


def test_progress_only_rises_and_the_branches_are_named_while_they_run(tmp_path) -> None:
    runner, _ = make(tmp_path)
    seen: list[tuple[int, str]] = []
    original = runner.start

    def start_and_listen(event):  # type: ignore[no-untyped-def]
        job = original(event)
        runner.jobs.listen(job.id, lambda j: seen.append((j.progress, j.message)))
        return job

    runner.start = start_and_listen  # type: ignore[method-assign]
    job = studio(runner, jpeg(badinputs.garment_photo()), aspect="1:1")

    progress = [p for p, _ in seen]
    assert job.status is JobStatus.DONE and progress == sorted(progress) and progress[-1] == 100
    messages = {m for _, m in seen}
    assert "Sharpening the subject · Making the backdrop · Writing the caption" in messages


def test_closet_studio_of_an_item_of_an_earlier_run_keeps_its_owner(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["run", str(SAMPLE), "--out", str(out), "--uid", "ana", "--json"]) == 0
    [closet] = json.loads(capsys.readouterr().out)
    item = out / closet["result"]["items"][0]["image"]["path"]

    code = main(["studio", str(item), "--out", str(out), "--aspect", "4:5", "--json"])

    [job] = [Job.model_validate(j) for j in json.loads(capsys.readouterr().out)]
    assert code == 0 and job.status is JobStatus.DONE, job.error
    assert job.uid == "ana" and job.inputs is not None
    assert job.inputs.subject == f"{closet['id']}/items/0"
    assert job.stages["studio_prepare"].backend == "upload-alpha"
    assert [item.label for item in job.result.items] == ["4:5"]  # type: ignore[union-attr]
