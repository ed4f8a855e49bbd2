"""The model backends of one process, each loaded on first use: a function loads only its own."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from common.config import Settings

if TYPE_CHECKING:
    from common.backends.backdrop import BackdropBackend
    from common.backends.background import BackgroundBackend
    from common.backends.caption import CaptionBackend
    from common.backends.generative import GenerativeBackend
    from common.backends.segmentation import SegmentationBackend
    from common.backends.tryon import TryonBackend
    from common.backends.upscale import UpscaleBackend

BackendKind = Literal[
    "background", "segmentation", "generative", "tryon", "upscale", "backdrop", "caption"
]
Warm = Callable[[], None]


class Backends:
    """Tests pass instances in; `generative=None` means "no credentials", not "load it"."""

    def __init__(
        self,
        settings: Settings,
        *,
        background: BackgroundBackend | None = None,
        segmentation: SegmentationBackend | None = None,
        generative: GenerativeBackend | Literal["load"] | None = "load",
        tryon: TryonBackend | None = None,
        upscale: UpscaleBackend | None = None,
        backdrop: BackdropBackend | None = None,
        caption: CaptionBackend | None = None,
    ) -> None:
        self.settings = settings
        self._background = background
        self._segmentation = segmentation
        self._generative = generative
        self._tryon = tryon
        self._upscale = upscale
        self._backdrop = backdrop
        self._caption = caption

    @cached_property
    def background(self) -> BackgroundBackend:
        from common.backends.background import new_background

        return self._background or new_background(self.settings)

    @cached_property
    def segmentation(self) -> SegmentationBackend:
        from common.backends.segmentation import new_segmentation

        return self._segmentation or new_segmentation(self.settings)

    @cached_property
    def generative(self) -> GenerativeBackend | None:
        from common.backends.generative import new_generative

        if self._generative == "load":
            return new_generative(self.settings)
        return self._generative

    @cached_property
    def tryon(self) -> TryonBackend:
        from common.backends.tryon import new_tryon

        return self._tryon or new_tryon(self.settings)

    @cached_property
    def upscale(self) -> UpscaleBackend:
        from common.backends.upscale import new_upscale

        return self._upscale or new_upscale(self.settings)

    @cached_property
    def backdrop(self) -> BackdropBackend:
        from common.backends.backdrop import new_backdrop

        return self._backdrop or new_backdrop(self.settings)

    @cached_property
    def caption(self) -> CaptionBackend:
        from common.backends.caption import new_caption

        return self._caption or new_caption(self.settings)

    def warmer(self, kinds: Iterable[BackendKind]) -> Warm:
        """Load these backends now and return how to touch them (a no-op without models)."""
        loaded = [getattr(self, kind) for kind in kinds]
        touches = [backend.warmup for backend in loaded if backend is not None]

        def warm() -> None:
            for touch in touches:
                touch()

        return warm
