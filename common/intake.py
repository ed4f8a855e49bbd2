"""What every pipeline does with a photo before its own work: the upload's limits, the decode
with the configured rules, the cut-out, and a finished closet item named by its path.

Ingest, remove_background, tryon_prepare and studio_prepare share these, so a photo is accepted
or refused the same way whichever pipeline it starts.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from common import imaging
from common.config import Settings
from common.errors import ImageTooLarge, InvalidRequest, ItemNotFound, PermanentError
from common.ports import BlobStore, JobStore
from common.schemas import ItemResult, JobStatus, Source

if TYPE_CHECKING:  # ingest needs no background backend loaded
    from common.backends.background import BackgroundBackend

ITEM = re.compile(r"^(?P<job>[A-Za-z0-9_-]{6,128})/items/(?P<index>\d{1,3})$")
# Below this share of visible pixels there is nothing worth placing or labelling.
MIN_FOREGROUND = 0.001


def read_upload(blobs: BlobStore, settings: Settings, source: Source) -> tuple[bytes, Source]:
    """The upload's bytes (its generation) and its source with size and SHA-256; an upload
    over the byte limit is refused before it is downloaded."""
    limit = settings.max_bytes
    if source.size is not None and source.size > limit:
        raise ImageTooLarge(f"the upload is {source.size} bytes; the limit is {limit}")
    data = blobs.read(source.bucket, source.name, generation=source.generation)
    sha256 = hashlib.sha256(data).hexdigest()
    return data, source.model_copy(update={"sha256": sha256, "size": len(data)})


def decode(data: bytes, settings: Settings, working_size: int) -> imaging.DecodedImage:
    """The photo decoded under the configured limits, its long edge at most `working_size`."""
    return imaging.decode(
        data,
        allowed_formats=settings.allowed_formats,
        max_bytes=settings.max_bytes,
        max_pixels=settings.max_pixels,
        min_side=settings.min_side,
        working_size=working_size,
    )


def cut_out(
    image: Image.Image, backend: BackgroundBackend, empty: type[PermanentError], what: str
) -> tuple[Image.Image, str]:
    """The RGBA cut-out and who made it; an image with transparency already is its own (a
    cut-out uploaded, a closet item). Nothing standing out raises `empty`."""
    if image.mode == "RGBA":
        cutout, backend_name = image, "upload-alpha"
    else:
        cutout, backend_name = backend.remove(image.convert("RGB")), backend.name
    alpha = np.asarray(cutout.getchannel("A"))
    if float((alpha >= 128).mean()) < MIN_FOREGROUND:
        raise empty(f"nothing stands out from the background in this {what}")
    return cutout, backend_name


def closet_item(jobs: JobStore, uid: str, named: str | None, field: str) -> ItemResult:
    """The finished closet item `JOB_ID/items/N` of user `uid`, named in metadata `field`."""
    if not named:
        raise InvalidRequest(f"metadata `{field}` must name a closet item")
    match = ITEM.match(named)
    if match is None:
        raise InvalidRequest(f"`{field}` must look like JOB_ID/items/N, got {named!r}")
    owner = jobs.get(match["job"])
    index = int(match["index"])
    missing = ItemNotFound(f"you have no finished closet item {named}")
    if owner is None or owner.uid != uid or owner.kind != "closet":
        raise missing
    if owner.status is not JobStatus.DONE or owner.result is None:
        raise missing
    if index >= len(owner.result.items):
        raise missing
    return owner.result.items[index]
