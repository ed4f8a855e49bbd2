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
    """The key of a closet result: the upload's bytes and every option that changes it."""
    return options_key(sha256, settings.fingerprint())


def options_key(content: str, options: dict[str, object]) -> str:
    encoded = json.dumps(options, sort_keys=True).encode()
    return f"{content}-{hashlib.sha256(encoded).hexdigest()[:16]}"


def results_prefix(kind: str, job_id: str) -> str:
    """Where a job's outputs live in the results bucket; try-ons under `tryon/` expire sooner."""
    return job_id if kind == "closet" else f"{kind}/{job_id}"


def _images(result: Result) -> list[ImageRef]:
    refs = [ref for item in result.items for ref in (item.image, item.thumbnail)]
    return [result.cutout, *refs] if result.cutout else refs


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
    if not all(blobs.exists(bucket, ref.path) for ref in _images(result)):
        return None
    return result


def store(blobs: BlobStore, settings: Settings, key: str, result: Result) -> None:
    blobs.write(
        settings.results_bucket,
        _name(key),
        result.model_dump_json(by_alias=True, exclude_none=True).encode(),
        "application/json",
    )


def materialize(blobs: BlobStore, settings: Settings, result: Result, prefix: str) -> Result:
    """The cached result copied under `prefix/` (`results_prefix`): every job owns its outputs.

    Copies are server-side in Cloud Storage; deleting an earlier job's outputs can then never
    break a later job that was served from the cache.
    """
    bucket = settings.results_bucket

    assert result.manifest is not None, "a cached result has its manifest"
    depth = result.manifest.count("/")  # the earlier job's prefix has as many parts

    def moved(ref: ImageRef) -> ImageRef:
        rest = ref.path.split("/", depth)[-1]
        target = f"{prefix}/{rest}"
        return ref.model_copy(update={"path": target, "url": blobs.copy(bucket, ref.path, target)})

    items = [
        item.model_copy(update={"image": moved(item.image), "thumbnail": moved(item.thumbnail)})
        for item in result.items
    ]
    cutout = moved(result.cutout) if result.cutout else None
    copied = Result(items=items, cutout=cutout, manifest=f"{prefix}/manifest.json")
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
