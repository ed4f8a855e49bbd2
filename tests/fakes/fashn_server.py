"""A local server that keeps FASHN's API contract, for tests and manual runs.

`POST /v1/run` (Bearer key; `model_name`, `inputs.model_image`, `inputs.garment_image` as
data URIs, `category`, `mode`, `garment_photo_type`) answers `{"id", "error": null}`;
`GET /v1/status/{id}` goes `starting`, `in_queue`, `processing` (one state a poll, `polls`
polls in all) to `completed` with the output (base64 when `return_base64`) or to `failed` with
a named error. API-level errors have FASHN's shape: `{"error": "OutOfCredits", "message"}`,
and 429 comes as `RateLimitExceeded`, `ConcurrencyLimitExceeded` or `OutOfCredits`.

The try-on it "runs": the garment pasted over the middle of the person photo. A person photo
that is almost one flat colour has no pose: the prediction fails with `PoseError`.

Test hooks: `runs` (every accepted run), `fail_next(n, status, error)`, `runtime_error`
(name, message) for the next predictions, `polls`, `api_key`. Across processes:
`GET /_calls`, `POST /_fail {"count", "status", "error"}`, `POST /_reset`.

    python -m tests.fakes.fashn_server --port 8091
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from tests.fakes.http import JSONHandler, LocalServer, serve_until_signalled

CATEGORIES = ("auto", "tops", "bottoms", "one-pieces")
MODES = ("performance", "balanced", "quality")
LIMITS = {
    "RateLimitExceeded": "Too many requests in the window",
    "ConcurrencyLimitExceeded": "Too many concurrent predictions",
    "OutOfCredits": "No API credits remaining",
}
_DATA_URI = re.compile(r"^data:image/(png|jpeg|jpg|webp);base64,(?P<data>.+)$", re.S)


class RequestInvalid(Exception):
    """What FASHN answers 400 BadRequest to."""


@dataclass
class Prediction:
    id: str
    output: Image.Image
    error: tuple[str, str] | None
    base64: bool
    output_format: str
    polls: int = 0


@dataclass
class _Failure:
    remaining: int
    status: int
    error: str


@dataclass
class FakeFashn(LocalServer):
    api_key: str = "fashn-test-key"
    polls: int = 3
    """Status polls before a prediction completes (each one shows the next state)."""
    runtime_error: tuple[str, str] | None = None
    host: str = "127.0.0.1"
    port: int = 0

    _runs: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    _predictions: dict[str, Prediction] = field(default_factory=dict, init=False, repr=False)
    _failure: _Failure | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    thread_name: ClassVar[str] = "fake-fashn"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def runs(self) -> list[dict[str, Any]]:
        """Every run that was accepted (a prediction id was issued): what FASHN bills."""
        with self._lock:
            return list(self._runs)

    def fail_next(self, count: int, status: int, error: str | None = None) -> None:
        """Answer the next `count` API calls (run or status) with `status`; -1 means forever."""
        with self._lock:
            self._failure = _Failure(count, status, error or _default_error(status))

    def reset(self) -> None:
        with self._lock:
            self._runs.clear()
            self._predictions.clear()
            self._failure = None
            self.runtime_error = None

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            failure = self._failure
            if failure is None:
                return None
            if failure.remaining > 0:
                failure.remaining -= 1
                if failure.remaining == 0:
                    self._failure = None
            return failure

    def run(self, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": "UnauthorizedAccess", "message": "Unauthorized: Invalid token"}
        failure = self._take_failure()
        if failure is not None:
            return failure.status, _error(failure.error)
        try:
            person, garment, options = _inputs(body)
        except RequestInvalid as exc:
            return 400, {"error": "BadRequest", "message": str(exc)}
        error = self.runtime_error
        if error is None and _flat(person):
            error = ("PoseError", "Unable to detect body pose in the model image")
        prediction = Prediction(
            id=f"{uuid.uuid4()}-u1",
            output=_dress(person, garment),
            error=error,
            base64=bool(options.get("return_base64")),
            output_format=str(options.get("output_format") or "png"),
        )
        with self._lock:
            self._predictions[prediction.id] = prediction
            self._runs.append({"id": prediction.id, "modelName": body["model_name"], **options})
        return 200, {"id": prediction.id, "error": None}

    def status(self, headers: dict[str, str], prediction_id: str) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": "UnauthorizedAccess", "message": "Unauthorized: Invalid token"}
        failure = self._take_failure()
        if failure is not None:
            return failure.status, _error(failure.error)
        with self._lock:
            prediction = self._predictions.get(prediction_id)
            if prediction is None:
                return 404, {"error": "NotFound", "message": f"no prediction {prediction_id}"}
            prediction.polls += 1
            polls = prediction.polls
        states = ("starting", "in_queue", "processing")
        if polls <= self.polls:
            state = states[min(polls - 1, len(states) - 1)]
            return 200, {"id": prediction_id, "status": state, "output": None, "error": None}
        if prediction.error is not None:
            name, message = prediction.error
            error = {"name": name, "message": message}
            return 200, {"id": prediction_id, "status": "failed", "output": None, "error": error}
        output = _encoded(prediction)
        return 200, {"id": prediction_id, "status": "completed", "output": [output], "error": None}


def _default_error(status: int) -> str:
    return {
        400: "BadRequest",
        401: "UnauthorizedAccess",
        404: "NotFound",
        429: "RateLimitExceeded",
    }.get(status, "InternalServerError")


def _error(name: str) -> dict[str, str]:
    return {"error": name, "message": LIMITS.get(name, f"fake {name}")}


def _inputs(body: dict[str, Any]) -> tuple[Image.Image, Image.Image, dict[str, Any]]:
    if body.get("model_name") not in ("tryon-v1.6", "tryon-max"):
        raise RequestInvalid(f"unknown model_name {body.get('model_name')!r}")
    inputs = body.get("inputs")
    if not isinstance(inputs, dict):
        raise RequestInvalid("inputs must be an object")
    person = _image(inputs.get("model_image"), "model_image")
    garment = _image(inputs.get("garment_image"), "garment_image")
    options = {k: v for k, v in inputs.items() if k not in ("model_image", "garment_image")}
    if options.get("category", "auto") not in CATEGORIES:
        raise RequestInvalid(f"category must be one of {CATEGORIES}")
    if options.get("mode", "balanced") not in MODES:
        raise RequestInvalid(f"mode must be one of {MODES}")
    return person, garment, options


def _image(value: object, name: str) -> Image.Image:
    match = _DATA_URI.match(value) if isinstance(value, str) else None
    if match is None:
        raise RequestInvalid(f"{name} must be a data:image/...;base64, URI (or a public URL)")
    try:
        data = base64.b64decode(match["data"], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.convert("RGB")
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise RequestInvalid(f"{name} does not decode: {exc}") from None


def _flat(person: Image.Image) -> bool:
    """Almost one colour: nothing in the photo has a pose."""
    return float(np.asarray(person.convert("L"), dtype=np.float32).std()) < 3.0


def _dress(person: Image.Image, garment: Image.Image) -> Image.Image:
    dressed = person.copy()
    width = max(1, person.width // 3)
    height = max(1, round(garment.height * width / garment.width))
    small = garment.resize((width, height))
    dressed.paste(small, ((person.width - width) // 2, person.height // 4))
    return dressed


def _encoded(prediction: Prediction) -> str:
    fmt = "JPEG" if prediction.output_format == "jpeg" else "PNG"
    buffer = io.BytesIO()
    prediction.output.save(buffer, format=fmt)
    if not prediction.base64:
        return f"https://cdn.fashn.ai/{prediction.id}/output_0.{fmt.lower()}"
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/{fmt.lower()};base64,{encoded}"


def _handler_for(server: FakeFashn) -> type[BaseHTTPRequestHandler]:
    class Handler(JSONHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/_calls":
                self.send_json(200, server.runs)
            elif path.startswith("/v1/status/"):
                self.send_json(
                    *server.status(self.lower_headers(), path.removeprefix("/v1/status/"))
                )
            else:
                self.send_json(404, {"error": "NotFound", "message": f"no such path {path}"})

        def do_POST(self) -> None:
            try:
                body = self.read_json()
            except ValueError as exc:
                self.send_json(400, {"error": "BadRequest", "message": f"invalid JSON: {exc}"})
                return
            path = self.path.split("?")[0]
            if path == "/_fail":
                server.fail_next(
                    int(body.get("count", 1)), int(body.get("status", 500)), body.get("error")
                )
                self.send_json(200, {})
            elif path == "/_reset":
                server.reset()
                self.send_json(200, {})
            elif path == "/v1/run":
                self.send_json(*server.run(self.lower_headers(), body))
            else:
                self.send_json(404, {"error": "NotFound", "message": f"no such path {path}"})

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default="fashn-test-key")
    args = parser.parse_args(argv)
    fake = FakeFashn(api_key=args.api_key, host=args.host, port=args.port)
    serve_until_signalled(fake)


if __name__ == "__main__":
    main()
