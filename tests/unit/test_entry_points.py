"""The real functions-framework app, driven through its test client, with local ports."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from cloudevents.conversion import to_structured
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from common import service as service_module
from common.adapters.folder import FolderBlobStore
from common.adapters.inline import InlineBus
from common.adapters.memory import MemoryJobStore
from common.backends.segmentation.single import SingleGarment
from common.config import get_settings
from common.errors import TransientError
from common.schemas import Job, JobStatus, JobUpdate, Source, StageRecord, StageStatus
from common.service import Ports
from tests.unit.test_events import as_cloud_event, load_golden, request_body

# The framework's own factory is untyped; this is the signature it has.
create_app: Callable[..., Flask] = functions_framework.create_app
ROOT = Path(__file__).parents[2]
JOB_ID = "job-123456"  # the job of the stage-message golden events
UPLOAD_JOB_ID = "client-job-0001"  # the `job-id` metadata of the upload golden events


@pytest.fixture
def ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ports]:
    """Local adapters for every service an entry point builds at import."""
    for key in list(os.environ):
        if key.startswith("CLOSET_") or key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CLOSET_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("CLOSET_BACKGROUND_BACKEND", "classic")
    monkeypatch.setenv("CLOSET_SEGMENTATION_BACKEND", "single")
    get_settings.cache_clear()
    local = Ports(jobs=MemoryJobStore(), bus=InlineBus(), blobs=FolderBlobStore(tmp_path))
    monkeypatch.setattr(service_module, "ports_factory", lambda settings: local)
    # create_app appends the function's folder to sys.path and registers it as `main`.
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield local
    sys.modules.pop("main", None)
    get_settings.cache_clear()


def client_for(function: str) -> FlaskClient:
    source = ROOT / "functions" / function / "main.py"
    app: Flask = create_app(target=function, source=str(source))
    return app.test_client()


def post_binary(client: FlaskClient, golden: dict[str, Any]) -> Any:
    return client.post(golden["path"], headers=golden["headers"], data=request_body(golden))


def post_structured(client: FlaskClient, golden: dict[str, Any]) -> Any:
    headers, body = to_structured(as_cloud_event(golden))
    return client.post("/", headers=headers, data=body)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def photo() -> bytes:
    """A light grey backdrop with one dark garment-sized block: the classic backend's case."""
    image = Image.new("RGB", (240, 320), (235, 235, 235))
    image.paste((40, 60, 140), (60, 70, 180, 260))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def arrange_segment_job(ports: Ports) -> None:
    settings = get_settings()
    ports.jobs.create(
        Job(
            id=JOB_ID,
            uid="alice",
            source=Source(
                bucket=settings.uploads_bucket, name="users/alice/photo.jpg", generation="1"
            ),
        )
    )
    image = Image.new("RGB", (120, 160), (235, 235, 235))
    cutout = Image.new("RGBA", (120, 160), (0, 0, 0, 0))
    cutout.paste((40, 60, 140, 255), (30, 35, 90, 130))
    ports.blobs.write(settings.work_bucket, f"work/{JOB_ID}/input.png", png(image), "image/png")
    ports.blobs.write(settings.work_bucket, f"work/{JOB_ID}/cutout.png", png(cutout), "image/png")


@pytest.mark.parametrize(
    ("golden", "post"),
    [
        ("pubsub-push-stage-message", post_binary),
        ("eventarc-pubsub-stage-message-binary", post_binary),
        ("eventarc-pubsub-stage-message-binary", post_structured),
    ],
)
def test_segment_runs_the_stage_for_a_stage_message(ports: Ports, golden: str, post: Any) -> None:
    arrange_segment_job(ports)
    client = client_for("segment")

    response = post(client, load_golden(golden))

    assert response.status_code == 200
    job = ports.jobs.get(JOB_ID)
    assert job is not None
    assert job.stages["segment"].status is StageStatus.DONE
    assert job.progress == 60
    assert isinstance(ports.bus, InlineBus)
    following = ports.bus.pop()
    assert following is not None
    assert following.stage == "expand"
    assert following.refs["segments"] == f"work/{JOB_ID}/segments.json"


