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

from common import imaging
from common.config import Settings, get_settings
from common.events import WARMUP_TYPE
from common.identity import Caller, FirebaseTokens, Unauthenticated, bearer_token
from common.jobs import is_job_id, new_job_id
from common.ports import JobStore
from common.schemas import ImageRef
from common.signing import UrlSigner

JOB_ID_HEADER = "x-goog-meta-job-id"
"""The object's custom metadata `job-id`: ingest starts the job under this id."""
SIZE_HEADER = "x-goog-content-length-range"
"""Cloud Storage refuses a signed upload whose body is outside this range."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ApiError(Exception):
    """A refusal: HTTP status, stable code, human message."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class UploadRequest(BaseModel):
    """`POST /uploads` body."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    filename: str = Field(min_length=1, max_length=512)
    content_type: str = Field(alias="contentType", min_length=1, max_length=255)
    size: int = Field(gt=0)


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Caller: ...


class Signer(Protocol):
    def upload_url(
        self, bucket: str, name: str, content_type: str, headers: dict[str, str], ttl_s: int
    ) -> str: ...

    def download_url(self, bucket: str, name: str, ttl_s: int) -> str: ...


def object_name(uid: str, job_id: str, filename: str, fmt: str) -> str:
    """`users/{uid}/{jobId}-{name}.{ext}`: the owner in the path, the name kept readable."""
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    safe = _UNSAFE.sub("-", stem).strip("-.")[:80] or "photo"
    return f"users/{uid}/{job_id}-{safe}.{imaging.EXTENSIONS[fmt]}"


@dataclass
class Api:
    settings: Settings
    jobs: JobStore
    signer: Signer

    def create_upload(self, caller: Caller, request: UploadRequest) -> dict[str, Any]:
        """Check the photo against ingest's limits, pick its job id, sign its upload."""
        settings = self.settings
        content_type = request.content_type.split(";")[0].strip().lower()
        fmt = imaging.format_of_content_type(content_type)
        if fmt is None or fmt not in settings.allowed_formats:
            accepted = ", ".join(imaging.CONTENT_TYPES[f] for f in settings.allowed_formats)
            raise ApiError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "unsupported_format",
                f"{request.content_type} is not accepted; send one of {accepted}",
            )
        if request.size > settings.max_bytes:
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "image_too_large",
                f"the photo is {request.size} bytes; the limit is {settings.max_bytes}",
            )
        if "/" in caller.uid:
            raise ApiError(HTTPStatus.FORBIDDEN, "forbidden", "this account cannot upload")
        job_id = new_job_id()
        name = object_name(caller.uid, job_id, request.filename, fmt)
        headers = {JOB_ID_HEADER: job_id, SIZE_HEADER: f"0,{settings.max_bytes}"}
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

    def job_images(self, caller: Caller, job_id: str) -> dict[str, Any]:
        """Short-lived GET URLs of a finished job's images, for its owner only."""
        job = self.jobs.get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "job_not_found", f"no job {job_id}")
        if job.uid != caller.uid:
            raise ApiError(HTTPStatus.FORBIDDEN, "forbidden", "this job belongs to another user")
        return {
            "jobId": job.id,
            "status": job.status.value,
            "expiresIn": self.settings.image_url_ttl_s,
            "items": [
                {
                    "label": item.label,
                    "image": self._signed(item.image),
                    "thumbnail": self._signed(item.thumbnail),
                    "attributes": item.attributes.model_dump() if item.attributes else None,
                }
                for item in (job.result.items if job.result else [])
            ],
            "cutout": self._signed(job.result.cutout) if job.result and job.result.cutout else None,
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
