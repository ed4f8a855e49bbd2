"""The `api` function on the emulator topology (`closet dev`), called as the web app calls it:
ID tokens of two users from the Firebase Auth emulator, signed URLs used against
fake-gcs-server, the job that the upload starts followed in Firestore."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.cloud import firestore, storage  # type: ignore[attr-defined]

from common.adapters.firestore import FirestoreJobStore
from common.devstack import DevStack
from common.emulators import SignedIn
from common.schemas import Job, JobStatus
from tests.integration.conftest import running_stack
from tests.integration.test_end_to_end import wait_for

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-shirt.jpg"
ORIGIN = "http://localhost:5173"
"""The app's origin the api is told to allow (`closet dev` would allow its own page's)."""


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    with running_stack("closet-api", {"CLOSET_WEB_ORIGIN": ORIGIN}) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(stack: DevStack) -> Iterator[httpx.Client]:
    assert stack.api_url is not None
    with httpx.Client(base_url=stack.api_url, timeout=60, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def alice(stack: DevStack) -> SignedIn:
    assert stack.auth is not None
    return stack.auth.sign_up()


@pytest.fixture(scope="module")
def bob(stack: DevStack) -> SignedIn:
    assert stack.auth is not None
    return stack.auth.sign_up(email="bob@example.com")


@pytest.fixture(scope="module")
def uploads(stack: DevStack) -> Any:
    return storage.Client(project=stack.project).bucket(stack.settings.uploads_bucket)


def bearer(user: SignedIn | str) -> dict[str, str]:
    token = user.id_token if isinstance(user, SignedIn) else user
    return {"Authorization": f"Bearer {token}"}


def photo_request(size: int | None = None, content_type: str = "image/jpeg") -> dict[str, Any]:
    return {
        "filename": "my shirt.JPG",
        "contentType": content_type,
        "size": size or SAMPLE.stat().st_size,
    }


def with_claims(user: SignedIn, **changes: object) -> str:
    """The user's own emulator token with some claims changed (the emulator signs nothing)."""
    header, payload, signature = user.id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    encoded = base64.urlsafe_b64encode(json.dumps(claims | changes).encode()).rstrip(b"=")
    return f"{header}.{encoded.decode()}.{signature}"


def wait_for_job(stack: DevStack, job_id: str) -> Job:
    return wait_for(FirestoreJobStore(firestore.Client(project=stack.project)), job_id)


# --- who may call ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "unauthenticated"),
        ({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "unauthenticated"),
        ({"Authorization": "Bearer not-a-token"}, "invalid_token"),
    ],
    ids=["missing", "not-bearer", "garbage"],
)
def test_a_request_without_a_valid_token_is_refused(api, headers, code):
    for answer in (
        api.post("/uploads", json=photo_request(), headers=headers),
        api.get("/jobs/anything/images", headers=headers),
    ):
        assert answer.status_code == 401
        assert answer.json()["code"] == code
        assert answer.json()["message"]


def test_an_expired_token_is_refused(api, alice):
    an_hour_ago = int(time.time()) - 3600
    answer = api.post(
        "/uploads", json=photo_request(), headers=bearer(with_claims(alice, exp=an_hour_ago))
    )

    assert answer.status_code == 401
    assert answer.json()["code"] == "token_expired"
    # The same token, current, is accepted: the refusal is about the expiry alone.
    assert api.post("/uploads", json=photo_request(), headers=bearer(alice)).status_code == 201


def test_a_token_of_another_firebase_project_is_refused(api, alice):
    token = with_claims(
        alice,
        aud="demo-somebody-else",
        iss="https://securetoken.google.com/demo-somebody-else",
    )

    answer = api.post("/uploads", json=photo_request(), headers=bearer(token))

    assert answer.status_code == 401
    assert answer.json()["code"] == "invalid_token"


