"""The results a job delivers: images encoded in parallel (each with its thumbnail) into the
results bucket, the manifest beside them, and the result cached when it may be."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from common import cache, imaging
from common.config import Settings
from common.ports import BlobStore
from common.schemas import ImageRef, Result, StageMessage
from common.stage import StageOutcome

# Result names are immutable per job; the work bucket never serves clients.
RESULT_CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Output:
    name: str
    """Its path in the results bucket."""
    image: Image.Image
    max_size: int
    """The long edge it is stored at, at most (a smaller image is not enlarged)."""


class Results:
    """Writes a job's outputs; finalize and compose share it."""

    def __init__(self, settings: Settings, blobs: BlobStore) -> None:
        self.settings = settings
        self.blobs = blobs
        self._pool: tuple[int, ThreadPoolExecutor] | None = None
        self._pool_lock = threading.Lock()

    @property
    def pool(self) -> ThreadPoolExecutor:
        """The encoders' threads: started on first use in this process, then kept (a forked
        child has none of its parent's threads, so it starts its own)."""
        with self._pool_lock:
            if self._pool is None or self._pool[0] != os.getpid():
                pool = ThreadPoolExecutor(
                    max_workers=self.settings.encode_workers, thread_name_prefix="encode"
                )
                self._pool = (os.getpid(), pool)
            return self._pool[1]

    @property
    def ext(self) -> str:
        fmt = self.settings.output_format
        return "jpg" if fmt == "jpeg" else fmt

    def image_and_thumbnail(self, stem: str, image: Image.Image, max_size: int) -> list[Output]:
        """`stem.EXT` and `stem.thumb.EXT`."""
        return [
            Output(f"{stem}.{self.ext}", image, max_size),
            Output(f"{stem}.thumb.{self.ext}", image, self.settings.thumbnail_size),
        ]

    def store_all(self, outputs: Iterable[Output]) -> list[ImageRef]:
        """Encode and write each output, in order; an output a generator yields starts at once.

        Pillow releases the GIL while encoding, so threads give real parallelism here."""
        return list(self.pool.map(self.store, outputs))

    def store(self, output: Output) -> ImageRef:
        settings = self.settings
        image = imaging.fit(output.image, output.max_size)
        data = imaging.encode(
            image,
            settings.output_format,
            quality=settings.output_quality,
            webp_method=settings.webp_method,
        )
        url = self.blobs.write(
            settings.results_bucket,
            output.name,
            data,
            imaging.CONTENT_TYPES[settings.output_format],
            cache_control=RESULT_CACHE_CONTROL,
        )
        return ImageRef(
            url=url,
            path=output.name,
            width=image.width,
            height=image.height,
            bytes=len(data),
            format=settings.output_format,
        )

    def finished(
        self, message: StageMessage, result: Result, noun: str, note: str = ""
    ) -> StageOutcome:
        """The manifest written, the result cached when it may be, and the job done."""
        settings = self.settings
        cache.write_manifest(self.blobs, settings, result)
        if settings.cache and message.cache_key and message.cacheable:
            cache.store(self.blobs, settings, message.cache_key, result)
        count = len(result.items)
        return StageOutcome(
            backend=settings.output_format,
            result=result,
            finished=True,
            message=f"Done: {count} {noun}{'s' if count != 1 else ''}{note}",
        )
