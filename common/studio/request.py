"""A studio job's request (the upload's metadata as `Inputs`), checked, with its defaults.

studio_prepare checks it before any photo is read; the api checks the same request before it
signs an upload, so a bad one is refused by the same rules in both places."""

from __future__ import annotations

import re

from common.backends.backdrop.base import STYLES
from common.errors import InvalidRequest
from common.schemas import Inputs, StudioPlan
from common.studio.compose import ASPECTS

CONTEXT_MAX = 2000
DEFAULT_STYLE = "pastel"
DEFAULT_ASPECTS = ("1:1", "4:5", "9:16")
DEFAULT_LANGUAGE = "en"
# A BCP 47 tag (`en`, `pt-BR`) or a language's name (`French`).
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$|^[^\W\d_][\w ()'-]{1,39}$")


def plan_of(inputs: Inputs | None) -> StudioPlan:
    """The request checked and with its defaults: bad metadata raises InvalidRequest."""
    style = (inputs.style if inputs else None) or DEFAULT_STYLE
    if style not in STYLES:
        raise InvalidRequest(f"`style` must be one of {', '.join(STYLES)}, got {style!r}")
    prompt = (inputs.prompt if inputs else None) or None
    if style == "scene" and not prompt:
        raise InvalidRequest("style `scene` needs metadata `prompt` saying what the scene shows")
    aspects = list(dict.fromkeys(inputs.aspects if inputs and inputs.aspects else DEFAULT_ASPECTS))
    unknown = [aspect for aspect in aspects if aspect not in ASPECTS]
    if unknown:
        raise InvalidRequest(
            f"`aspect` must be among {', '.join(ASPECTS)}, got {', '.join(map(repr, unknown))}"
        )
    context = (inputs.context if inputs else None) or None
    if context is not None and len(context) > CONTEXT_MAX:
        raise InvalidRequest(f"`context` is {len(context)} characters; at most {CONTEXT_MAX}")
    language = (inputs.language if inputs else None) or DEFAULT_LANGUAGE
    if not _LANGUAGE.match(language):
        raise InvalidRequest(
            f"`language` must be a language tag such as en or pt-BR, got {language!r}"
        )
    return StudioPlan(
        style=style, prompt=prompt, aspects=aspects, context=context, language=language
    )
