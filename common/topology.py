"""The pipeline's plumbing, read from the one declaration in `infra/topology.toml`.

The declaration ships inside the package (`common/topology.toml` links to it in the source
tree, and a wheel holds a copy), so an installed function reads it with `importlib.resources`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from common.errors import ConfigurationError
from common.pipelines import PIPELINES, all_stages

DECLARATION = Path(str(resources.files("common").joinpath("topology.toml")))


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    topic: str
    """The topic whose push subscription feeds it; empty for an HTTP function."""
    subscription: str
    ack_deadline_s: int
    """The request timeout (a pushed message's lease)."""
    memory: str
    min_instances: int
    group: str | None = None
    """The optional-dependency group of pyproject.toml the function's image installs."""
    models: tuple[str, ...] = ()
    """Weights baked into the function's image (`closet models fetch --function`)."""
    cpu: int = 1
    concurrency: int = 80
    gpu: int = 0
    reads: tuple[str, ...] = ()
    """Buckets (uploads, work, results) the function reads; `writes` implies reading too."""
    writes: tuple[str, ...] = ()
    publishes: tuple[str, ...] = ()
    """Functions whose topic this one publishes to: derived from the pipeline declaration
    (the stage after it in every pipeline; for the uploads trigger, the first stage of every
    other pipeline), never written in the topology."""
    secrets: tuple[str, ...] = ()
    """Environment variables filled from Secret Manager (for example GEMINI_API_KEY)."""
    schedule: str | None = None
    """Cron schedule on which Cloud Scheduler publishes to its topic (the watchdog's sweep)."""
    http: bool = False
    """Called directly over HTTP (the web app's api), not pushed by Pub/Sub."""


@dataclass(frozen=True)
class Topology:
    functions: tuple[FunctionSpec, ...]
    dead_letter: FunctionSpec
    max_delivery_attempts: int
    minimum_backoff_s: int
    maximum_backoff_s: int
    uploads_prefix: str
    http_functions: tuple[FunctionSpec, ...] = ()

    @property
    def all_functions(self) -> tuple[FunctionSpec, ...]:
        """Every function Pub/Sub pushes to (each with its topic and subscription)."""
        return (*self.functions, self.dead_letter)

    @property
    def services(self) -> tuple[FunctionSpec, ...]:
        """Every Cloud Run service: the pushed functions, then the HTTP ones."""
        return (*self.all_functions, *self.http_functions)

    def function(self, name: str) -> FunctionSpec:
        for spec in self.services:
            if spec.name == name:
                return spec
        raise KeyError(name)


@cache
def load(path: Path = DECLARATION) -> Topology:
    """The declaration, read once; a missing file is a startup error, not a per-message one."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read the topology declaration {path}: {exc}") from None
    try:
        return _topology(data, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"bad topology declaration {path}: {exc!r}") from None


def _spec(entry: dict[str, Any], name: str, memory: str, min_instances: int) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        topic=entry["topic"],
        subscription=entry["subscription"],
        ack_deadline_s=int(entry.get("ack_deadline_s", 60)),
        memory=entry.get("memory", memory),
        min_instances=min_instances,
        group=entry.get("group"),
        models=tuple(entry.get("models", ())),
        cpu=int(entry.get("cpu", 1)),
        concurrency=int(entry.get("concurrency", 80)),
        gpu=int(entry.get("gpu", 0)),
        reads=tuple(entry.get("reads", ())),
        writes=tuple(entry.get("writes", ())),
        publishes=_publishes(name),
        secrets=tuple(entry.get("secrets", ())),
        schedule=entry.get("schedule"),
    )


def _http_spec(entry: dict[str, Any]) -> FunctionSpec:
    """An HTTP function: no topic, no subscription, nothing it publishes."""
    if "topic" in entry or "subscription" in entry:
        raise ValueError(f"HTTP function {entry['name']} takes no topic or subscription")
    return FunctionSpec(
        name=entry["name"],
        topic="",
        subscription="",
        ack_deadline_s=int(entry.get("timeout_s", 60)),
        memory=entry.get("memory", "512Mi"),
        min_instances=int(entry.get("min_instances", 0)),
        group=entry.get("group"),
        cpu=int(entry.get("cpu", 1)),
        concurrency=int(entry.get("concurrency", 80)),
        reads=tuple(entry.get("reads", ())),
        writes=tuple(entry.get("writes", ())),
        http=True,
    )


WATCHDOG = "watchdog"


def _publishes(function: str) -> tuple[str, ...]:
    """The functions a function hands work to, read from `common.pipelines`."""
    if function == WATCHDOG:
        return tuple(all_stages())  # it re-drives a job at whatever stage it stopped
    targets: list[str] = []
    for pipeline in PIPELINES.values():
        if function in pipeline.stages and (following := pipeline.next_stage(function)):
            targets.append(following)
    if function == PIPELINES["closet"].first:
        # The uploads trigger starts every pipeline: it publishes the others' first message.
        targets += [p.first for p in PIPELINES.values() if p.first != function]
    return tuple(dict.fromkeys(targets))


def _topology(data: dict[str, Any], path: Path) -> Topology:
    dead = data["dead_letter"]
    topology = Topology(
        functions=tuple(
            _spec(f, f["name"], "1Gi", int(f.get("min_instances", 0))) for f in data["function"]
        ),
        dead_letter=_spec(dead, dead["function"], "512Mi", 0),
        max_delivery_attempts=int(dead["max_delivery_attempts"]),
        minimum_backoff_s=int(data["retry"]["minimum_backoff_s"]),
        maximum_backoff_s=int(data["retry"]["maximum_backoff_s"]),
        uploads_prefix=data["buckets"]["uploads_prefix"],
        http_functions=tuple(_http_spec(f) for f in data.get("http_function", ())),
    )
    declared = {spec.name for spec in topology.functions}
    missing = [stage for stage in all_stages() if stage not in declared]
    if missing:
        raise ConfigurationError(
            f"{path} has no function for the stages {', '.join(missing)} "
            "of the pipeline declaration (common/pipelines.py)"
        )
    return topology