def test_segment_acks_a_malformed_envelope_and_changes_nothing(ports: Ports) -> None:
    arrange_segment_job(ports)
    before = ports.jobs.get(JOB_ID)
    client = client_for("segment")

    response = post_binary(client, load_golden("pubsub-push-malformed-data"))

    assert response.status_code == 200
    assert ports.jobs.get(JOB_ID) == before
    assert isinstance(ports.bus, InlineBus)
    assert len(ports.bus) == 0


def test_segment_answers_5xx_on_a_transient_error(
    ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrange_segment_job(ports)
    client = client_for("segment")

    def unavailable(*args: object) -> list[Any]:
        raise TransientError("model server answered 503")

    monkeypatch.setattr(SingleGarment, "segment", unavailable)

    response = post_binary(client, load_golden("pubsub-push-stage-message"))

    assert response.status_code >= 500
    job = ports.jobs.get(JOB_ID)
    assert job is not None
    assert job.stages["segment"].status is StageStatus.RUNNING
    assert "model server answered 503" in (job.stages["segment"].reason or "")
    assert isinstance(ports.bus, InlineBus)
    assert len(ports.bus) == 0


@pytest.mark.parametrize("post", [post_binary, post_structured])
def test_segment_answers_a_warm_up_by_touching_the_model_without_running_the_stage(
    ports: Ports, monkeypatch: pytest.MonkeyPatch, post: Any
) -> None:
    arrange_segment_job(ports)
    before = ports.jobs.get(JOB_ID)
    warmed: list[bool] = []
    monkeypatch.setattr(SingleGarment, "warmup", lambda self: warmed.append(True))
    client = client_for("segment")

    response = post(client, load_golden("warmup"))

    assert response.status_code == 200
    assert warmed == [True]
    assert ports.jobs.get(JOB_ID) == before
    assert isinstance(ports.bus, InlineBus)
    assert len(ports.bus) == 0


@pytest.mark.parametrize(
    ("golden", "post"),
    [
        ("gcs-notification-finalize", post_binary),
        ("eventarc-storage-finalized-binary", post_binary),
        ("eventarc-storage-finalized-structured", post_binary),
        ("eventarc-storage-finalized-binary", post_structured),
    ],
)
def test_ingest_starts_the_job_and_runs_ingest_for_an_upload(
    ports: Ports, golden: str, post: Any
) -> None:
    settings = get_settings()
    ports.blobs.write(settings.uploads_bucket, "users/alice/photo.jpg", photo(), "image/jpeg")
    client = client_for("ingest")

    response = post(client, load_golden(golden))

    assert response.status_code == 200
    job = ports.jobs.get(UPLOAD_JOB_ID)
    assert job is not None
    assert job.uid == "alice"
    assert job.status is JobStatus.RUNNING
    assert job.stages["ingest"].status is StageStatus.DONE
    assert isinstance(ports.bus, InlineBus)
    following = ports.bus.pop()
    # The upload event was ingest's delivery: the only message sent is the next stage's.
    assert following is not None
    assert following.stage == "remove_background"
    assert following.refs["input"] == f"work/{UPLOAD_JOB_ID}/input.tiff"
    assert len(ports.bus) == 0


def test_ingest_treats_a_redelivered_upload_as_a_duplicate(ports: Ports) -> None:
    settings = get_settings()
    ports.blobs.write(settings.uploads_bucket, "users/alice/photo.jpg", photo(), "image/jpeg")
    client = client_for("ingest")
    golden = load_golden("gcs-notification-finalize")
    first = post_binary(client, golden)
    assert isinstance(ports.bus, InlineBus)
    following = ports.bus.pop()
    assert following is not None
    # The next stage has begun: the redelivered upload must not start it again.
    ports.jobs.advance(
        following.job_id,
        JobUpdate(stages={"remove_background": StageRecord(status=StageStatus.RUNNING)}),
    )

    second = post_binary(client, golden)

    assert (first.status_code, second.status_code) == (200, 200)
    assert len(ports.bus) == 0


@pytest.mark.parametrize(
    "golden",
    ["gcs-notification-delete", "gcs-notification-folder", "pubsub-push-malformed-message"],
)
def test_ingest_acks_events_that_start_no_job(ports: Ports, golden: str) -> None:
    client = client_for("ingest")

    response = post_binary(client, load_golden(golden))

    assert response.status_code == 200
    assert ports.jobs.get(UPLOAD_JOB_ID) is None
    assert isinstance(ports.bus, InlineBus)
    assert len(ports.bus) == 0


@pytest.mark.parametrize(
    ("code", "expected"),
    [(None, "stage_failed"), ("backend_unavailable", "backend_unavailable")],
)
def test_dead_letter_fails_the_job_naming_stage_and_last_error(
    ports: Ports, code: str | None, expected: str
) -> None:
    arrange_segment_job(ports)
    failing = StageRecord(
        status=StageStatus.RUNNING, attempts=5, reason="KeyError: 'mask'", code=code
    )
    ports.jobs.advance(JOB_ID, JobUpdate(stages={"segment": failing}))
    client = client_for("dead_letter")

    response = post_binary(client, load_golden("pubsub-push-dead-letter"))

    assert response.status_code == 200
    job = ports.jobs.get(JOB_ID)
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert (job.error.code, job.error.stage) == (expected, "segment")
    assert "5 times" in job.error.message and "KeyError" in job.error.message


def test_dead_letter_leaves_a_job_whose_message_never_reached_its_function(
    ports: Ports,
) -> None:
    """No attempt was recorded: the function was down. The watchdog re-drives such a job."""
    arrange_segment_job(ports)
    client = client_for("dead_letter")

    response = post_binary(client, load_golden("pubsub-push-dead-letter"))

    assert response.status_code == 200
    job = ports.jobs.get(JOB_ID)
    assert job is not None and not job.status.terminal


def tryon_upload_golden(name: str = "users/alice/tryon/me.jpg") -> dict[str, Any]:
    """The captured finalize notification, for a person photo under `tryon/`."""
    golden = load_golden("gcs-notification-finalize")
    message = golden["body"]["message"]
    resource = json.loads(base64.b64decode(message["data"]))
    resource["name"] = name
    resource["metadata"] = {"job-id": "tryon-job-0001", "garment": "closet-job-01/items/0"}
    message["data"] = base64.b64encode(json.dumps(resource).encode()).decode()
    message["attributes"]["objectId"] = name
    return golden


def test_ingest_starts_a_tryon_job_and_hands_it_to_tryon_prepare(ports: Ports) -> None:
    settings = get_settings()
    ports.blobs.write(settings.uploads_bucket, "users/alice/tryon/me.jpg", photo(), "image/jpeg")
    client = client_for("ingest")

    response = post_binary(client, tryon_upload_golden())

    assert response.status_code == 200
    job = ports.jobs.get("tryon-job-0001")
    assert job is not None and job.kind == "tryon" and job.stage == "tryon_prepare"
    assert job.inputs is not None and job.inputs.garment == "closet-job-01/items/0"
    assert job.inputs.person == "users/alice/tryon/me.jpg"
    assert "ingest" not in job.stages  # ingest runs closet jobs only
    assert isinstance(ports.bus, InlineBus)
    message = ports.bus.pop()
    assert message is not None and (message.stage, message.kind) == ("tryon_prepare", "tryon")
    assert len(ports.bus) == 0

    # Redelivered before tryon_prepare began: the (possibly lost) message is sent again.
    post_binary(client, tryon_upload_golden())
    assert len(ports.bus) == 1
    ports.bus.pop()
    # Once it began, a redelivery starts nothing.
    ports.jobs.advance(
        "tryon-job-0001",
        JobUpdate(stages={"tryon_prepare": StageRecord(status=StageStatus.RUNNING)}),
    )
    post_binary(client, tryon_upload_golden())
    assert len(ports.bus) == 0


def test_a_tryon_function_ignores_a_closet_jobs_message(ports: Ports) -> None:
    arrange_segment_job(ports)  # a closet job waiting at segment
    client = client_for("tryon_generate")
    golden = load_golden("pubsub-push-stage-message")
    message = golden["body"]["message"]
    body = json.loads(base64.b64decode(message["data"]))
    body["stage"] = "tryon_generate"
    message["data"] = base64.b64encode(json.dumps(body).encode()).decode()

    response = post_binary(client, golden)

    assert response.status_code == 200
    job = ports.jobs.get(JOB_ID)
    assert job is not None and "tryon_generate" not in job.stages
