"""The pipeline's plumbing, read from the one declaration in `infra/topology.toml`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from common.errors import ConfigurationError
from common.pipelines import all_stages

DECLARATION = Path(__file__).resolve().parent.parent / "infra" / "topology.toml"


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    topic: str
    subscription: str
    ack_deadline_s: int
    memory: str
    min_instances: int


@dataclass(frozen=True)
class Topology:
    functions: tuple[FunctionSpec, ...]
    dead_letter: FunctionSpec
    max_delivery_attempts: int
    minimum_backoff_s: int
    maximum_backoff_s: int
    uploads_prefix: str

    @property
    def all_functions(self) -> tuple[FunctionSpec, ...]:
        return (*self.functions, self.dead_letter)

    def function(self, name: str) -> FunctionSpec:
        for spec in self.all_functions:
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
    dead = data["dead_letter"]
    topology = Topology(
        functions=tuple(
            FunctionSpec(
                name=f["name"],
                topic=f["topic"],
                subscription=f["subscription"],
                ack_deadline_s=int(f["ack_deadline_s"]),
                memory=f.get("memory", "1Gi"),
                min_instances=int(f.get("min_instances", 0)),
            )
            for f in data["function"]
        ),
        dead_letter=FunctionSpec(
            name=dead["function"],
            topic=dead["topic"],
            subscription=dead["subscription"],
            ack_deadline_s=int(dead.get("ack_deadline_s", 60)),
            memory=dead.get("memory", "512Mi"),
            min_instances=0,
        ),
        max_delivery_attempts=int(dead["max_delivery_attempts"]),
        minimum_backoff_s=int(data["retry"]["minimum_backoff_s"]),
        maximum_backoff_s=int(data["retry"]["maximum_backoff_s"]),
        uploads_prefix=data["buckets"]["uploads_prefix"],
    )
    declared = {spec.name for spec in topology.functions}
    missing = [stage for stage in all_stages() if stage not in declared]
    if missing:
        raise ConfigurationError(
            f"{path} has no function for the stages {', '.join(missing)} "
            "of the pipeline declaration (common/pipelines.py)"
        )
    return topology
