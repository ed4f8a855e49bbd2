"""api: the web app's HTTP entry: signed upload URLs and the owner's result images.

`Api` is the logic (typed requests in, JSON-ready answers out, `ApiError` for every refusal);
`HttpApi` is the HTTP around it: routes, the caller's ID token, CORS and JSON errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common import imaging, intake
from common.config import Settings, get_settings
from common.errors import InvalidRequest, ItemNotFound
from common.events import WARMUP_TYPE
from common.identity import Caller, FirebaseTokens, Unauthenticated, bearer_token
from common.jobs import STUDIO_METADATA, is_job_id, new_job_id, studio_metadata
from common.ports import JobStore
from common.schemas import ImageRef, Inputs
from common.signing import UrlSigner
from common.studio.request import plan_of

JOB_ID_HEADER = "x-goog-meta-job-id"
"""The object's custom metadata `job-id`: ingest starts the job under this id."""
SIZE_HEADER = "x-goog-content-length-range"
"""Cloud Storage refuses a signed upload whose body is outside this range."""
META_PREFIX = "x-goog-meta-"
STUDIO_HEADERS = tuple(f"{META_PREFIX}{key}" for key in STUDIO_METADATA)
"""A studio request's metadata, signed like the job id (the bucket's CORS lets them through)."""
STUDIO_FOLDER = "studio/"
REQUEST_TYPE = "application/json"
"""A studio shot of a closet item uploads no photo: its body is the request itself, this type."""
REQUEST_MAX_BYTES = 16 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ApiError(Exception):
    """A refusal: HTTP status, stable code, human message."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class StudioRequest(BaseModel):
    """`POST /uploads` `studio`: studio shots of the photo, or of the closet item `subject`
    (`JOB_ID/items/N`; the upload is then the request as JSON, not a photo)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    style: str | None = Field(default=None, max_length=32)
    prompt: str | None = Field(default=None, max_length=1000)
    aspects: list[str] | None = Field(default=None, max_length=8)
    context: str | None = None
    language: str | None = Field(default=None, max_length=64)
    subject: str | None = Field(default=None, max_length=200)

    def inputs(self) -> Inputs:
        """What the job will read back from the metadata, each value as its header carries it:
        on one line (a V4 signature folds whitespace) and ASCII (a header cannot carry more)."""
        values: dict[str, Any] = {}
        for key, value in self.model_dump(exclude_none=True).items():
            folded = [
                " ".join(text.split()) for text in (value if isinstance(value, list) else [value])
            ]
            if not all(text.isascii() and text.isprintable() for text in folded):
                raise InvalidRequest(
                    f"`studio.{key}` must be plain ASCII text (it travels in an upload header)"
                )
            values[key] = folded if isinstance(value, list) else folded[0]
        return Inputs.model_validate(values)