# --- what may be uploaded --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (photo_request(size=26 * 1024 * 1024), 413, "image_too_large"),
        (photo_request(content_type="application/pdf"), 415, "unsupported_format"),
        (photo_request(content_type="image/tiff"), 415, "unsupported_format"),
        ({"filename": "a.jpg", "contentType": "image/jpeg"}, 400, "invalid_request"),
        ({"filename": "a.jpg", "contentType": "image/jpeg", "size": 0}, 400, "invalid_request"),
        ("not an object", 400, "invalid_request"),
    ],
    ids=["too-large", "pdf", "tiff", "no-size", "zero-size", "not-json-object"],
)
def test_a_refused_photo_is_refused_before_anything_is_signed_or_stored(
    api, alice, uploads, body, status, code
):
    answer = api.post("/uploads", json=body, headers=bearer(alice))

    assert answer.status_code == status
    assert answer.json()["code"] == code
    assert "uploadUrl" not in answer.json()
    assert list(uploads.list_blobs(prefix=f"users/{alice.uid}/")) == []


# --- the signed upload and the job it starts -------------------------------------------------


def test_an_upload_through_the_signed_url_starts_the_job_with_the_id_handed_out(
    api, stack, alice, bob, uploads
):
    ticket = api.post("/uploads", json=photo_request(), headers=bearer(alice))
    assert ticket.status_code == 201
    body = ticket.json()
    job_id = body["jobId"]
    url = urllib.parse.urlsplit(body["uploadUrl"])
    query = urllib.parse.parse_qs(url.query)
    signed = query["X-Goog-SignedHeaders"][0].split(";")

    # A V4 signature over the object under the caller's folder and over the headers that
    # carry the job id, the content type and the size limit.
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert url.path.startswith(f"/{stack.settings.uploads_bucket}/users/{alice.uid}/{job_id}-")
    assert {"content-type", "x-goog-meta-job-id", "x-goog-content-length-range"} <= set(signed)
    assert body["headers"]["x-goog-meta-job-id"] == job_id
    assert body["headers"]["Content-Type"] == "image/jpeg"

    put = httpx.put(
        body["uploadUrl"], content=SAMPLE.read_bytes(), headers=body["headers"], timeout=60
    )
    assert put.status_code == 200, put.text

    stored = uploads.get_blob(body["object"]["name"])
    assert stored is not None and stored.metadata == {"job-id": job_id}
    job = wait_for_job(stack, job_id)
    assert job.id == job_id and job.uid == alice.uid
    assert job.status is JobStatus.DONE, job.error

    # The owner gets short-lived URLs of every image; they serve the images.
    images = api.get(f"/jobs/{job_id}/images", headers=bearer(alice))
    assert images.status_code == 200
    listed = images.json()
    assert listed["status"] == "done" and len(listed["items"]) == len(job.result.items)
    first = listed["items"][0]
    assert first["label"] == job.result.items[0].label
    image = httpx.get(first["image"]["url"], timeout=60)
    assert image.status_code == 200
    assert image.content[:4] == b"RIFF"  # the WebP finalize wrote
    assert "X-Goog-Signature" in first["thumbnail"]["url"]
    assert "X-Goog-Expires=900" in first["image"]["url"]

    # Nobody else does, and nothing is listed without a token.
    other = api.get(f"/jobs/{job_id}/images", headers=bearer(bob))
    assert other.status_code == 403 and other.json()["code"] == "forbidden"
    assert api.get(f"/jobs/{job_id}/images").status_code == 401


def test_images_of_a_job_that_does_not_exist_are_not_found(api, alice):
    for job_id in ("0" * 32, "no such id!"):
        answer = api.get(f"/jobs/{urllib.parse.quote(job_id)}/images", headers=bearer(alice))
        assert answer.status_code == 404
        assert answer.json()["code"] == "job_not_found"


# --- HTTP around it --------------------------------------------------------------------------


