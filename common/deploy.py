"""Renders `infra/topology.toml` for Google Cloud: Terraform variables and `cloudbuild.yaml`.

The topology is the one list of functions, topics and subscriptions: Terraform reads the
variables this writes (`infra/topology.auto.tfvars.json`) and loops over them, and the build
steps of `cloudbuild.yaml` are generated here, so a function added to the topology is deployed
without a second list to keep in step. Standard library only: Cloud Build runs it on a bare
Python image.

    python -m common.deploy tfvars infra/topology.auto.tfvars.json
    python -m common.deploy cloudbuild cloudbuild.yaml
    python -m common.deploy builds - --engine podman     (the local image builds)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.topology import FunctionSpec, Topology, load

UPLOADS_FUNCTION = "ingest"
"""The function whose topic receives the uploads bucket's notifications."""
BUCKETS = ("uploads", "work", "results")
CLOUDBUILD_HEADER = (
    "# Generated from infra/topology.toml by `make render` (python -m common.deploy cloudbuild"
    " cloudbuild.yaml):\n# edit the topology or common/deploy.py, not this file.\n"
)


def service_name(function: str) -> str:
    """Cloud Run, Artifact Registry and service account ids allow no underscores."""
    return function.replace("_", "-")


def _function_vars(spec: FunctionSpec, topology: Topology) -> dict[str, Any]:
    unknown = sorted(set(spec.reads + spec.writes) - set(BUCKETS))
    if unknown:
        raise ValueError(f"{spec.name}: unknown buckets {unknown}; expected {BUCKETS}")
    return {
        "service": service_name(spec.name),
        "topic": spec.topic,
        "subscription": spec.subscription,
        "ack_deadline_s": spec.ack_deadline_s,
        "cpu": spec.cpu,
        "memory": spec.memory,
        "gpu": spec.gpu,
        "concurrency": spec.concurrency,
        "min_instances": spec.min_instances,
        "startup_cpu_boost": spec.min_instances > 0 or bool(spec.models),
        "group": spec.group or "",
        "reads": sorted(set(spec.reads) - set(spec.writes)),
        "writes": sorted(spec.writes),
        "publishes": sorted(topology.function(name).topic for name in spec.publishes),
        "secrets": sorted(spec.secrets),
        "schedule": spec.schedule or "",
        "dead_lettered": not spec.http and spec is not topology.dead_letter,
        "http": spec.http,
    }


def render_tfvars(topology: Topology) -> dict[str, Any]:
    """Everything Terraform needs from the topology, as `*.auto.tfvars.json` content."""
    return {
        "functions": {spec.name: _function_vars(spec, topology) for spec in topology.services},
        "dead_letter_topic": topology.dead_letter.topic,
        "max_delivery_attempts": topology.max_delivery_attempts,
        "minimum_backoff_s": topology.minimum_backoff_s,
        "maximum_backoff_s": topology.maximum_backoff_s,
        "uploads_topic": topology.function(UPLOADS_FUNCTION).topic,
        "uploads_prefix": topology.uploads_prefix,
    }


