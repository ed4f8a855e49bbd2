"""Content-hash cache: identical bytes with identical options reuse the earlier result."""

from __future__ import annotations

import hashlib
import json

from pydantic import ValidationError

from common.config import Settings
from common.ports import BlobStore
from common.schemas import Result

PREFIX = ".cache"


def cache_key(sha256: str, settings: Settings) -> str:
    options = json.dumps(settings.fingerprint(), sort_keys=True).encode()
    return f"{sha256}-{hashlib.sha256(options).hexdigest()[:16]}"


def _name(key: str) -> str:
    return f"{PREFIX}/{key}.json"


def lookup(blobs: BlobStore, settings: Settings, key: str) -> Result | None:
    """The cached result, if it exists and every image it names is still there."""
    bucket = settings.results_bucket
    if not blobs.exists(bucket, _name(key)):
        return None
    try:
        result = Result.model_validate_json(blobs.read(bucket, _name(key)))
    except ValidationError:
        return None
    refs = [result.cutout] + [ref for item in result.items for ref in (item.image, item.thumbnail)]
    if not all(blobs.exists(bucket, ref.path) for ref in refs):
        return None
    return result


def store(blobs: BlobStore, settings: Settings, key: str, result: Result) -> None:
    blobs.write(
        settings.results_bucket,
        _name(key),
        result.model_dump_json(by_alias=True, exclude_none=True).encode(),
        "application/json",
    )