def test_the_apps_origin_may_call_from_a_browser_and_no_other(api, alice):
    preflight = api.options(
        "/uploads",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()

    answer = api.post("/uploads", json=photo_request(), headers={**bearer(alice), "Origin": ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    refused = api.options("/uploads", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert refused.status_code == 403


def test_unknown_paths_and_methods_answer_json(api, alice):
    missing = api.get("/nothing-here", headers=bearer(alice))
    wrong = api.get("/uploads", headers=bearer(alice))

    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("content_type", "extension"),
    [("image/heic", "heic"), ("image/heif", "heic"), ("image/avif", "avif")],
)
def test_phone_photos_get_an_upload_url(api, alice, content_type, extension):
    answer = api.post(
        "/uploads", json=photo_request(content_type=content_type), headers=bearer(alice)
    )

    assert answer.status_code == 201
    assert answer.json()["object"]["name"].endswith(f"-my-shirt.{extension}")
    assert answer.json()["headers"]["Content-Type"] == content_type


# --- studio shots ----------------------------------------------------------------------------


def studio_request(studio: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**photo_request(), "studio": studio, **changes}


def item_request(subject: str, **studio: Any) -> dict[str, Any]:
    """A studio shot of a closet item: no photo, the request itself is the (JSON) upload."""
    body = json.dumps({"subject": subject, **studio}).encode()
    return {
        "filename": "request.json",
        "contentType": "application/json",
        "size": len(body),
        "studio": {"subject": subject, **studio},
    }


def studio_objects(uploads: Any, user: SignedIn) -> list[str]:
    return [blob.name for blob in uploads.list_blobs(prefix=f"users/{user.uid}/studio/")]


def put(ticket: dict[str, Any], content: bytes) -> None:
    answer = httpx.put(ticket["uploadUrl"], content=content, headers=ticket["headers"], timeout=60)
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def alice_closet(api: httpx.Client, stack: DevStack, alice: SignedIn) -> Job:
    """A finished closet job of alice's, uploaded as the web app uploads."""
    ticket = api.post("/uploads", json=photo_request(), headers=bearer(alice)).json()
    put(ticket, SAMPLE.read_bytes())
    job = wait_for_job(stack, ticket["jobId"])
    assert job.status is JobStatus.DONE and job.result is not None, job.error
    return job


@pytest.mark.parametrize(
    ("studio", "field"),
    [
        ({"style": "neon"}, "`style`"),
        ({"style": "scene"}, "`prompt`"),
        ({"aspects": ["1:1", "2:1"]}, "`aspect`"),
        ({"aspects": "1:1"}, "studio.aspects"),
        ({"context": "x" * 2001}, "`context`"),
        ({"context": "taille M, coton bio, très doux"}, "`studio.context`"),
        ({"language": "en; drop table"}, "`language`"),
        ({"colour": "red"}, "studio.colour"),
        ({"subject": "../../etc/passwd"}, "`studio.subject`"),
    ],
    ids=[
        "style",
        "scene-no-prompt",
        "aspect",
        "aspects-not-list",
        "context-long",
        "non-ascii",
        "language",
        "unknown-field",
        "bad-subject",
    ],
)
def test_a_bad_studio_request_is_refused_naming_its_field(api, alice, uploads, studio, field):
    body = item_request(studio.pop("subject")) if "subject" in studio else studio_request(studio)
    before = studio_objects(uploads, alice)

    answer = api.post("/uploads", json=body, headers=bearer(alice))

    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_request"
    assert field in answer.json()["message"]
    assert "uploadUrl" not in answer.json()
    assert studio_objects(uploads, alice) == before


def test_a_studio_photo_is_signed_with_its_request_and_shot_in_every_aspect_asked(
    api, stack, alice, bob, uploads
):
    studio = {
        "style": "gradient",
        "aspects": ["4:5", "1:1"],
        "context": "size M,\n  organic cotton",
        "language": "fr",
    }
    ticket = api.post("/uploads", json=studio_request(studio), headers=bearer(alice))
    assert ticket.status_code == 201, ticket.text
    body = ticket.json()
    signed = urllib.parse.parse_qs(urllib.parse.urlsplit(body["uploadUrl"]).query)
    signed_headers = set(signed["X-Goog-SignedHeaders"][0].split(";"))

    # The request rides in the object's metadata, bound into the signature like the job id.
    assert body["object"]["name"].startswith(f"users/{alice.uid}/studio/{body['jobId']}-")
    metadata = {
        "x-goog-meta-style": "gradient",
        "x-goog-meta-aspect": "4:5,1:1",
        "x-goog-meta-context": "size M, organic cotton",  # on one line, as a header carries it
        "x-goog-meta-language": "fr",
    }
    assert {k: v for k, v in body["headers"].items() if k in metadata} == metadata
    assert set(metadata) <= signed_headers
    put(body, SAMPLE.read_bytes())

    job = wait_for_job(stack, body["jobId"])
    assert job.kind == "studio" and job.status is JobStatus.DONE, job.error
    assert job.inputs is not None and job.inputs.aspects == ["4:5", "1:1"]
    assert job.inputs.context == "size M, organic cotton"

    images = api.get(f"/jobs/{job.id}/images", headers=bearer(alice))
    assert images.status_code == 200
    listed = images.json()
    assert listed["kind"] == "studio"
    assert [item["label"] for item in listed["items"]] == ["4:5", "1:1"]
    for item in listed["items"]:
        frame = httpx.get(item["image"]["url"], timeout=60)
        assert frame.status_code == 200 and frame.content[:4] == b"RIFF"
        assert item["image"]["width"] == 1080
    # This stack has no generative credentials: caption backend `none`, which is no shortfall.
    assert listed["caption"] is None and listed["notes"] == []
    assert api.get(f"/jobs/{job.id}/images", headers=bearer(bob)).status_code == 403


def test_a_studio_shot_of_a_closet_item_uploads_only_its_request(
    api, stack, alice, alice_closet, uploads
):
    subject = f"{alice_closet.id}/items/0"
    request = item_request(subject, style="white", aspects=["9:16"])
    ticket = api.post("/uploads", json=request, headers=bearer(alice))
    assert ticket.status_code == 201, ticket.text
    body = ticket.json()
    assert body["headers"]["x-goog-meta-subject"] == subject
    assert body["headers"]["Content-Type"] == "application/json"
    assert body["object"]["name"].endswith("-request.json")
    # A request, not a photo: the size limit is the request's.
    assert body["headers"]["x-goog-content-length-range"] == "0,16384"
    put(body, json.dumps(request["studio"]).encode())

    job = wait_for_job(stack, body["jobId"])
    assert job.kind == "studio" and job.status is JobStatus.DONE, job.error
    assert job.inputs is not None and job.inputs.subject == subject
    listed = api.get(f"/jobs/{job.id}/images", headers=bearer(alice)).json()
    assert [item["label"] for item in listed["items"]] == ["9:16"]
    assert httpx.get(listed["items"][0]["image"]["url"], timeout=60).status_code == 200


def test_a_closet_item_is_taken_into_the_studio_by_its_owner_only(
    api, alice, bob, alice_closet, uploads
):
    mine = f"{alice_closet.id}/items/0"
    before = {user.uid: studio_objects(uploads, user) for user in (alice, bob)}
    cases = [
        # Somebody else's item, an item that does not exist, a job that does not exist.
        (bob, item_request(mine), 404, "item_not_found"),
        (alice, item_request(f"{alice_closet.id}/items/99"), 404, "item_not_found"),
        (alice, item_request(f"{'0' * 32}/items/0"), 404, "item_not_found"),
        # The request travels as JSON: with a subject no photo is sent, and no JSON without one.
        (alice, studio_request({"subject": mine}), 400, "invalid_request"),
        (alice, {**item_request(mine), "studio": {}}, 400, "invalid_request"),
        (alice, {**item_request(mine), "size": 20_000}, 413, "request_too_large"),
    ]
    for user, body, status, code in cases:
        answer = api.post("/uploads", json=body, headers=bearer(user))
        assert (answer.status_code, answer.json()["code"]) == (status, code), body
        assert "uploadUrl" not in answer.json()
    assert {user.uid: studio_objects(uploads, user) for user in (alice, bob)} == before