def _quoted(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar


def _image(spec: FunctionSpec) -> str:
    return (
        "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPOSITORY}/"
        f"{service_name(spec.name)}:${{_TAG}}"
    )


def build_args(spec: FunctionSpec, background_backend: str) -> str:
    """The `--build-arg`s of infra/Dockerfile that make `spec`'s image."""
    values = {
        "FUNCTION": spec.name,
        "GROUP": spec.group or "",
        "MODELS": ",".join(spec.models),
        "THREADS": str(spec.concurrency),
        "BACKGROUND_BACKEND": background_backend,
        "SIGNATURE": "http" if spec.http else "cloudevent",
    }
    return " ".join(f"--build-arg {key}={value}" for key, value in values.items())


def render_builds(topology: Topology, engine: str, tag: str) -> str:
    """One local build command per function (`make images`), tagged `closet/<service>:<tag>`."""
    return "".join(
        f"{engine} build -f infra/Dockerfile {build_args(spec, 'classic')}"
        f" -t closet/{service_name(spec.name)}:{tag} .\n"
        for spec in topology.services
    )


def _image_step(spec: FunctionSpec) -> list[str]:
    args = build_args(spec, "${_BACKGROUND_BACKEND}")
    image = _image(spec)
    script = f"docker build -f infra/Dockerfile {args} -t {image} . && docker push {image}"
    return [
        f"  - id: image-{service_name(spec.name)}",
        "    name: gcr.io/cloud-builders/docker",
        "    entrypoint: bash",
        f"    args: [-c, {_quoted(script)}]",
        "    waitFor: [lint-and-unit-tests]",
    ]


def render_cloudbuild(topology: Topology) -> str:
    """Lint and unit tests, one image per function in parallel, then `terraform apply`."""
    images = [f"image-{service_name(spec.name)}" for spec in topology.services]
    tests = (
        "pip install -q -e '.[background,segmentation,generative,api,cloud,models,dev]'"
        " && ruff check . && ruff format --check . && mypy && pytest tests/unit"
    )
    tfvars = "python -m common.deploy tfvars infra/topology.auto.tfvars.json"
    apply = (
        "terraform -chdir=infra init -input=false -backend-config=bucket=${_TF_STATE_BUCKET}"
        " && terraform -chdir=infra apply -input=false -auto-approve"
        " -var=project=$PROJECT_ID -var=region=${_REGION} -var=repository=${_REPOSITORY}"
        " -var=image_tag=${_TAG} -var=uploads_bucket=${_UPLOADS_BUCKET}"
        " -var=work_bucket=${_WORK_BUCKET} -var=results_bucket=${_RESULTS_BUCKET}"
        " -var=background_backend=${_BACKGROUND_BACKEND} -var=mounted_secrets=${_MOUNTED_SECRETS}"
        " -var=web_origin=${_WEB_ORIGIN}"
    )
    lines = [
        CLOUDBUILD_HEADER.rstrip("\n"),
        "substitutions:",
        "  _REGION: us-central1",
        "  _TAG: ${COMMIT_SHA}  # a trigger's commit; `make deploy` passes the checkout's",
        "  _REPOSITORY: closet",
        "  _TF_STATE_BUCKET: ${PROJECT_ID}-closet-tfstate",
        "  _UPLOADS_BUCKET: ${PROJECT_ID}-closet-uploads",
        "  _WORK_BUCKET: ${PROJECT_ID}-closet-work",
        "  _RESULTS_BUCKET: ${PROJECT_ID}-closet-results",
        "  _BACKGROUND_BACKEND: classic",
        '  _MOUNTED_SECRETS: ""',
        "  _WEB_ORIGIN: https://${PROJECT_ID}.web.app  # where the web app is served",
        "options:",
        "  dynamic_substitutions: true",
        "  machineType: E2_HIGHCPU_8",
        "  logging: CLOUD_LOGGING_ONLY",
        "timeout: 3600s",
        "steps:",
        "  - id: lint-and-unit-tests",
        "    name: python:3.11-slim",
        "    entrypoint: bash",
        f"    args: [-c, {_quoted(tests)}]",
        "  - id: terraform-fmt",
        "    name: hashicorp/terraform:1.11",
        "    args: [fmt, -check, -recursive, infra]",
        "    waitFor: ['-']",
        "  - id: render-topology",
        "    name: python:3.11-slim",
        "    entrypoint: bash",
        f"    args: [-c, {_quoted(tfvars)}]",
        "    waitFor: ['-']",
    ]
    for spec in topology.services:
        lines += _image_step(spec)
    lines += [
        "  - id: terraform-apply",
        "    name: hashicorp/terraform:1.11",
        "    entrypoint: sh",
        f"    args: [-c, {_quoted(apply)}]",
        f"    waitFor: [terraform-fmt, render-topology, {', '.join(images)}]",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.deploy", description=__doc__)
    parser.add_argument("what", choices=("tfvars", "cloudbuild", "builds"))
    parser.add_argument("out", type=Path, help="file to write ('-' for standard output)")
    parser.add_argument("--engine", default="docker", help="builds: docker, podman or buildah")
    parser.add_argument("--tag", default="local", help="builds: the images' tag")
    args = parser.parse_args(argv)
    topology = load()
    if args.what == "tfvars":
        text = json.dumps(render_tfvars(topology), indent=2) + "\n"
    elif args.what == "cloudbuild":
        text = render_cloudbuild(topology)
    else:
        text = render_builds(topology, args.engine, args.tag)
    if str(args.out) == "-":
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
