"""A local server that speaks the Gemini REST API's generateContent, for tests and manual runs.

google-genai's `Client(api_key=..., http_options=HttpOptions(base_url=url))` sends
`POST {url}/v1/models/{model}:generateContent` with the key in `x-goog-api-key`; Vertex AI
clients send `.../projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent`.
Both are served. The fake checks what this project sends: one PNG inline, a text prompt, and for
text models structured output (JSON with a schema); image models are those asked for
`responseModalities: ["IMAGE"]`, and they answer the input padded with white, or, asked with a
prompt alone, a picture of `imageConfig.aspectRatio`. A schema with a `story` property is a
caption and is answered with `caption`; any other with `attributes`. `:predict` serves Vertex
AI's try-on (`personImage`) and Imagen's `generate_images` (`prompt`), on Vertex AI and on the
Gemini API paths.

Test hooks: `calls` (every request, thread-safe), `fail_next(n, status)`, `attributes`,
`caption`, `answer_text` (a raw structured answer), `answer_image` (False: image models answer
text only), `block_reason` (the prompt is blocked: no candidates), `imagen_refusal`, `delay_s`.
Across processes: `GET /_calls`, `POST /_fail {"count", "status"}`, `POST /_reset`.

    python -m tests.fakes.gemini_server --port 8090
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from tests.fakes.http import JSONHandler, LocalServer, serve_until_signalled

DEFAULT_CAPTION: dict[str, Any] = {
    "title": "Navy striped tee",
    "story": "A soft cotton tee in navy and white stripes, ready for spring.",
    "hashtags": ["#stripes", "tee", "#preloved"],
    "alt_text": "A navy and white striped t-shirt on a light backdrop.",
}

DEFAULT_ATTRIBUTES: dict[str, Any] = {
    "category": "t-shirt",
    "colors": ["navy", "white"],
    "pattern": "striped",
    "seasons": ["spring", "summer"],
}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Google's canonical status names, as the real API puts them in `error.status`.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_GENERATE = re.compile(
    r"^/(?P<version>[^/]+)/"
    r"(?:projects/[^/]+/locations/[^/]+/publishers/google/)?"
    r"models/(?P<model>[^/:]+):generateContent$"
)


# Vertex AI's image models (virtual try-on, Imagen) answer `:predict`; Imagen on the Gemini API
# too, without the project part.
_PREDICT = re.compile(
    r"^/(?P<version>[^/]+)/"
    r"(?:projects/[^/]+/locations/[^/]+/publishers/google/)?"
    r"models/(?P<model>[^/:]+):predict$"
)
# Pixels per unit of an aspect ratio in generated images (small: the tests crop and compose).
_RATIO_UNIT = 32


class RequestInvalid(Exception):
    """The request is not what the real API (or this project) expects: answered with 400."""


@dataclass(frozen=True)
class Call:
    """One generateContent request as the server received it."""

    model: str
    api_version: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key")

    @property
    def generation_config(self) -> dict[str, Any]:
        config = self.body.get("generationConfig") or {}
        return config if isinstance(config, dict) else {}

    @property
    def images(self) -> list[Image.Image]:
        """The inline images of the request, decoded."""
        return [
            Image.open(io.BytesIO(_b64decode(_field(blob, "data"))))
            for blob in _inline_blobs(self.body)
        ]

    @property
    def prompt(self) -> str:
        return " ".join(part["text"] for part in _parts(self.body) if "text" in part)

    def summary(self) -> dict[str, Any]:
        """JSON for `GET /_calls`: the body without the image bytes."""
        return {
            "model": self.model,
            "apiVersion": self.api_version,
            "status": self.status,
            "apiKey": self.api_key is not None,
            "prompt": self.prompt,
            "images": [
                {"mimeType": _field(b, "mimeType"), "bytes": len(_field(b, "data") or "") * 3 // 4}
                for b in _inline_blobs(self.body)
            ],
            "generationConfig": self.generation_config,
        }


def _field(obj: dict[str, Any], camel: str) -> Any:
    """A field by its JSON name or its proto name (the API accepts both; the SDK mixes them)."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()
    return obj.get(camel, obj.get(snake))


