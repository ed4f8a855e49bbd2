"""Content-hash cache: identical bytes with identical options reuse the earlier result."""

from __future__ import annotations

import hashlib
import json

from pydantic import ValidationError

from common.config import Settings
from common.ports import BlobStore
from common.schemas import ImageRef, Result

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


def materialize(blobs: BlobStore, settings: Settings, result: Result, job_id: str) -> Result:
    """The cached result copied under `job_id/`: every job owns its outputs.

    Copies are server-side in Cloud Storage; deleting an earlier job's outputs can then never
    break a later job that was served from the cache.
    """
    bucket = settings.results_bucket

    def moved(ref: ImageRef) -> ImageRef:
        _, _, rest = ref.path.partition("/")
        target = f"{job_id}/{rest}"
        return ref.model_copy(update={"path": target, "url": blobs.copy(bucket, ref.path, target)})

    items = [
        item.model_copy(update={"image": moved(item.image), "thumbnail": moved(item.thumbnail)})
        for item in result.items
    ]
    copied = Result(items=items, cutout=moved(result.cutout), manifest=f"{job_id}/manifest.json")
    write_manifest(blobs, settings, copied)
    return copied


def write_manifest(blobs: BlobStore, settings: Settings, result: Result) -> None:
    """The result as JSON next to the images, for clients that read the bucket, not Firestore."""
    assert result.manifest is not None
    blobs.write(
        settings.results_bucket,
        result.manifest,
        result.model_dump_json(by_alias=True, exclude_none=True, indent=2).encode(),
        "application/json",
    )
