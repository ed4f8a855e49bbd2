"""infra/firestore.rules on the Firestore emulator, through its REST API as a web client calls it.

The tokens are the Auth emulator's own (unsigned ID tokens, which the Firestore emulator reads
from `Authorization: Bearer`); the documents are seeded with the emulator's `Bearer owner`
token, as the functions' service accounts write them, which the rules do not govern.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from common.devstack import RULES
from common.emulators import AuthEmulator, FirestoreEmulator, SignedIn
from tests.integration.conftest import started

PROJECT = "closet-rules"


@pytest.fixture(scope="module")
def firestore() -> Iterator[FirestoreEmulator]:
    with started(FirestoreEmulator(rules=RULES)) as emulator:
        yield emulator


class Client:
    """A Firestore REST client with one caller's ID token (or none)."""

    def __init__(self, emulator: FirestoreEmulator, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(headers=headers, timeout=30, trust_env=False)
        self.documents = f"{emulator.url}/v1/projects/{PROJECT}/databases/(default)/documents"

    def get(self, job_id: str) -> httpx.Response:
        return self.http.get(f"{self.documents}/jobs/{job_id}")

    def query(self, uid: str | None) -> httpx.Response:
        query: dict[str, Any] = {"from": [{"collectionId": "jobs"}]}
        if uid is not None:
            query["where"] = {
                "fieldFilter": {
                    "field": {"fieldPath": "uid"},
                    "op": "EQUAL",
                    "value": {"stringValue": uid},
                }
            }
        return self.http.post(f"{self.documents}:runQuery", json={"structuredQuery": query})

    def set(self, job_id: str, fields: dict[str, str]) -> httpx.Response:
        body = {"fields": {name: {"stringValue": value} for name, value in fields.items()}}
        return self.http.patch(f"{self.documents}/jobs/{job_id}", json=body)

    def create(self, fields: dict[str, str]) -> httpx.Response:
        body = {"fields": {name: {"stringValue": value} for name, value in fields.items()}}
        return self.http.post(f"{self.documents}/jobs", json=body)

    def delete(self, job_id: str) -> httpx.Response:
        return self.http.delete(f"{self.documents}/jobs/{job_id}")


@pytest.fixture(scope="module")
def alice(auth_emulator: AuthEmulator) -> SignedIn:
    return auth_emulator.sign_up()


@pytest.fixture(scope="module")
def bob(auth_emulator: AuthEmulator) -> SignedIn:
    return auth_emulator.sign_up(email="bob@example.com")


@pytest.fixture(scope="module")
def jobs(firestore: FirestoreEmulator, alice: SignedIn, bob: SignedIn) -> dict[str, str]:
    """One job of each user, written as the functions write them."""
    server = Client(firestore, "owner")
    seeded = {"alice": "job-of-alice", "bob": "job-of-bob"}
    for who, job_id in seeded.items():
        uid = alice.uid if who == "alice" else bob.uid
        assert server.set(job_id, {"uid": uid, "status": "running"}).status_code == 200
    return seeded


def test_the_owner_reads_their_job(firestore, alice, jobs):
    answer = Client(firestore, alice.id_token).get(jobs["alice"])

    assert answer.status_code == 200
    assert answer.json()["fields"]["uid"]["stringValue"] == alice.uid


def test_another_user_and_an_anonymous_caller_are_refused(firestore, bob, jobs):
    assert Client(firestore, bob.id_token).get(jobs["alice"]).status_code == 403
    assert Client(firestore, None).get(jobs["alice"]).status_code == 403
    # The same token reads its own job: the refusal above is about ownership.
    assert Client(firestore, bob.id_token).get(jobs["bob"]).status_code == 200


def test_a_job_not_created_yet_reads_as_missing_to_a_signed_in_user_only(firestore, alice):
    # The web app listens on the job id the api handed out before its upload creates the job.
    assert Client(firestore, alice.id_token).get("job-not-yet").status_code == 404
    assert Client(firestore, None).get("job-not-yet").status_code == 403


def test_a_list_must_be_filtered_on_the_callers_uid(firestore, alice, bob, jobs):
    as_alice = Client(firestore, alice.id_token)

    own = as_alice.query(alice.uid)
    assert own.status_code == 200
    names = [row["document"]["name"] for row in own.json() if "document" in row]
    assert [name.rsplit("/", 1)[-1] for name in names] == [jobs["alice"]]
    assert as_alice.query(None).status_code == 403
    assert as_alice.query(bob.uid).status_code == 403
    assert Client(firestore, None).query(alice.uid).status_code == 403


@pytest.mark.parametrize("who", ["owner", "other", "anonymous"])
def test_no_client_writes_a_job(firestore, alice, bob, jobs, who):
    token = {"owner": alice.id_token, "other": bob.id_token, "anonymous": None}[who]
    client = Client(firestore, token)

    assert client.set(jobs["alice"], {"uid": alice.uid, "status": "done"}).status_code == 403
    assert client.create({"uid": alice.uid, "status": "queued"}).status_code == 403
    assert client.set("job-new", {"uid": alice.uid}).status_code == 403
    assert client.delete(jobs["alice"]).status_code == 403
    # Nothing changed.
    seen = Client(firestore, alice.id_token).get(jobs["alice"]).json()
    assert seen["fields"]["status"]["stringValue"] == "running"


def test_other_collections_are_closed_to_clients(firestore, alice):
    client = Client(firestore, alice.id_token)
    answer = client.http.get(f"{client.documents}/cache/anything")

    assert answer.status_code == 403
