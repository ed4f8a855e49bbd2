"""Model backends: one class per backend, a registry per kind, a factory by name."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TypeVar

from common.errors import ConfigurationError

T = TypeVar("T")


def load_class(kind: str, registry: Mapping[str, str], name: str, base: type[T]) -> type[T]:
    """Import the backend class registered as `name`; unknown names fail with the choices."""
    try:
        target = registry[name]
    except KeyError:
        choices = ", ".join(sorted(registry))
        raise ConfigurationError(
            f"unknown {kind} backend {name!r}; choose one of {choices}"
        ) from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"{kind} backend {name!r} needs a package that is not installed: {exc.name}"
        ) from exc
    cls = getattr(module, class_name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"{target} is not a {base.__name__}")
    return cls
