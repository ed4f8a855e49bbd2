"""google-genai for every backend that calls Gemini or Vertex AI: one way to build the client,
one mapping of its failures to the pipeline's errors, and reading images out of answers.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Callable
from typing import TypeVar

import google.auth
import httpx
from google import genai
from google.auth import exceptions as auth_errors
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from common import imaging
from common.config import Settings
from common.errors import BackendRefused, BackendUnavailable, ConfigurationError, TransientError

T = TypeVar("T")

_VERTEX_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def _transport_errors() -> tuple[type[Exception], ...]:
    """Network failures worth a retry, from httpx and from httpx2 (google-genai 3's default)."""
    modules = [httpx]
    with contextlib.suppress(ImportError):
        modules.append(importlib.import_module("httpx2"))
    names = ("TimeoutException", "NetworkError", "RemoteProtocolError")
    return tuple(getattr(module, name) for module in modules for name in names)


_TRANSPORT_ERRORS = _transport_errors()


def make_client(settings: Settings, *, who: str, vertexai: bool | None = None) -> genai.Client:
    """A client for an API key (Gemini API) or Vertex AI (Application Default Credentials).

    `vertexai` forces Vertex AI (models only served there); None follows the settings.
    """
    use_vertex = settings.use_vertexai if vertexai is None else vertexai
    http_options = types.HttpOptions(
        base_url=settings.gemini_base_url,
        timeout=max(1, round(settings.remote_timeout_s * 1000)),
        # One attempt per delivery: a transient error goes back to Pub/Sub, which retries
        # with backoff instead of holding this instance in the SDK's own retry loop.
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    try:
        if use_vertex:
            credentials, _ = google.auth.default(scopes=_VERTEX_SCOPES)
            client = genai.Client(
                vertexai=True,
                credentials=credentials,
                project=settings.project,
                location=settings.vertex_location,
                http_options=http_options,
            )
        elif settings.gemini_api_key:
            client = genai.Client(
                vertexai=False, api_key=settings.gemini_api_key, http_options=http_options
            )
        else:
            raise ConfigurationError(
                f"{who} needs GEMINI_API_KEY (or GOOGLE_API_KEY), "
                "or GOOGLE_GENAI_USE_VERTEXAI=true with Application Default Credentials"
            )
    except (auth_errors.DefaultCredentialsError, ValueError) as exc:
        raise ConfigurationError(f"{who} cannot start: {exc}") from exc
    return client


def mapped(model: str, call: Callable[[], T]) -> T:
    """Run `call`, turning the SDK's failures into our transient or permanent errors."""
    try:
        return call()
    except genai_errors.APIError as exc:
        message = f"{model}: {exc.code} {exc.status or ''} {exc.message or ''}".strip()
        if exc.code in (408, 429) or exc.code >= 500:
            raise TransientError(message) from exc
        raise BackendUnavailable(message) from exc
    except _TRANSPORT_ERRORS as exc:
        raise TransientError(f"{model}: {type(exc).__name__}: {exc}") from exc
    except auth_errors.TransportError as exc:
        raise TransientError(f"{model}: cannot refresh credentials: {exc}") from exc
    except (auth_errors.GoogleAuthError, genai_errors.UnknownApiResponseError) as exc:
        raise BackendUnavailable(f"{model}: {exc}") from exc


def png_bytes(image: Image.Image) -> bytes:
    """An image as the models take it inline: PNG, with its alpha when it has one."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def first_image(response: types.GenerateContentResponse) -> bytes | None:
    for candidate in response.candidates or []:
        parts = candidate.content.parts if candidate.content else None
        for part in parts or []:
            blob = part.inline_data
            if blob and blob.data and (blob.mime_type or "").startswith("image/"):
                return blob.data
    return None


def generated_image(
    model: str, generated: list[types.GeneratedImage] | None, refused: str
) -> Image.Image:
    """The first image of an Imagen-style answer (`generate_images`, `recontext_image`).

    An answer whose every image the safety filters removed is a refusal (`refused` says of
    what), with the filters' reasons; an image that does not decode is a permanent failure.
    """
    reasons = []
    for one in generated or []:
        data = one.image.image_bytes if one.image else None
        if data:
            try:
                return imaging.open_remote(data)
            except TransientError as exc:
                raise BackendUnavailable(f"{model}: {exc.message}") from exc
        if one.rai_filtered_reason:
            reasons.append(one.rai_filtered_reason)
    said = "; ".join(reasons) or "no image in the answer (filtered)"
    raise BackendRefused(f"{model} refused {refused}: {said}")


def why(response: types.GenerateContentResponse) -> str:
    """The model's reason for an unusable answer: block reason, finish reason, or its text."""
    feedback = response.prompt_feedback
    if feedback and feedback.block_reason:
        return f"blocked: {feedback.block_reason.value}"
    reasons = [c.finish_reason.value for c in response.candidates or [] if c.finish_reason]
    return f"finish reason {', '.join(reasons)}" if reasons else "empty answer"