class UploadRequest(BaseModel):
    """`POST /uploads` body."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    filename: str = Field(min_length=1, max_length=512)
    content_type: str = Field(alias="contentType", min_length=1, max_length=255)
    size: int = Field(gt=0)
    studio: StudioRequest | None = None


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Caller: ...


class Signer(Protocol):
    def upload_url(
        self, bucket: str, name: str, content_type: str, headers: dict[str, str], ttl_s: int
    ) -> str: ...

    def download_url(self, bucket: str, name: str, ttl_s: int) -> str: ...


def object_name(uid: str, job_id: str, filename: str, extension: str, folder: str = "") -> str:
    """`users/{uid}/{folder}{jobId}-{name}.{ext}`: the owner in the path, the name readable."""
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    safe = _UNSAFE.sub("-", stem).strip("-.")[:80] or "photo"
    return f"users/{uid}/{folder}{job_id}-{safe}.{extension}"


@dataclass
class Api:
    settings: Settings
    jobs: JobStore
    signer: Signer

    def create_upload(self, caller: Caller, request: UploadRequest) -> dict[str, Any]:
        """Check the upload against ingest's limits (and a studio request against the studio's
        rules), pick its job id, sign its upload with the metadata the job will read."""
        settings = self.settings
        if "/" in caller.uid:
            raise ApiError(HTTPStatus.FORBIDDEN, "forbidden", "this account cannot upload")
        content_type = request.content_type.split(";")[0].strip().lower()
        metadata = self._studio(caller, request.studio) if request.studio else {}
        if "subject" in metadata:
            extension, limit = "json", REQUEST_MAX_BYTES
            self._check_request(content_type, request.size)
        else:
            extension, limit = self._check_photo(content_type, request.size), settings.max_bytes
        job_id = new_job_id()
        folder = STUDIO_FOLDER if request.studio else ""
        name = object_name(caller.uid, job_id, request.filename, extension, folder)
        headers = {
            JOB_ID_HEADER: job_id,
            SIZE_HEADER: f"0,{limit}",
            **{f"{META_PREFIX}{key}": value for key, value in metadata.items()},
        }
        url = self.signer.upload_url(
            settings.uploads_bucket, name, content_type, headers, settings.upload_url_ttl_s
        )
        return {
            "jobId": job_id,
            "uploadUrl": url,
            "method": "PUT",
            "headers": {"Content-Type": content_type, **headers},
            "object": {"bucket": settings.uploads_bucket, "name": name},
            "expiresIn": settings.upload_url_ttl_s,
        }

    def _check_photo(self, content_type: str, size: int) -> str:
        """The photo's file extension, when ingest would accept its type and size."""
        settings = self.settings
        fmt = imaging.format_of_content_type(content_type)
        if fmt is None or fmt not in settings.allowed_formats:
            if content_type == REQUEST_TYPE:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    "invalid_request",
                    f"{REQUEST_TYPE} is accepted only as a studio request naming `studio.subject`",
                )
            accepted = ", ".join(imaging.CONTENT_TYPES[f] for f in settings.allowed_formats)
            raise ApiError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "unsupported_format",
                f"{content_type} is not accepted; send one of {accepted}",
            )
        if size > settings.max_bytes:
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "image_too_large",
                f"the photo is {size} bytes; the limit is {settings.max_bytes}",
            )
        return imaging.EXTENSIONS[fmt]

    @staticmethod
    def _check_request(content_type: str, size: int) -> None:
        """A studio shot of a closet item sends its request as a small JSON body, no photo."""
        if content_type != REQUEST_TYPE:
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "invalid_request",
                f"with `studio.subject` the upload is the request as {REQUEST_TYPE}, "
                f"not {content_type}",
            )
        if size > REQUEST_MAX_BYTES:
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "request_too_large",
                f"the request is {size} bytes; the limit is {REQUEST_MAX_BYTES}",
            )

    def _studio(self, caller: Caller, request: StudioRequest) -> dict[str, str]:
        """The studio metadata, checked by studio_prepare's own rules; a closet item named as
        the subject must be a finished one of the caller's."""
        try:
            inputs = request.inputs()
            plan_of(inputs)
            if inputs.subject is not None:
                intake.closet_item(self.jobs, caller.uid, inputs.subject, "studio.subject")
        except InvalidRequest as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, exc.code, f"studio: {exc}") from None
        except ItemNotFound as exc:
            raise ApiError(HTTPStatus.NOT_FOUND, exc.code, str(exc)) from None
        return studio_metadata(inputs)

    def job_images(self, caller: Caller, job_id: str) -> dict[str, Any]:
        """Short-lived GET URLs of a finished job's images, for its owner only."""
        job = self.jobs.get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "job_not_found", f"no job {job_id}")
        if job.uid != caller.uid:
            raise ApiError(HTTPStatus.FORBIDDEN, "forbidden", "this job belongs to another user")
        result = job.result
        return {
            "jobId": job.id,
            "kind": job.kind,
            "status": job.status.value,
            "expiresIn": self.settings.image_url_ttl_s,
            "items": [
                {
                    "label": item.label,
                    "image": self._signed(item.image),
                    "thumbnail": self._signed(item.thumbnail),
                    "attributes": item.attributes.model_dump() if item.attributes else None,
                }
                for item in (result.items if result else [])
            ],
            "cutout": self._signed(result.cutout) if result and result.cutout else None,
            # Studio: the words that go with the shots (None: no caption was written, see notes).
            "caption": result.caption.to_wire() if result and result.caption else None,
            "notes": (result.notes if result else None) or [],
        }

    def _signed(self, ref: ImageRef) -> dict[str, Any]:
        settings = self.settings
        url = self.signer.download_url(settings.results_bucket, ref.path, settings.image_url_ttl_s)
        return {"url": url, "width": ref.width, "height": ref.height, "format": ref.format}


_JOB_IMAGES = re.compile(r"^/jobs/([^/]+)/images/?$")


class HttpApi:
    """Routes, the caller's token, CORS for the app's origins, errors as `{code, message}`."""

    def __init__(self, api: Api, tokens: TokenVerifier) -> None:
        self.api = api
        self.tokens = tokens

    @classmethod
    def create(cls, settings: Settings | None = None) -> HttpApi:
        from common import telemetry
        from common.cloud import firestore_jobs

        telemetry.configure()
        settings = settings or get_settings()
        api = Api(settings, firestore_jobs(settings), UrlSigner.create(settings))
        return cls(api, FirebaseTokens(settings.token_project))

    def respond(self, request: flask.Request) -> flask.Response:
        origin = request.headers.get("Origin")
        allowed = origin in self.api.settings.web_origins
        if request.method == "OPTIONS":
            response = flask.Response(status=HTTPStatus.NO_CONTENT if allowed else 403)
        elif request.headers.get("ce-type") == WARMUP_TYPE:
            # The warm-up every function answers (its clients were built at import).
            response = flask.Response(status=HTTPStatus.NO_CONTENT)
        else:
            try:
                status, body = self._route(request)
            except ApiError as exc:
                status, body = exc.status, {"code": exc.code, "message": exc.message}
            except Unauthenticated as exc:
                status, body = HTTPStatus.UNAUTHORIZED, {"code": exc.code, "message": exc.message}
            response = flask.jsonify(body)
            response.status_code = status
        if allowed and origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "3600"
        response.headers["Vary"] = "Origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    def _route(self, request: flask.Request) -> tuple[HTTPStatus, dict[str, Any]]:
        path = request.path
        if path.rstrip("/") == "/uploads":
            self._method(request, "POST")
            caller = self._caller(request)
            return HTTPStatus.CREATED, self.api.create_upload(caller, self._upload(request))
        if match := _JOB_IMAGES.match(path):
            self._method(request, "GET")
            caller = self._caller(request)
            return HTTPStatus.OK, self.api.job_images(caller, match.group(1))
        raise ApiError(HTTPStatus.NOT_FOUND, "not_found", f"no such endpoint: {path}")

    def _caller(self, request: flask.Request) -> Caller:
        return self.tokens.verify(bearer_token(request.headers.get("Authorization")))

    @staticmethod
    def _method(request: flask.Request, expected: str) -> None:
        if request.method != expected:
            raise ApiError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"{request.path} answers {expected}, not {request.method}",
            )

    @staticmethod
    def _upload(request: flask.Request) -> UploadRequest:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "invalid_request",
                "send a JSON object {filename, contentType, size}",
            )
        try:
            return UploadRequest.model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
                for error in exc.errors()
            )
            raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", problems) from None
