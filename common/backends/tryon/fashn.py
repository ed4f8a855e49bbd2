"""FASHN's virtual try-on API through its official client (`fashn`): run, then poll status.

`POST /v1/run` answers a prediction id; `GET /v1/status/{id}` goes starting, in_queue,
processing, then completed (output: the image, base64 here so nothing is kept on FASHN's CDN)
or failed with a named error. A 429 says which limit: the rate and concurrency limits pass,
out of credits does not.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Self

import fashn
from PIL import Image

from common import imaging
from common.backends.tryon.base import Progress, TryonBackend, TryonRequest
from common.config import Settings
from common.errors import (
    BackendRefused,
    BackendUnavailable,
    ClosetError,
    ConfigurationError,
    NoPersonFound,
    TransientError,
)

# 429 bodies that clear by themselves; `OutOfCredits` needs a person to buy credits.
_PASSING_LIMITS = ("RateLimitExceeded", "ConcurrencyLimitExceeded")
# Runtime error names worth another delivery (FASHN: "retry, no charge for failures").
_TRANSIENT_RUNTIME = ("PipelineError", "3rdPartyProviderError", "InternalServerError")
_STATES = {
    "starting": "Starting the try-on",
    "in_queue": "Waiting in FASHN's queue",
    "processing": "Dressing the person (FASHN)",
}


class FashnTryon(TryonBackend):
    name = "fashn"
    person_size = 1536
    garment_on = "white"

    def __init__(
        self, client: fashn.Fashn, model: str, mode: str, poll_s: float, timeout_s: float
    ) -> None:
        self.client = client
        # The client's overloads want a literal model name; ours comes from configuration.
        self.model: Any = model
        self.mode = mode
        self.poll_s = poll_s
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        if not settings.fashn_api_key:
            raise ConfigurationError("the fashn try-on backend needs FASHN_API_KEY")
        client = fashn.Fashn(
            api_key=settings.fashn_api_key,
            base_url=settings.fashn_base_url,
            timeout=settings.remote_timeout_s,
            # One attempt per delivery: Pub/Sub retries with backoff, not this instance.
            max_retries=0,
        )
        return cls(
            client,
            settings.fashn_model,
            settings.fashn_mode,
            settings.tryon_poll_s,
            settings.remote_timeout_s,
        )

    def generate(self, request: TryonRequest, progress: Progress) -> Image.Image:
        inputs: Any = {
            "model_image": _data_uri(request.person),
            "garment_image": _data_uri(request.garment),
            "category": request.category,
            "mode": self.mode,
            "garment_photo_type": "flat-lay",
            "return_base64": True,
            "output_format": "png",
        }
        started = _call(lambda: self.client.predictions.run(inputs=inputs, model_name=self.model))
        if started.error:
            raise BackendUnavailable(f"FASHN did not start the try-on: {started.error}")
        deadline = time.monotonic() + self.timeout_s
        said = ""
        while True:
            status = _call(lambda: self.client.predictions.status(started.id))
            if status.status == "completed":
                return _output_image(status.output)
            if status.status in ("failed", "canceled", "time_out"):
                raise _runtime_error(status)
            text = _STATES.get(status.status, f"FASHN: {status.status}")
            if text != said:
                progress(text)
                said = text
            if time.monotonic() >= deadline:
                raise TransientError(
                    f"FASHN prediction {started.id} still {status.status} after "
                    f"{self.timeout_s:.0f} s"
                )
            time.sleep(self.poll_s)


def _data_uri(image: Image.Image) -> str:
    encoded = base64.b64encode(imaging.encode(image, "png", quality=100)).decode("ascii")
    return f"data:image/png;base64,{encoded}"


def _call(call: Any) -> Any:
    """Run one API call, mapping the client's errors to ours."""
    try:
        return call()
    except fashn.RateLimitError as exc:
        name = _error_name(exc.body)
        if name in _PASSING_LIMITS:
            raise TransientError(f"FASHN: {name}: {_error_text(exc)}") from exc
        raise BackendUnavailable(f"FASHN: {name or 429}: {_error_text(exc)}") from exc
    except fashn.InternalServerError as exc:
        raise TransientError(f"FASHN answered {exc.status_code}: {_error_text(exc)}") from exc
    except fashn.APIStatusError as exc:
        name = _error_name(exc.body) or str(exc.status_code)
        raise BackendUnavailable(f"FASHN: {name}: {_error_text(exc)}") from exc
    except fashn.APIConnectionError as exc:
        raise TransientError(f"FASHN unreachable: {exc}") from exc


def _error_name(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str):
            return error
    return None


def _error_text(exc: fashn.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(exc)


def _runtime_error(status: Any) -> ClosetError:
    name = status.error.name if status.error else status.status
    message = status.error.message if status.error else f"prediction {status.status}"
    text = f"FASHN {name}: {message}"
    if name == "PoseError":
        return NoPersonFound(text)
    if name in ("ContentModerationError", "ThirdPartyError"):
        return BackendRefused(text)
    if name in _TRANSIENT_RUNTIME or status.status == "time_out":
        return TransientError(text)
    return BackendUnavailable(text)


def _output_image(output: list[str] | None) -> Image.Image:
    if not output:
        raise BackendUnavailable("FASHN completed without an output image")
    first = output[0]
    _, _, payload = first.partition("base64,")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise BackendUnavailable("FASHN answered an output that is not base64 data") from exc
    try:
        return imaging.open_remote(data).convert("RGB")
    except TransientError as exc:
        raise BackendUnavailable(f"FASHN answered an unreadable image: {exc.message}") from exc
