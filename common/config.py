"""Every setting, read once from the environment, validated, typed (pydantic-settings).

Precedence: an explicit argument (`Settings.from_env(environ, name=value)`), then the
environment variable, then the default. Nothing else in the code base reads `os.environ` for
settings. A bad value raises `ConfigurationError` naming the variable; a `CLOSET_*` variable
that names no setting is reported once, with the closest known name.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from common.errors import ConfigurationError

OutputFormat = Literal["webp", "jpeg", "png", "avif"]
ImageFormat = Literal["jpeg", "png", "webp", "gif", "heic", "avif"]
UpscaleModel = Literal["realesr-general-x4v3", "RealESRGAN_x4plus"]
Device = Literal["auto", "cpu", "cuda"]
Origin = Literal["default", "environment", "argument"]

PREFIX = "CLOSET_"
_log = logging.getLogger("closet.config")

# The mapping `from_env` reads: `os.environ` unless a caller passes its own.
_environ: ContextVar[Mapping[str, str] | None] = ContextVar("closet_environ", default=None)


LOCAL_PROJECT = "closet-local"

# The environment every function process starts with: the container image's ENV, and what
# `closet dev` gives the processes it starts. glibc gives each thread that allocates its own
# arena (up to eight per core) and keeps what each one frees: a function's request threads
# moving multi-megabyte images through them grew resident memory by 40 to 100 MB over 200
# studio jobs, unevenly, with no leak behind it. With two arenas, over 200 jobs, studio_prepare
# stayed flat (1.6 MB) and compose grew 35 MB from job 10, all of it before job 50.
PROCESS_ENV: dict[str, str] = {"MALLOC_ARENA_MAX": "2"}


def available_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may keep busy: its affinity, capped by a cgroup v2 CPU quota.

    Model runtimes size their thread pools from the host's cores; a container may be allowed
    fewer (its affinity, or a quota such as `docker run --cpus`), and more threads than that
    only contend.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    try:
        allowed = -(-int(quota) // int(period))  # a quota of 1.5 CPUs keeps two threads busy
    except (ValueError, ZeroDivisionError):
        return cpus
    return max(1, min(cpus, allowed))


def find_project(environ: Mapping[str, str]) -> str:
    """The project of application default credentials or of the metadata server, else local.

    The metadata server is asked only on Google Cloud (Cloud Run sets K_SERVICE), so a laptop
    never waits for a server that is not there.
    """
    gcloud = Path(environ.get("CLOUDSDK_CONFIG") or Path.home() / ".config" / "gcloud")
    adc = (
        "GOOGLE_APPLICATION_CREDENTIALS" in environ
        or (gcloud / "application_default_credentials.json").is_file()
    )
    on_google_cloud = "K_SERVICE" in environ or "GCE_METADATA_HOST" in environ
    if not (adc or on_google_cloud):
        return LOCAL_PROJECT
    return _credentials_project() or LOCAL_PROJECT


@cache
def _credentials_project() -> str | None:
    """Asked once per process: it may reach the metadata server or run gcloud."""
    try:
        import google.auth
        from google.auth.exceptions import GoogleAuthError

        _, project = google.auth.default()
    except (ImportError, GoogleAuthError):
        return None
    return project


def _setting(
    env: str | tuple[str, ...], default: Any, *, secret: bool = False, **constraints: Any
) -> Any:
    names = (env,) if isinstance(env, str) else env
    return Field(
        default=default,
        validation_alias=AliasChoices(*names),
        json_schema_extra={"env": list(names), "secret": secret},
        **constraints,
    )


@contextmanager
def _reading(environ: Mapping[str, str]) -> Iterator[None]:
    """Settings read inside the block come from `environ` instead of `os.environ`."""
    token = _environ.set(environ)
    try:
        yield
    finally:
        _environ.reset(token)


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over the mapping `from_env` was given."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _environ.get()
        if environ is None:
            return super()._load_env_vars()
        return parse_env_vars(
            environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


class Settings(BaseSettings):
    """The whole configuration of a process; see the README for every variable."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        case_sensitive=True,
        env_ignore_empty=True,
        populate_by_name=True,
    )

    project: str = _setting(("GOOGLE_CLOUD_PROJECT", "CLOSET_PROJECT"), LOCAL_PROJECT)
    """Unset: found as the Google clients find it (see `find_project`)."""
    uploads_bucket: str = _setting("CLOSET_UPLOADS_BUCKET", "closet-uploads", min_length=3)
    work_bucket: str = _setting("CLOSET_WORK_BUCKET", "closet-work", min_length=3)
    results_bucket: str = _setting("CLOSET_RESULTS_BUCKET", "closet-results", min_length=3)
    local_root: Path | None = _setting("CLOSET_LOCAL_ROOT", None)
    """Folder of the local blob store; unset means `.closet` (or, for `closet run`, DIR/.closet)."""
    default_uid: str = _setting("CLOSET_DEFAULT_UID", "anonymous", min_length=1)

    background_backend: str = _setting("CLOSET_BACKGROUND_BACKEND", "classic")
    u2net_model: str = _setting("CLOSET_U2NET_MODEL", "u2net")
    u2net_home: Path | None = _setting("U2NET_HOME", Path("~/.u2net").expanduser())
    space: str | None = _setting("CLOSET_SPACE", None)
    space_api: str = _setting("CLOSET_SPACE_API", "/predict")
    hf_token: str | None = _setting(("CLOSET_HF_TOKEN", "HF_TOKEN"), None, secret=True)
    removebg_api_key: str | None = _setting("CLOSET_REMOVEBG_API_KEY", None, secret=True)
    removebg_url: str = _setting("CLOSET_REMOVEBG_URL", "https://api.remove.bg/v1.0/removebg")
    remote_timeout_s: float = _setting("CLOSET_REMOTE_TIMEOUT_S", 60.0, gt=0, le=3600)

    cpu_threads: int | None = _setting("CLOSET_CPU_THREADS", None, ge=1, le=256)
    """Threads one model inference uses; unset means the CPUs this instance may use."""

    segmentation_backend: str | None = _setting("CLOSET_SEGMENTATION_BACKEND", None)
    segformer_path: Path | None = _setting("CLOSET_SEGFORMER_PATH", None)
    min_garment_area: float = _setting("CLOSET_MIN_GARMENT_AREA", 0.005, ge=0, lt=1)

    generative_backend: str = _setting("CLOSET_GENERATIVE_BACKEND", "gemini")
    gemini_api_key: str | None = _setting(("GEMINI_API_KEY", "GOOGLE_API_KEY"), None, secret=True)
    use_vertexai: bool = _setting("GOOGLE_GENAI_USE_VERTEXAI", False)
    vertex_location: str = _setting("GOOGLE_CLOUD_LOCATION", "us-central1")
    gemini_base_url: str | None = _setting("CLOSET_GEMINI_BASE_URL", None)
    tagging_model: str = _setting("CLOSET_TAGGING_MODEL", "gemini-2.5-flash")
    completion_model: str = _setting("CLOSET_COMPLETION_MODEL", "gemini-2.5-flash-image")
    tagging: bool = _setting("CLOSET_TAGGING", True)
    completion: bool = _setting("CLOSET_COMPLETION", True)

    tryon_backend: str = _setting("CLOSET_TRYON_BACKEND", "overlay")
    fashn_api_key: str | None = _setting(
        ("FASHN_API_KEY", "CLOSET_FASHN_API_KEY"), None, secret=True
    )
    fashn_base_url: str = _setting("CLOSET_FASHN_BASE_URL", "https://api.fashn.ai")
    fashn_model: str = _setting("CLOSET_FASHN_MODEL", "tryon-v1.6")
    fashn_mode: Literal["performance", "balanced", "quality"] = _setting(
        "CLOSET_FASHN_MODE", "balanced"
    )
    tryon_vertex_model: str = _setting("CLOSET_TRYON_VERTEX_MODEL", "virtual-try-on-preview-08-04")
    tryon_gemini_model: str = _setting("CLOSET_TRYON_GEMINI_MODEL", "gemini-2.5-flash-image")
    tryon_space: str | None = _setting("CLOSET_TRYON_SPACE", None)
    tryon_space_steps: int = _setting("CLOSET_TRYON_SPACE_STEPS", 30, ge=1, le=200)
    tryon_poll_s: float = _setting("CLOSET_TRYON_POLL_S", 2.0, gt=0, le=60)
    tryon_ttl_days: int = _setting("CLOSET_TRYON_TTL_DAYS", 7, ge=1, le=3650)

    upscale_backend: str | None = _setting("CLOSET_UPSCALE_BACKEND", None)
    """Unset: `realesrgan` when its ONNX file is in CLOSET_UPSCALE_DIR, else `lanczos`."""
    upscale_model: UpscaleModel = _setting("CLOSET_UPSCALE_MODEL", "realesr-general-x4v3")
    upscale_dir: Path | None = _setting("CLOSET_UPSCALE_DIR", None)
    """Where `closet models fetch` writes the Real-ESRGAN ONNX files (`/models/realesrgan`)."""
    upscale_tile: int = _setting("CLOSET_UPSCALE_TILE", 512, ge=32, le=2048)
    """Input pixels per tile side: memory stays flat at any image size."""
    upscale_device: Device = _setting("CLOSET_UPSCALE_DEVICE", "auto")
    """`auto`: ONNX Runtime's CUDA provider when present (FP16), else the CPU one."""

    backdrop_backend: str = _setting("CLOSET_BACKDROP_BACKEND", "gradient")
    backdrop_gemini_model: str = _setting("CLOSET_BACKDROP_GEMINI_MODEL", "gemini-2.5-flash-image")
    backdrop_imagen_model: str = _setting(
        "CLOSET_BACKDROP_IMAGEN_MODEL", "imagen-4.0-fast-generate-001"
    )
    backdrop_space: str | None = _setting("CLOSET_BACKDROP_SPACE", None)
    backdrop_space_api: str = _setting("CLOSET_BACKDROP_SPACE_API", "/infer")
    backdrop_space_steps: int = _setting("CLOSET_BACKDROP_SPACE_STEPS", 25, ge=1, le=150)
    backdrop_space_guidance: float = _setting("CLOSET_BACKDROP_SPACE_GUIDANCE", 5.0, ge=0, le=30)

    caption_backend: str | None = _setting("CLOSET_CAPTION_BACKEND", None)
    """Unset: `gemini` with Gemini or Vertex AI credentials, else `none`."""
    caption_model: str = _setting("CLOSET_CAPTION_MODEL", "gemini-2.5-flash")

    max_bytes: int = _setting("CLOSET_MAX_BYTES", 25 * 1024 * 1024, gt=0)
    max_pixels: int = _setting("CLOSET_MAX_PIXELS", 64_000_000, gt=0)
    min_side: int = _setting("CLOSET_MIN_SIDE", 32, ge=1, le=4096)
    allowed_formats: Annotated[tuple[ImageFormat, ...], NoDecode] = _setting(
        "CLOSET_ALLOWED_FORMATS", ("jpeg", "png", "webp", "gif", "heic", "avif"), min_length=1
    )
    working_size: int = _setting("CLOSET_WORKING_SIZE", 1024, ge=16, le=8192)

    output_format: OutputFormat = _setting("CLOSET_OUTPUT_FORMAT", "webp")
    output_quality: int = _setting("CLOSET_OUTPUT_QUALITY", 85, ge=1, le=100)
    # WebP's effort, 0 to 6: 2 encodes a 1024 px cut-out in half the time of libwebp's default
    # 4 for about 7% more bytes; 6 is smallest and many times slower.
    webp_method: int = _setting("CLOSET_WEBP_METHOD", 2, ge=0, le=6)
    output_max_size: int = _setting("CLOSET_OUTPUT_MAX_SIZE", 1024, ge=16, le=8192)
    thumbnail_size: int = _setting("CLOSET_THUMBNAIL_SIZE", 256, ge=16, le=8192)
    encode_workers: int = _setting("CLOSET_ENCODE_WORKERS", 4, ge=1, le=64)

    web_origins: Annotated[tuple[str, ...], NoDecode] = _setting(
        "CLOSET_WEB_ORIGIN", ("http://localhost:5173", "http://127.0.0.1:5173")
    )
    """Origins (scheme://host:port, comma-separated) whose pages may call the api (CORS)."""
    firebase_project: str | None = _setting("CLOSET_FIREBASE_PROJECT", None)
    """Whose Firebase ID tokens the api accepts; unset: the project's own."""
    signing_key: Path | None = _setting("CLOSET_SIGNING_KEY", None)
    """A service-account JSON key that signs URLs; unset: the runtime identity (IAM signBlob)."""
    upload_url_ttl_s: int = _setting("CLOSET_UPLOAD_URL_TTL_S", 900, ge=60, le=7 * 24 * 3600)
    image_url_ttl_s: int = _setting("CLOSET_IMAGE_URL_TTL_S", 900, ge=60, le=7 * 24 * 3600)

    cache: bool = _setting("CLOSET_CACHE", True)
    job_ttl_days: int = _setting("CLOSET_JOB_TTL_DAYS", 30, ge=1, le=3650)
    max_attempts: int = _setting("CLOSET_MAX_ATTEMPTS", 5, ge=1, le=100)
    stuck_after_s: float | None = _setting("CLOSET_STUCK_AFTER_S", None, gt=0)
    lease_s: float | None = _setting("CLOSET_LEASE_S", None, gt=0)
    """Unset: 1.2 times the function's ack deadline (see common/service.py)."""
    """Unset: a stage's ack deadline plus the longest retry backoff (see common/watchdog.py)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments, then the environment, then the defaults; no .env or secrets files.
        return init_settings, _Environment(settings_cls)

    @field_validator(
        "background_backend",
        "generative_backend",
        "segmentation_backend",
        "tryon_backend",
        "upscale_backend",
        "backdrop_backend",
        "caption_backend",
        "fashn_mode",
        "output_format",
        mode="before",
    )
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("allowed_formats", "web_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip().lower() for v in value.split(",") if v.strip())
        return value

    @field_validator("web_origins", mode="after")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        origins = tuple(origin.rstrip("/") for origin in value)
        for origin in origins:
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest:
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return origins

    @field_validator(
        "local_root", "u2net_home", "segformer_path", "upscale_dir", "signing_key", mode="after"
    )
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.thumbnail_size > self.output_max_size:
            raise ValueError("CLOSET_THUMBNAIL_SIZE must not exceed CLOSET_OUTPUT_MAX_SIZE")
        if len({self.uploads_bucket, self.work_bucket, self.results_bucket}) != 3:
            # Outputs in the uploads bucket would start new jobs: keep them apart.
            raise ValueError("the uploads, work and results buckets must be different")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting; a bad value raises `ConfigurationError` naming the variable."""
        env = os.environ if environ is None else environ
        unknown = [name for name in overrides if name not in cls.model_fields]
        if unknown:
            raise TypeError(f"no setting called {', '.join(unknown)}")
        warn_unknown_variables(env)
        if "project" not in overrides and not any(
            env.get(name) for name in ("GOOGLE_CLOUD_PROJECT", "CLOSET_PROJECT")
        ):
            overrides = {**overrides, "project": find_project(env)}
        try:
            with _reading(env):
                return cls(**overrides)
        except ValidationError as exc:
            raise ConfigurationError(_explain(exc, env, overrides)) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes`, validated like an argument to `from_env`."""
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigurationError(_explain(exc, {}, changes)) from None

    def ttl_days(self, kind: str) -> int:
        """How long a job of this kind and its results are kept."""
        return self.tryon_ttl_days if kind == "tryon" else self.job_ttl_days

    @property
    def blob_root(self) -> Path:
        return self.local_root or Path(".closet")

    @property
    def token_project(self) -> str:
        """The Firebase project whose ID tokens the api accepts."""
        return self.firebase_project or self.project

    @property
    def model_threads(self) -> int:
        """The intra-op threads of a model runtime (ONNX Runtime, torch) on the CPU."""
        return self.cpu_threads or available_cpus()

    @property
    def resolved_segmentation_backend(self) -> str:
        """`segformer` when weights are configured, else single-garment mode."""
        if self.segmentation_backend:
            return self.segmentation_backend.lower()
        return "segformer" if self.segformer_path else "single"

    @property
    def upscale_onnx(self) -> Path | None:
        """Where the configured Real-ESRGAN model's ONNX file is expected, if anywhere."""
        if self.upscale_dir is None:
            return None
        return self.upscale_dir / f"{self.upscale_model}.onnx"

    @property
    def encoding(self) -> list[object]:
        """How outputs are encoded: part of every result's cache key."""
        method = self.webp_method if self.output_format == "webp" else None
        return [self.output_format, self.output_quality, method]

    @property
    def resolved_upscale_backend(self) -> str:
        """`realesrgan` when its ONNX file exists, else `lanczos` (no model)."""
        if self.upscale_backend:
            return self.upscale_backend
        onnx = self.upscale_onnx
        return "realesrgan" if onnx is not None and onnx.is_file() else "lanczos"

    @property
    def resolved_caption_backend(self) -> str:
        """`gemini` when there are credentials for it, else `none` (no caption)."""
        if self.caption_backend:
            return self.caption_backend
        return "gemini" if self.has_generative_credentials else "none"

    @property
    def has_generative_credentials(self) -> bool:
        return bool(self.gemini_api_key) or self.use_vertexai

    def fingerprint(self) -> dict[str, object]:
        """The settings that change a result: part of the content-hash cache key."""
        background = self.background_backend
        generative = self.has_generative_credentials
        return {
            "background": background,
            "u2net": [self.u2net_model, str(self.u2net_home)] if background == "u2net" else None,
            "space": [self.space, self.space_api] if background == "space" else None,
            "removebg": self.removebg_url if background == "removebg" else None,
            "segmentation": self.resolved_segmentation_backend,
            "segformer": str(self.segformer_path) if self.segformer_path else None,
            "min_garment_area": self.min_garment_area,
            "generative": self.generative_backend if generative else None,
            "tagging": self.tagging_model if generative and self.tagging else None,
            "completion": self.completion_model if generative and self.completion else None,
            # What ingest accepts: a cached result must not outlive a tightened limit.
            "accepts": [list(self.allowed_formats), self.max_bytes, self.max_pixels, self.min_side],
            "working_size": self.working_size,
            "output": [*self.encoding, self.output_max_size],
            "thumbnail": self.thumbnail_size,
        }

    def tryon_fingerprint(self) -> dict[str, object]:
        """The settings that change a try-on result: part of its cache key."""
        backend = self.tryon_backend
        return {
            "tryon": backend,
            "fashn": [self.fashn_base_url, self.fashn_model, self.fashn_mode]
            if backend == "fashn"
            else None,
            "vertex": self.tryon_vertex_model if backend == "vertex" else None,
            "gemini": self.tryon_gemini_model if backend == "gemini" else None,
            "space": [self.tryon_space, self.tryon_space_steps] if backend == "space" else None,
            "accepts": [list(self.allowed_formats), self.max_bytes, self.max_pixels, self.min_side],
            "output": [*self.encoding, self.output_max_size],
            "thumbnail": self.thumbnail_size,
        }

    def studio_fingerprint(self) -> dict[str, object]:
        """The settings that change a studio result: part of its cache key."""
        upscale = self.resolved_upscale_backend
        backdrop = self.backdrop_backend
        caption = self.resolved_caption_backend
        return {
            "background": self.background_backend,
            "upscale": upscale,
            "upscale_model": self.upscale_model if upscale == "realesrgan" else None,
            "backdrop": backdrop,
            "backdrop_model": {
                "gemini": self.backdrop_gemini_model,
                "imagen": self.backdrop_imagen_model,
                "space": [
                    self.backdrop_space,
                    self.backdrop_space_api,
                    self.backdrop_space_steps,
                    self.backdrop_space_guidance,
                ],
            }.get(backdrop),
            "caption": caption,
            "caption_model": self.caption_model if caption == "gemini" else None,
            "accepts": [list(self.allowed_formats), self.max_bytes, self.max_pixels, self.min_side],
            "output": self.encoding,
            "thumbnail": self.thumbnail_size,
        }


def _env_of(info: FieldInfo) -> list[str]:
    extra = info.json_schema_extra
    assert isinstance(extra, dict)
    names = extra["env"]
    assert isinstance(names, list)
    return [str(name) for name in names]


def _is_secret(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and extra.get("secret") is True


def _field_for(key: object) -> str | None:
    """The field a validation error's location names (a field name or one of its variables)."""
    for name, info in Settings.model_fields.items():
        if key == name or key in _env_of(info):
            return name
    return None


def _explain(exc: ValidationError, environ: Mapping[str, str], overrides: Mapping[str, Any]) -> str:
    """One line per wrong value: which variable (or argument), what it holds, what is expected."""
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message.replace("Input should be", "should be")
        field = _field_for(error["loc"][0]) if error["loc"] else None
        if field is None:
            lines.append(message)
            continue
        if field in overrides:
            lines.append(f"argument {field}={overrides[field]!r}: {message}")
            continue
        names = _env_of(Settings.model_fields[field])
        variable = next((n for n in names if environ.get(n)), names[0])
        lines.append(f"{variable}={environ.get(variable, '')!r}: {message} (fix or unset it)")
    return "; ".join(lines)


def known_variables() -> list[str]:
    return [name for info in Settings.model_fields.values() for name in _env_of(info)]


# Names already reported, so one misspelling is one warning per process.
_reported: set[str] = set()


def warn_unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """Warn once about each `CLOSET_*` variable that no setting reads; returns the new ones."""
    known = known_variables()
    closet_known = [name for name in known if name.startswith(PREFIX)]
    found = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in known or name in _reported:
            continue
        _reported.add(name)
        found.append(name)
        closest = difflib.get_close_matches(name, closet_known, n=1, cutoff=0.6)
        hint = f"; did you mean {closest[0]}?" if closest else "; it is ignored"
        _log.warning(f"unknown variable {name}{hint}")
    return found


@cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings.from_env()


def env_names() -> list[tuple[str, object]]:
    """Every variable with its default, for the README and `closet config`."""
    return [(_env_of(info)[0], info.default) for info in Settings.model_fields.values()]


@dataclass(frozen=True)
class Effective:
    """One setting as `closet config` shows it."""

    name: str
    variable: str
    value: str
    origin: Origin


def effective(
    settings: Settings, environ: Mapping[str, str] | None = None, arguments: Iterable[str] = ()
) -> list[Effective]:
    """Every setting's value (secrets masked) and where it came from."""
    env = os.environ if environ is None else environ
    given = set(arguments)
    rows = []
    for name, info in Settings.model_fields.items():
        names = _env_of(info)
        variable = next((n for n in names if env.get(n)), names[0])
        origin: Origin = "default"
        if name in given:
            origin = "argument"
        elif env.get(variable):
            origin = "environment"
        value = getattr(settings, name)
        if isinstance(value, tuple):
            shown = ",".join(str(v) for v in value)
        elif value is None:
            shown = "(unset)"
        elif isinstance(value, bool):
            shown = str(value).lower()
        else:
            shown = str(value)
        if _is_secret(info) and value:
            shown = "****"
        rows.append(Effective(name, variable, shown, origin))
    return rows
