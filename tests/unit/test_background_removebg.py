"""The removebg backend against a local server that keeps remove.bg's contract."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from PIL import Image

from common.backends.background import new_background
from common.backends.background.removebg import RemoveBgBackground
from common.config import Settings
from common.errors import (
    BackendUnavailable,
    ClosetError,
    ConfigurationError,
    NoGarmentFound,
    PermanentError,
    TransientError,
)
from tests.fakes.removebg_server import FakeRemoveBg
from tests.synthetic import alpha_at, bright_square

KEY = "test-key"


def settings_for(url: str, key: str | None = KEY) -> Settings:
    return Settings.from_env(
        {},
        background_backend="removebg",
        removebg_url=url,
        removebg_api_key=key,
        remote_timeout_s=5.0,
    )


@pytest.fixture
def api() -> Iterator[FakeRemoveBg]:
    with FakeRemoveBg(keys={KEY}, status_by_key={"broke": 402, "busy": 429}) as server:
        yield server


@pytest.fixture
def backend(api: FakeRemoveBg) -> Iterator[RemoveBgBackground]:
    backend = RemoveBgBackground.from_settings(settings_for(api.url))
    yield backend
    backend.close()


def test_cut_out_has_the_foreground_opaque_and_the_background_clear(
    api: FakeRemoveBg,
) -> None:
    backend = new_background(settings_for(api.url))
    image = bright_square()

    cutout = backend.remove(image)

    assert isinstance(backend, RemoveBgBackground)
    assert cutout.mode == "RGBA"
    assert cutout.size == image.size
    assert alpha_at(cutout, 32, 32) == 255
    assert alpha_at(cutout, 2, 2) == 0
    backend.close()


def test_request_follows_the_remove_bg_contract(
    api: FakeRemoveBg, backend: RemoveBgBackground
) -> None:
    backend.remove(bright_square())

    (upload,) = api.uploads
    assert upload.api_key == KEY
    assert upload.fields == {"size": "auto", "format": "png"}
    assert upload.filename == "image.png"
    assert upload.image_size == (64, 64)


def test_a_smaller_result_is_resized_to_the_input() -> None:
    with FakeRemoveBg(keys={KEY}, result_scale=0.5) as api:
        backend = RemoveBgBackground.from_settings(settings_for(api.url))

        cutout = backend.remove(bright_square(64))
        backend.close()

    assert cutout.size == (64, 64)
    assert alpha_at(cutout, 32, 32) > 200
    assert alpha_at(cutout, 2, 2) < 50


def test_the_client_is_reused_across_requests(
    api: FakeRemoveBg, backend: RemoveBgBackground
) -> None:
    backend.remove(bright_square())
    backend.remove(bright_square())

    assert api.calls == 2


def test_no_foreground_is_no_garment_found(api: FakeRemoveBg, backend: RemoveBgBackground) -> None:
    dark = Image.new("RGB", (64, 64), (10, 10, 10))

    with pytest.raises(NoGarmentFound) as raised:
        backend.remove(dark)

    assert raised.value.code == "no_garment_found"
    assert not raised.value.retryable


@pytest.mark.parametrize(
    ("key", "status"),
    [("broke", 402), ("wrong-key", 403)],
    ids=["no-credits", "bad-key"],
)
def test_refusals_for_good_are_backend_unavailable(
    api: FakeRemoveBg, key: str, status: int
) -> None:
    backend = RemoveBgBackground.from_settings(settings_for(api.url, key=key))

    with pytest.raises(BackendUnavailable) as raised:
        backend.remove(bright_square())
    backend.close()

    assert isinstance(raised.value, PermanentError)
    assert raised.value.code == "backend_unavailable"
    assert not raised.value.retryable
    assert str(status) in raised.value.message


def test_a_bad_request_other_than_no_foreground_is_backend_unavailable(
    api: FakeRemoveBg, backend: RemoveBgBackground
) -> None:
    api.fail_next(400, "invalid_parameter")

    with pytest.raises(BackendUnavailable) as raised:
        backend.remove(bright_square())

    assert not isinstance(raised.value, NoGarmentFound)
    assert "invalid_parameter" in raised.value.message


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_rate_limits_and_server_errors_are_transient(
    api: FakeRemoveBg, backend: RemoveBgBackground, status: int
) -> None:
    api.fail_next(status)

    with pytest.raises(TransientError) as raised:
        backend.remove(bright_square())

    assert raised.value.retryable
    assert raised.value.code == "backend_unavailable"


def test_a_transient_failure_does_not_poison_the_next_request(
    api: FakeRemoveBg, backend: RemoveBgBackground
) -> None:
    api.fail_next(503)
    with pytest.raises(TransientError):
        backend.remove(bright_square())

    cutout = backend.remove(bright_square())

    assert alpha_at(cutout, 32, 32) == 255
    assert api.calls == 2


def test_an_unreachable_api_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = RemoveBgBackground.from_settings(
        settings_for(f"http://127.0.0.1:{port}/v1.0/removebg")
    )

    with pytest.raises(TransientError):
        backend.remove(bright_square())
    backend.close()


def test_a_server_that_never_answers_times_out_as_transient() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        settings = Settings.from_env(
            {},
            removebg_url=f"http://127.0.0.1:{port}/v1.0/removebg",
            removebg_api_key=KEY,
            remote_timeout_s=0.2,
        )
        backend = RemoveBgBackground.from_settings(settings)

        with pytest.raises(TransientError, match="timed out"):
            backend.remove(bright_square())
        backend.close()


def test_a_missing_api_key_fails_at_startup() -> None:
    with pytest.raises(ConfigurationError, match="CLOSET_REMOVEBG_API_KEY"):
        RemoveBgBackground.from_settings(settings_for("http://127.0.0.1:9/", key=None))


def test_every_mapped_error_belongs_to_the_pipeline_tree(
    api: FakeRemoveBg, backend: RemoveBgBackground
) -> None:
    api.fail_next(418)

    with pytest.raises(ClosetError) as raised:
        backend.remove(bright_square())

    assert isinstance(raised.value, BackendUnavailable)
