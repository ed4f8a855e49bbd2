"""Gemini through google-genai: an API key (Gemini API) or Vertex AI (project and location)."""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Callable
from typing import Self, TypeVar

import google.auth
import httpx
import pydantic
from google import genai
from google.auth import exceptions as auth_errors
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from common import imaging
from common.backends.generative.base import Edge, GenerativeBackend
from common.config import Settings
from common.errors import BackendUnavailable, ConfigurationError, TransientError
from common.schemas import Attributes

T = TypeVar("T")

_VERTEX_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]

TAG_PROMPT = (
    "The image is one garment cut out of a photo; a clothes segmentation model labelled it "
    "{label!r}. Describe the garment: its category, its main colours (most prominent first, "
    "plain names), its pattern, and the seasons it suits."
)

COMPLETE_PROMPT = (
    "The image is one garment ({label}) cut out of a photo. The edge of the photo cut it off "
    "at the {edges}, so part of it is missing. Draw the whole garment, completing the missing "
    "part to match the visible part (same shape, colours, pattern, fabric and lighting), "
    "centred on a plain white background, with nothing else in the image."
)


def _transport_errors() -> tuple[type[Exception], ...]:
    """Network failures worth a retry, from httpx and from httpx2 (google-genai 3's default)."""
    modules = [httpx]
    with contextlib.suppress(ImportError):
        modules.append(importlib.import_module("httpx2"))
    names = ("TimeoutException", "NetworkError", "RemoteProtocolError")
    return tuple(getattr(module, name) for module in modules for name in names)


_TRANSPORT_ERRORS = _transport_errors()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    (image if image.mode == "RGBA" else image.convert("RGBA")).save(buffer, format="PNG")
    return buffer.getvalue()


def _edge_phrase(edges: list[Edge]) -> str:
    names = sorted(set(edges), key=("left", "top", "right", "bottom").index)
    if not names:
        return "frame edge"
    if len(names) == 1:
        return f"{names[0]} edge"
    return f"{', '.join(names[:-1])} and {names[-1]} edges"


class GeminiBackend(GenerativeBackend):
    name = "gemini"

    def __init__(self, client: genai.Client, tagging_model: str, completion_model: str) -> None:
        self.client = client
        self.tagging_model = tagging_model
        self.completion_model = completion_model

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        http_options = types.HttpOptions(
            base_url=settings.gemini_base_url,
            timeout=max(1, round(settings.remote_timeout_s * 1000)),
            # One attempt per delivery: a transient error goes back to Pub/Sub, which retries
            # with backoff instead of holding this instance in the SDK's own retry loop.
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        try:
            if settings.use_vertexai:
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
                    "the gemini backend needs GEMINI_API_KEY (or GOOGLE_API_KEY), "
                    "or GOOGLE_GENAI_USE_VERTEXAI=true with Application Default Credentials"
                )
        except (auth_errors.DefaultCredentialsError, ValueError) as exc:
            raise ConfigurationError(f"the gemini backend cannot start: {exc}") from exc
        return cls(client, settings.tagging_model, settings.completion_model)

    def tag(self, garment: Image.Image, label: str) -> Attributes:
        config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_schema=Attributes,
            temperature=0,
        )
        response = self._generate(
            self.tagging_model, garment, TAG_PROMPT.format(label=label), config
        )
        if isinstance(response.parsed, Attributes):
            return response.parsed
        try:
            return Attributes.model_validate_json(response.text or "")
        except pydantic.ValidationError as exc:
            raise BackendUnavailable(
                f"{self.tagging_model} answered no valid attributes ({_why(response)})"
            ) from exc

    def complete(self, garment: Image.Image, label: str, edges: list[Edge]) -> Image.Image:
        prompt = COMPLETE_PROMPT.format(label=label, edges=_edge_phrase(edges))
        config = types.GenerateContentConfig(response_modalities=["IMAGE"])
        response = self._generate(self.completion_model, garment, prompt, config)
        data = _first_image(response)
        if data is None:
            raise BackendUnavailable(
                f"{self.completion_model} answered no image ({_why(response)})"
            )
        try:
            return imaging.open_remote(data).convert("RGBA")
        except TransientError as exc:
            # A garbled image is a refusal of this request: expand then skips, keeping the
            # garments, instead of paying for every garment again on each redelivery.
            raise BackendUnavailable(f"{self.completion_model}: {exc.message}") from exc

    def _generate(
        self,
        model: str,
        garment: Image.Image,
        prompt: str,
        config: types.GenerateContentConfig,
    ) -> types.GenerateContentResponse:
        contents = types.Content(
            role="user",
            parts=[
                types.Part.from_bytes(data=_png(garment), mime_type="image/png"),
                types.Part.from_text(text=prompt),
            ],
        )
        return _mapped(
            model,
            lambda: self.client.models.generate_content(
                model=model, contents=contents, config=config
            ),
        )


def _mapped(model: str, call: Callable[[], T]) -> T:
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


def _first_image(response: types.GenerateContentResponse) -> bytes | None:
    for candidate in response.candidates or []:
        parts = candidate.content.parts if candidate.content else None
        for part in parts or []:
            blob = part.inline_data
            if blob and blob.data and (blob.mime_type or "").startswith("image/"):
                return blob.data
    return None


def _why(response: types.GenerateContentResponse) -> str:
    """The model's reason for an unusable answer: block reason, finish reason, or its text."""
    feedback = response.prompt_feedback
    if feedback and feedback.block_reason:
        return f"blocked: {feedback.block_reason.value}"
    reasons = [c.finish_reason.value for c in response.candidates or [] if c.finish_reason]
    return f"finish reason {', '.join(reasons)}" if reasons else "empty answer"
