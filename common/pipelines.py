"""The one declaration of pipelines: which stages a job of each kind runs, which waits for which
(a line by default; `Step(after=...)` for branches that run side by side and a step that joins
them, see `common.graph`), with what progress and text, which handler runs each stage and which
models it loads.

The runtime (next hops, joins, progress), the Cloud Run services (which handler to build,
which model to warm), the local runner (every stage in one process) and the topology (a
function and a topic for every stage, checked at load) all read this module. Handlers are named
by import path and imported only when built, so a function imports its own handler and no other.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from common.backends.lazy import BackendKind, Backends, Warm
from common.errors import InvalidRequest
from common.graph import Pipeline, Step
from common.stage import Stage, StageContext

__all__ = ["HANDLERS", "PIPELINES", "Handler", "Pipeline", "Step", "build_stage", "pipeline"]


@dataclass(frozen=True)
class Handler:
    """How to build one stage's handler, and which backends it needs loaded."""

    target: str
    """`module:Class`; the class has `from_context(StageContext)`."""
    backends: tuple[BackendKind, ...] = ()


HANDLERS: dict[str, Handler] = {
    "ingest": Handler("functions.ingest.handler:Ingest"),
    "remove_background": Handler(
        "functions.remove_background.handler:RemoveBackground", ("background",)
    ),
    "segment": Handler("functions.segment.handler:Segment", ("segmentation",)),
    "expand": Handler("functions.expand.handler:Expand", ("generative",)),
    "finalize": Handler("functions.finalize.handler:Finalize"),
    "tryon_prepare": Handler("functions.tryon_prepare.handler:TryonPrepare"),
    "tryon_generate": Handler("functions.tryon_generate.handler:TryonGenerate", ("tryon",)),
    "studio_prepare": Handler("functions.studio_prepare.handler:StudioPrepare", ("background",)),
    "upscale": Handler("functions.upscale.handler:Upscale", ("upscale",)),
    "backdrop": Handler("functions.backdrop.handler:Backdrop", ("backdrop",)),
    "caption": Handler("functions.caption.handler:Caption", ("caption",)),
    "compose": Handler("functions.compose.handler:Compose"),
}

SAVING = "Saving the images"

PIPELINES: dict[str, Pipeline] = {
    "closet": Pipeline(
        kind="closet",
        path="",
        describes="a photo of clothing becomes one clean, labelled image per garment",
        steps=(
            Step("ingest", 10, "Checking the photo"),
            Step("remove_background", 35, "Removing the background"),
            Step("segment", 60, "Finding the garments"),
            Step("expand", 85, "Completing and tagging garments", optional=True),
            Step("finalize", 100, SAVING),
        ),
    ),
    "tryon": Pipeline(
        kind="tryon",
        path="tryon/",
        describes="a person photo wearing a finished closet item",
        steps=(
            Step("tryon_prepare", 15, "Checking the photos"),
            Step("tryon_generate", 85, "Dressing the person"),
            Step("finalize", 100, SAVING),
        ),
    ),
    # Upscale, backdrop and caption need only the cut-out: all three run side by side, and
    # compose waits for them all (the upscale is skipped when the subject is large enough).
    "studio": Pipeline(
        kind="studio",
        path="studio/",
        describes="a photo or a closet item becomes listing-ready images and their words",
        steps=(
            Step("studio_prepare", 20, "Cutting out the subject"),
            Step("upscale", 45, "Sharpening the subject"),
            Step("backdrop", 55, "Making the backdrop", after=("studio_prepare",)),
            Step("caption", 65, "Writing the caption", optional=True, after=("studio_prepare",)),
            Step("compose", 100, "Composing the shots", after=("upscale", "backdrop", "caption")),
        ),
    ),
}

_USER_PATH = re.compile(r"^users/([^/]+)/(.+)$")


def pipeline(kind: str) -> Pipeline:
    try:
        return PIPELINES[kind]
    except KeyError:
        raise InvalidRequest(f"no pipeline of kind {kind!r}") from None


def pipeline_for_upload(name: str) -> Pipeline:
    """The pipeline an upload at `name` starts: `users/{uid}/tryon/x.jpg` is a try-on."""
    match = _USER_PATH.match(name)
    rest = match.group(2) if match else name
    found = [p for p in PIPELINES.values() if p.path and rest.startswith(p.path)]
    return max(found, key=lambda p: len(p.path)) if found else PIPELINES["closet"]


def all_stages() -> Iterator[str]:
    """Every stage of every pipeline, once, in declaration order."""
    seen: set[str] = set()
    for declared in PIPELINES.values():
        for stage in declared.stages:
            if stage not in seen:
                seen.add(stage)
                yield stage


def build_stage(stage: str, context: StageContext) -> Stage:
    """Import the stage's handler class and build it; its backends load now."""
    try:
        declared = HANDLERS[stage]
    except KeyError:
        raise ValueError(f"no stage called {stage!r}") from None
    module_name, _, class_name = declared.target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    handler: Stage = cls.from_context(context)
    return handler


def warmer(stage: str, backends: Backends) -> Warm:
    """Load the stage's models now and return how to touch them on a warm-up."""
    kinds = HANDLERS[stage].backends if stage in HANDLERS else ()
    return backends.warmer(kinds)