def _parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    contents = body.get("contents")
    if not isinstance(contents, list):
        return []
    return [
        part
        for content in contents
        if isinstance(content, dict)
        for part in content.get("parts") or []
        if isinstance(part, dict)
    ]


def _inline_blobs(body: dict[str, Any]) -> list[dict[str, Any]]:
    blobs = (_field(part, "inlineData") for part in _parts(body))
    return [blob for blob in blobs if isinstance(blob, dict)]


def _decode_png(blob: dict[str, Any]) -> Image.Image:
    if _field(blob, "mimeType") != "image/png":
        raise RequestInvalid(f"inline data must be image/png, got {_field(blob, 'mimeType')!r}")
    try:
        data = _b64decode(_field(blob, "data"))
    except (binascii.Error, TypeError, AttributeError) as exc:
        raise RequestInvalid(f"inline data is not base64: {exc}") from None
    if not data.startswith(PNG_SIGNATURE):
        raise RequestInvalid("inline data is not a PNG")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise RequestInvalid(f"inline PNG does not decode: {exc}") from None


def _b64decode(text: str) -> bytes:
    """Bytes as proto3 JSON carries them: standard or URL-safe base64 (the SDK sends URL-safe)."""
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "status": STATUS_NAMES.get(status, HTTPStatus(status).phrase.upper().replace(" ", "_")),
        }
    }


@dataclass
class _Failure:
    remaining: int
    status: int
    message: str


