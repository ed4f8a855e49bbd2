"""Every setting, read once from the environment, validated, typed.

Precedence: an explicit argument to `Settings.from_env(overrides=...)`, then the environment
variable, then the default. Nothing else in the code base reads `os.environ` for settings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast, get_args

from common.errors import ConfigurationError

OutputFormat = Literal["webp", "jpeg", "png"]
ImageFormat = Literal["jpeg", "png", "webp", "gif"]


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {raw!r}")
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"expected a fraction in [0, 1), got {raw!r}")
    return value


def _quality(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 100:
        raise ValueError(f"expected a quality from 1 to 100, got {raw!r}")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {raw!r}")
        return value

    return parse


def _formats(raw: str) -> tuple[str, ...]:
    allowed = get_args(ImageFormat)
    values = tuple(v.strip().lower() for v in raw.split(",") if v.strip())
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise ValueError(f"expected a comma list of {', '.join(allowed)}, got {raw!r}")
    return values


def _optional_path(raw: str) -> Path | None:
    return Path(raw).expanduser() if raw.strip() else None


def _optional_str(raw: str) -> str | None:
    return raw.strip() or None


LOCAL_PROJECT = "closet-local"


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


def _setting(env: str | tuple[str, ...], default: Any, parse: Callable[[str], Any] = str) -> Any:
    names = (env,) if isinstance(env, str) else env
    return field(default=default, metadata={"env": names, "parse": parse})


@dataclass(frozen=True)
class Settings:
    """The whole configuration of a process; see the README for every variable."""

    project: str = _setting(("GOOGLE_CLOUD_PROJECT", "CLOSET_PROJECT"), LOCAL_PROJECT)
    """Unset: found as the Google clients find it (see `find_project`)."""
    uploads_bucket: str = _setting("CLOSET_UPLOADS_BUCKET", "closet-uploads")
    work_bucket: str = _setting("CLOSET_WORK_BUCKET", "closet-work")
    results_bucket: str = _setting("CLOSET_RESULTS_BUCKET", "closet-results")
    local_root: Path | None = _setting("CLOSET_LOCAL_ROOT", None, _optional_path)
    """Folder of the local blob store; unset means `.closet` (or, for `closet run`, DIR/.closet)."""
    default_uid: str = _setting("CLOSET_DEFAULT_UID", "anonymous")

    background_backend: str = _setting("CLOSET_BACKGROUND_BACKEND", "classic", str.lower)
    u2net_model: str = _setting("CLOSET_U2NET_MODEL", "u2net")
    u2net_home: Path | None = _setting("U2NET_HOME", Path("~/.u2net").expanduser(), _optional_path)
    space: str | None = _setting("CLOSET_SPACE", None, _optional_str)
    space_api: str = _setting("CLOSET_SPACE_API", "/predict")
    hf_token: str | None = _setting(("CLOSET_HF_TOKEN", "HF_TOKEN"), None, _optional_str)
    removebg_api_key: str | None = _setting("CLOSET_REMOVEBG_API_KEY", None, _optional_str)
    removebg_url: str = _setting("CLOSET_REMOVEBG_URL", "https://api.remove.bg/v1.0/removebg")
    remote_timeout_s: float = _setting("CLOSET_REMOTE_TIMEOUT_S", 60.0, float)

    segmentation_backend: str | None = _setting("CLOSET_SEGMENTATION_BACKEND", None, _optional_str)
    segformer_path: Path | None = _setting("CLOSET_SEGFORMER_PATH", None, _optional_path)
    min_garment_area: float = _setting("CLOSET_MIN_GARMENT_AREA", 0.005, _fraction)

    generative_backend: str = _setting("CLOSET_GENERATIVE_BACKEND", "gemini", str.lower)
    gemini_api_key: str | None = _setting(("GEMINI_API_KEY", "GOOGLE_API_KEY"), None, _optional_str)
    use_vertexai: bool = _setting("GOOGLE_GENAI_USE_VERTEXAI", False, _bool)
    vertex_location: str = _setting("GOOGLE_CLOUD_LOCATION", "us-central1")
    gemini_base_url: str | None = _setting("CLOSET_GEMINI_BASE_URL", None, _optional_str)
    tagging_model: str = _setting("CLOSET_TAGGING_MODEL", "gemini-2.5-flash")
    completion_model: str = _setting("CLOSET_COMPLETION_MODEL", "gemini-2.5-flash-image")
    tagging: bool = _setting("CLOSET_TAGGING", True, _bool)
    completion: bool = _setting("CLOSET_COMPLETION", True, _bool)

    max_bytes: int = _setting("CLOSET_MAX_BYTES", 25 * 1024 * 1024, _positive_int)
    max_pixels: int = _setting("CLOSET_MAX_PIXELS", 64_000_000, _positive_int)
    min_side: int = _setting("CLOSET_MIN_SIDE", 32, _positive_int)
    allowed_formats: tuple[str, ...] = _setting(
        "CLOSET_ALLOWED_FORMATS", ("jpeg", "png", "webp", "gif"), _formats
    )
    working_size: int = _setting("CLOSET_WORKING_SIZE", 1024, _positive_int)

    output_format: str = _setting("CLOSET_OUTPUT_FORMAT", "webp", _choice(get_args(OutputFormat)))
    output_quality: int = _setting("CLOSET_OUTPUT_QUALITY", 85, _quality)
    output_max_size: int = _setting("CLOSET_OUTPUT_MAX_SIZE", 1024, _positive_int)
    thumbnail_size: int = _setting("CLOSET_THUMBNAIL_SIZE", 256, _positive_int)
    encode_workers: int = _setting("CLOSET_ENCODE_WORKERS", 4, _positive_int)

    cache: bool = _setting("CLOSET_CACHE", True, _bool)
    job_ttl_days: int = _setting("CLOSET_JOB_TTL_DAYS", 30, _positive_int)
    max_attempts: int = _setting("CLOSET_MAX_ATTEMPTS", 5, _positive_int)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting; a bad value raises `ConfigurationError` naming the variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in overrides:
                values[f.name] = overrides[f.name]
                continue
            names = cast(tuple[str, ...], f.metadata["env"])
            raw = next((env[name] for name in names if name in env), None)
            if raw is None:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigurationError(f"{names[0]}: {exc}") from None
        if "project" not in values:
            values["project"] = find_project(env)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.thumbnail_size > self.output_max_size:
            raise ConfigurationError("CLOSET_THUMBNAIL_SIZE must not exceed CLOSET_OUTPUT_MAX_SIZE")
        if len({self.uploads_bucket, self.work_bucket, self.results_bucket}) != 3:
            # Outputs in the uploads bucket would start new jobs: keep them apart.
            raise ConfigurationError("the uploads, work and results buckets must be different")

    @property
    def blob_root(self) -> Path:
        return self.local_root or Path(".closet")

    @property
    def resolved_segmentation_backend(self) -> str:
        """`segformer` when weights are configured, else single-garment mode."""
        if self.segmentation_backend:
            return self.segmentation_backend.lower()
        return "segformer" if self.segformer_path else "single"

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
            "output": [self.output_format, self.output_quality, self.output_max_size],
            "thumbnail": self.thumbnail_size,
        }


@cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings.from_env()


def env_names() -> list[tuple[str, object]]:
    """Every variable with its default, for the README and `closet config`."""
    return [(f.metadata["env"][0], f.default) for f in fields(Settings)]