@dataclass
class FakeGemini(LocalServer):
    """The server and its knobs; use as a context manager (`with FakeGemini() as server:`)."""

    attributes: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ATTRIBUTES))
    caption: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CAPTION))
    answer_text: str | None = None
    answer_image: bool = True
    pad: int = 16
    api_key: str | None = None
    delay_s: float = 0.0
    poison_rgb: tuple[int, int, int] | None = None
    """Answer 503 to every request whose garment is mostly this colour: one job that never
    gets through, while others do (a poison message for the dead-letter path)."""
    tryon_refusal: str | None = None
    imagen_refusal: str | None = None
    """Imagen's `:predict` answers this `raiFilteredReason` instead of an image."""
    block_reason: str | None = None
    """generateContent answers `promptFeedback.blockReason` and no candidates (a blocked prompt)."""
    """`:predict` answers this `raiFilteredReason` instead of an image (a safety filter)."""
    host: str = "127.0.0.1"
    port: int = 0

    _calls: list[Call] = field(default_factory=list, init=False, repr=False)
    _failure: _Failure | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    thread_name: ClassVar[str] = "fake-gemini"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_for(self, model: str) -> list[Call]:
        return [call for call in self.calls if call.model == model]

    def fail_next(self, count: int, status: int, message: str | None = None) -> None:
        """Answer the next `count` generateContent calls with `status` in Google's error shape."""
        with self._lock:
            self._failure = _Failure(count, status, message or f"fake failure {status}")

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._failure = None

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            failure = self._failure
            if failure is None:
                return None
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failure = None
            return failure

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def generate(
        self, model: str, headers: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, Any]:
        """Status and JSON answer of one generateContent request."""
        if self.api_key is not None and headers.get("x-goog-api-key") != self.api_key:
            # What the real API answers for a wrong key.
            return 400, _error_body(400, "API key not valid. Please pass a valid API key.")
        failure = self._take_failure()
        if failure is not None:
            return failure.status, _error_body(failure.status, failure.message)
        if self.poison_rgb is not None and _is_poisoned(body, self.poison_rgb):
            return 503, _error_body(503, "The model is overloaded. Please try again later.")
        if self.block_reason is not None:
            return 200, {
                "promptFeedback": {"blockReason": self.block_reason},
                "usageMetadata": {"promptTokenCount": 300, "totalTokenCount": 300},
                "modelVersion": model,
            }
        try:
            parts = self._answer(model, body)
        except RequestInvalid as exc:
            return 400, _error_body(400, str(exc))
        if self.delay_s:
            time.sleep(self.delay_s)
        return 200, {
            "candidates": [
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 300,
                "candidatesTokenCount": 40 if parts and "text" in parts[0] else 1290,
                "totalTokenCount": 340 if parts and "text" in parts[0] else 1590,
            },
            "modelVersion": model,
            "responseId": f"fake-{len(self.calls)}",
        }

    def predict(self, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        """Vertex AI's virtual try-on (`instances[0].personImage` and `productImages`), or
        Imagen (`instances[0].prompt`)."""
        vertex = headers.get("authorization", "").startswith("Bearer ")
        keyed = self.api_key is not None and headers.get("x-goog-api-key") == self.api_key
        if not (vertex or keyed):
            return 401, _error_body(401, "Request is missing required authentication credential.")
        failure = self._take_failure()
        if failure is not None:
            return failure.status, _error_body(failure.status, failure.message)
        instance = (body.get("instances") or [{}])[0]
        if isinstance(instance, dict) and "prompt" in instance:
            return self._imagen(instance, body.get("parameters") or {})
        try:
            person = _vertex_image(_field(instance, "personImage"))
            products = _field(instance, "productImages") or []
            if len(products) != 1:
                raise RequestInvalid("exactly one product image is supported")
            product = _vertex_image(products[0])
        except RequestInvalid as exc:
            return 400, _error_body(400, str(exc))
        if self.tryon_refusal is not None:
            return 200, {"predictions": [{"raiFilteredReason": self.tryon_refusal}]}
        dressed = person.convert("RGB")
        width = max(1, dressed.width // 3)
        small = product.convert("RGB").resize(
            (width, max(1, product.height * width // product.width))
        )
        dressed.paste(small, ((dressed.width - width) // 2, dressed.height // 4))
        return 200, {
            "predictions": [{"bytesBase64Encoded": _png_b64(dressed), "mimeType": "image/png"}]
        }

    def _imagen(self, instance: dict[str, Any], parameters: dict[str, Any]) -> tuple[int, Any]:
        prompt = instance.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return 400, _error_body(400, "instances[0].prompt must be a non-empty string")
        count = int(_field(parameters, "sampleCount") or 1)
        if not 1 <= count <= 4:
            return 400, _error_body(400, "sampleCount must be between 1 and 4")
        ratio = _field(parameters, "aspectRatio") or "1:1"
        if ratio not in ("1:1", "3:4", "4:3", "9:16", "16:9"):
            return 400, _error_body(400, f"unsupported aspect ratio {ratio}")
        if self.imagen_refusal is not None:
            return 200, {"predictions": [{"raiFilteredReason": self.imagen_refusal}]}
        image = _drawn(prompt, ratio)
        mime = (_field(parameters, "outputOptions") or {}).get("mimeType", "image/png")
        return 200, {
            "predictions": [{"bytesBase64Encoded": _png_b64(image), "mimeType": mime}] * count
        }

    def _answer(self, model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        if not any(isinstance(part.get("text"), str) and part["text"] for part in _parts(body)):
            raise RequestInvalid("contents carry no text prompt")
        config = _field(body, "generationConfig") or {}
        modalities = [str(m).upper() for m in _field(config, "responseModalities") or []]
        blobs = _inline_blobs(body)
        if "IMAGE" in modalities and not blobs:
            ratio = _field(_field(config, "imageConfig") or {}, "aspectRatio") or "1:1"
            return self._image_answer(None, ratio=ratio, prompt=_prompt(body))
        if not blobs:
            raise RequestInvalid("contents carry no inlineData part")
        image = _decode_png(blobs[0])
        if "IMAGE" in modalities:
            return self._image_answer(image)
        if _field(config, "responseMimeType") != "application/json":
            raise RequestInvalid("tagging needs generationConfig.responseMimeType application/json")
        schema = _field(config, "responseSchema") or _field(config, "responseJsonSchema")
        if not schema:
            raise RequestInvalid("tagging needs responseSchema or responseJsonSchema")
        properties = schema.get("properties") or {} if isinstance(schema, dict) else {}
        answer = self.caption if "story" in properties else self.attributes
        text = self.answer_text if self.answer_text is not None else json.dumps(answer)
        return [{"text": text}]

    def _image_answer(
        self, image: Image.Image | None, *, ratio: str = "1:1", prompt: str = ""
    ) -> list[dict[str, Any]]:
        text = {"text": "Here is the whole garment on a white background."}
        if not self.answer_image:
            return [text]
        if image is None:
            drawn = _drawn(prompt, ratio)
            return [{"inlineData": {"mimeType": "image/png", "data": _png_b64(drawn)}}]
        # Image models answer opaque RGB: the input pasted on a larger white canvas.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", (rgba.width + 2 * self.pad, rgba.height + 2 * self.pad), "white")
        canvas.paste(rgba, (self.pad, self.pad), rgba)
        return [text, {"inlineData": {"mimeType": "image/png", "data": _png_b64(canvas)}}]


def _prompt(body: dict[str, Any]) -> str:
    return " ".join(part["text"] for part in _parts(body) if isinstance(part.get("text"), str))


def _drawn(prompt: str, ratio: str) -> Image.Image:
    """A generated picture of `ratio`: a vertical ramp whose colours depend on the prompt."""
    try:
        w, h = (int(v) for v in ratio.split(":"))
    except ValueError:
        raise RequestInvalid(f"aspect ratio {ratio!r} is not W:H") from None
    scale = _RATIO_UNIT * 16 // max(w, h)
    size = (w * scale, h * scale)
    seed = sum(prompt.encode()) % 200
    top = np.array([40 + seed // 2, 120, 200 - seed // 2], dtype=np.float32)
    bottom = top * 0.5
    ramp = np.linspace(0, 1, size[1], dtype=np.float32)[:, None, None]
    pixels = top + (bottom - top) * ramp
    return Image.fromarray(np.broadcast_to(pixels, (size[1], size[0], 3)).astype(np.uint8), "RGB")


def _vertex_image(holder: Any) -> Image.Image:
    """The image of `{"image": {"bytesBase64Encoded", "mimeType"}}`, as Vertex AI takes it."""
    image = _field(holder, "image") if isinstance(holder, dict) else None
    data = _field(image, "bytesBase64Encoded") if isinstance(image, dict) else None
    if not isinstance(data, str):
        raise RequestInvalid("an image needs image.bytesBase64Encoded")
    try:
        with Image.open(io.BytesIO(_b64decode(data))) as opened:
            opened.load()
            return opened.copy()
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise RequestInvalid(f"an image does not decode: {exc}") from None


def _is_poisoned(body: dict[str, Any], rgb: tuple[int, int, int]) -> bool:
    """True when the opaque pixels of the request's image average close to `rgb`."""
    blobs = _inline_blobs(body)
    if not blobs:
        return False
    pixels = np.asarray(_decode_png(blobs[0]).convert("RGBA"), dtype=np.float64)
    opaque = pixels[pixels[..., 3] > 128][:, :3]
    if opaque.size == 0:
        return False
    return bool(np.abs(opaque.mean(axis=0) - np.array(rgb)).max() < 40)


def _handler_for(server: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(JSONHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/_calls":
                self.send_json(200, [call.summary() for call in server.calls])
            else:
                self.send_json(404, _error_body(404, f"no such path {self.path}"))

        def do_POST(self) -> None:
            try:
                body = self.read_json()
            except ValueError as exc:
                self.send_json(400, _error_body(400, f"Invalid JSON payload received. {exc}"))
                return
            if self.path == "/_fail":
                server.fail_next(int(body.get("count", 1)), int(body.get("status", 500)))
                self.send_json(200, {})
                return
            if self.path == "/_reset":
                server.reset()
                self.send_json(200, {})
                return
            headers = self.lower_headers()
            predict = _PREDICT.match(self.path.split("?")[0])
            if predict is not None:
                status, answer = server.predict(headers, body)
                server._record(
                    Call(predict["model"], predict["version"], self.path, headers, body, status)
                )
                self.send_json(status, answer)
                return
            match = _GENERATE.match(self.path.split("?")[0])
            if match is None:
                self.send_json(404, _error_body(404, f"no such method {self.path}"))
                return
            status, answer = server.generate(match["model"], headers, body)
            server._record(Call(match["model"], match["version"], self.path, headers, body, status))
            self.send_json(status, answer)

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--attributes", type=json.loads, default=None, help="tagging answer")
    parser.add_argument("--api-key", default=None, help="reject other keys, like the real API")
    args = parser.parse_args(argv)
    fake = FakeGemini(
        attributes=args.attributes or dict(DEFAULT_ATTRIBUTES),
        api_key=args.api_key,
        host=args.host,
        port=args.port,
    )
    serve_until_signalled(fake)


if __name__ == "__main__":
    main()
