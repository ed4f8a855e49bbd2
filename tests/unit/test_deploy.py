"""The deployment read statically: Terraform, cloudbuild.yaml, the Dockerfile, against the topology.

Providers cannot be downloaded here, so `terraform validate` cannot run: the HCL is parsed with
python-hcl2 and checked for what the topology promises.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from packaging.requirements import Requirement

from common.config import PROCESS_ENV
from common.deploy import memory_mi, render_cloudbuild, render_tfvars, service_name, sized
from common.topology import FunctionSpec, Topology, load

ROOT = Path(__file__).parents[2]
INFRA = ROOT / "infra"
PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}


def unquote(value: Any) -> Any:
    return value.strip('"') if isinstance(value, str) else value


def terraform() -> dict[str, dict[str, dict[str, Any]]]:
    """Every resource (and data source) of infra/*.tf as {type: {name: body}}."""
    blocks: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open() as stream:
            parsed = hcl2.load(stream)
        for kind in ("resource", "data"):
            for entry in parsed.get(kind, []):
                for rtype, named in entry.items():
                    for name, body in named.items():
                        blocks.setdefault(unquote(rtype), {})[unquote(name)] = body
    return blocks


def locals_() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open() as stream:
            for entry in hcl2.load(stream).get("locals", []):
                found.update(entry)
    return found


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    blocks = body[name]
    assert len(blocks) == 1, f"one {name} block"
    found: dict[str, Any] = blocks[0]
    return found


def dynamics(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        value
        for entry in body.get("dynamic", [])
        for key, value in entry.items()
        if unquote(key) == name
    ]
    assert found, f"no dynamic {name} block"
    return found


def dynamic(body: dict[str, Any], name: str) -> dict[str, Any]:
    return dynamics(body, name)[0]


def strings(value: Any) -> list[str]:
    """Every string anywhere in a parsed block."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k != "__comments__" for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


@pytest.fixture(scope="module")
def topology() -> Topology:
    return load()


@pytest.fixture(scope="module")
def tf() -> dict[str, dict[str, dict[str, Any]]]:
    return terraform()


@pytest.fixture(scope="module")
def tfvars(topology: Topology) -> dict[str, Any]:
    return render_tfvars(topology)


def deployed_functions() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))


# --- Terraform against the topology ---------------------------------------------------------


def test_every_function_in_functions_is_in_the_topology_and_rendered(
    topology: Topology, tfvars: dict[str, Any]
) -> None:
    declared = {spec.name for spec in topology.services}

    assert set(deployed_functions()) <= declared
    assert set(tfvars["functions"]) == declared


@pytest.mark.parametrize(
    ("rtype", "name"),
    [
        ("google_cloud_run_v2_service", "function"),
        ("google_service_account", "runtime"),
        ("google_project_iam_member", "runtime_firestore"),
    ],
)
def test_every_function_gets_one_of_each_per_function_resource(
    tf: dict[str, dict[str, dict[str, Any]]], rtype: str, name: str
) -> None:
    assert tf[rtype][name]["for_each"] == "${var.functions}"


@pytest.mark.parametrize(
    ("rtype", "name"),
    [
        ("google_cloud_run_v2_service_iam_member", "invoker"),
        ("google_cloud_scheduler_job", "warmup"),
        ("google_pubsub_subscription", "push"),
    ],
)
def test_every_pushed_function_gets_its_subscription_invoker_and_warm_up(
    tf: dict[str, dict[str, dict[str, Any]]], tfvars: dict[str, Any], rtype: str, name: str
) -> None:
    assert tf[rtype][name]["for_each"] == "${local.pushed}"
    assert locals_()["pushed"] == "${{for name, f in var.functions : name => f if !f.http}}"
    http = [name for name, f in tfvars["functions"].items() if f["http"]]
    assert http == ["api"]
    assert tfvars["functions"]["api"]["topic"] == ""


def test_the_push_identity_may_invoke_every_function_and_nobody_else(
    tf: dict[str, dict[str, dict[str, Any]]],
) -> None:
    invoker = tf["google_cloud_run_v2_service_iam_member"]["invoker"]
    assert unquote(invoker["role"]) == "roles/run.invoker"
    assert invoker["member"] == "${google_service_account.invoker.member}"
    # Besides the invoker, only the HTTP functions (the web app's api) may be called by anyone.
    assert list(tf["google_cloud_run_v2_service_iam_member"]) == ["invoker", "public_api"]
    public = tf["google_cloud_run_v2_service_iam_member"]["public_api"]
    assert public["for_each"] == "${local.http_functions}"
    assert locals_()["http_functions"] == "${{for name, f in var.functions : name => f if f.http}}"

    push = block(block(tf["google_pubsub_subscription"]["push"], "push_config"), "oidc_token")
    assert push["service_account_email"] == "${google_service_account.invoker.email}"


def test_services_are_internal_and_sized_from_the_topology(
    tf: dict[str, dict[str, dict[str, Any]]],
) -> None:
    service = tf["google_cloud_run_v2_service"]["function"]
    template = block(service, "template")
    container = block(template, "containers")
    resources = block(container, "resources")

    assert service["ingress"] == (
        '${each.value.http ? "INGRESS_TRAFFIC_ALL" : "INGRESS_TRAFFIC_INTERNAL_ONLY"}'
    )
    assert template["service_account"] == "${google_service_account.runtime[each.key].email}"
    assert "each.value.ack_deadline_s" in template["timeout"]
    assert template["max_instance_request_concurrency"] == "${each.value.concurrency}"
    assert block(template, "scaling")["min_instance_count"] == "${each.value.min_instances}"
    assert resources["startup_cpu_boost"] == "${each.value.startup_cpu_boost}"
    limits = resources["limits"]
    assert "each.value.cpu" in limits and "each.value.memory" in limits
    env = {unquote(e["name"]): e.get("value") for e in container["env"]}
    assert env["THREADS"] == "${tostring(each.value.concurrency)}"
    assert unquote(env["WORKERS"]) == "1"


def test_a_function_asking_for_a_gpu_gets_an_l4_with_the_cpu_and_memory_it_needs(
    tf: dict[str, dict[str, dict[str, Any]]], topology: Topology
) -> None:
    upscale = topology.function("upscale")
    on_gpu = dataclasses.replace(upscale, gpu=1, cpu=2, memory="4Gi")
    gpu_topology = dataclasses.replace(
        topology,
        functions=tuple(on_gpu if s.name == "upscale" else s for s in topology.functions),
    )
    template = block(tf["google_cloud_run_v2_service"]["function"], "template")
    resources = block(block(template, "containers"), "resources")

    rendered = render_tfvars(gpu_topology)["functions"]

    assert (rendered["upscale"]["gpu"], rendered["upscale"]["cpu"]) == (1, 4)
    assert rendered["upscale"]["memory"] == "16Gi"
    # Without a GPU (the default), nothing changes.
    assert upscale.gpu == 0 and render_tfvars(topology)["functions"]["upscale"]["cpu"] == 2
    selector = dynamic(template, "node_selector")
    assert "each.value.gpu > 0" in selector["for_each"]
    assert unquote(block(selector, "content")["accelerator"]) == "nvidia-l4"
    assert '"nvidia.com/gpu"' in resources["limits"] or "nvidia.com/gpu" in resources["limits"]
    assert "each.value.gpu == 0" in resources["cpu_idle"]
    assert "each.value.gpu > 0" in template["gpu_zonal_redundancy_disabled"]


def test_gpu_memory_is_raised_only_below_cloud_runs_floor() -> None:
    spec = FunctionSpec(
        name="x", topic="t", subscription="s", ack_deadline_s=60, memory="32Gi", min_instances=0
    )

    assert sized(spec) == (1, "32Gi")
    assert sized(dataclasses.replace(spec, gpu=1)) == (4, "32Gi")
    assert sized(dataclasses.replace(spec, gpu=1, memory="512Mi")) == (4, "16Gi")
    assert memory_mi("1.5Gi") == 1536


def test_model_stages_keep_warm_instances_with_a_startup_boost(tfvars: dict[str, Any]) -> None:
    for name in ("segment", "remove_background"):
        rendered = tfvars["functions"][name]
        assert rendered["min_instances"] >= 1
        assert rendered["startup_cpu_boost"] is True
    # A CPU-bound model stage takes one request per CPU's worth of threads at most.
    assert tfvars["functions"]["segment"]["concurrency"] <= tfvars["functions"]["segment"]["cpu"]


def test_every_topic_has_a_push_subscription_with_retry_and_dead_letter(
    tf: dict[str, dict[str, dict[str, Any]]], tfvars: dict[str, Any], topology: Topology
) -> None:
    topics = {f["topic"] for f in tfvars["functions"].values()}
    subscription = tf["google_pubsub_subscription"]["push"]
    dead_letter = dynamic(subscription, "dead_letter_policy")
    retry = block(subscription, "retry_policy")

    assert tf["google_pubsub_topic"]["stage"]["for_each"] == "${local.stage_topics}"
    assert locals_()["stage_topics"] == "${toset([for f in var.functions : f.topic if !f.http])}"
    # Each topic feeds a function, so the subscription per function covers every topic.
    assert topics - {""} == {spec.topic for spec in topology.all_functions}
    assert "var.minimum_backoff_s" in retry["minimum_backoff"]
    assert "var.maximum_backoff_s" in retry["maximum_backoff"]
    assert tfvars["maximum_backoff_s"] == topology.maximum_backoff_s
    assert dead_letter["for_each"] == "${each.value.dead_lettered ? [1] : []}"
    policy = block(dead_letter, "content")
    assert policy["dead_letter_topic"] == "${google_pubsub_topic.stage[var.dead_letter_topic].id}"
    assert policy["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    assert tfvars["max_delivery_attempts"] == 5
    # The dead-letter topic has its own subscription (the dead_letter function's), which is the
    # only one that does not dead-letter in turn.
    assert tfvars["dead_letter_topic"] in topics
    undead = [n for n, f in tfvars["functions"].items() if not f["dead_lettered"]]
    assert undead == [topology.dead_letter.name, "api"]


def test_the_pubsub_service_agent_can_dead_letter_and_mint_push_tokens(
    tf: dict[str, dict[str, dict[str, Any]]],
) -> None:
    agent = "${local.pubsub_agent}"
    publisher = tf["google_pubsub_topic_iam_member"]["pubsub_dead_letters"]
    subscriber = tf["google_pubsub_subscription_iam_member"]["pubsub_forwards"]
    tokens = tf["google_service_account_iam_member"]["pubsub_mints_invoker_tokens"]

    assert publisher["member"] == agent and unquote(publisher["role"]) == "roles/pubsub.publisher"
    assert "var.dead_letter_topic" in publisher["topic"]
    assert subscriber["member"] == agent
    assert unquote(subscriber["role"]) == "roles/pubsub.subscriber"
    assert tokens["member"] == agent
    assert "gcp-sa-pubsub" in locals_()["pubsub_agent"]


def test_uploads_notify_the_uploads_topic_and_work_expires_after_a_day(
    tf: dict[str, dict[str, dict[str, Any]]], tfvars: dict[str, Any]
) -> None:
    notification = tf["google_storage_notification"]["uploads"]
    bucket = tf["google_storage_bucket"]["pipeline"]
    rule = block(dynamic(bucket, "lifecycle_rule"), "content")

    assert notification["topic"] == "${google_pubsub_topic.stage[var.uploads_topic].id}"
    assert [unquote(t) for t in notification["event_types"]] == ["OBJECT_FINALIZE"]
    assert tfvars["uploads_topic"] == tfvars["functions"]["ingest"]["topic"]
    assert unquote(block(rule, "action")["type"]) == "Delete"
    assert block(rule, "condition")["age"] == "${var.work_retention_days}"
    assert unquote(bucket["public_access_prevention"]) == "enforced"
    # Try-on results expire under their prefix of the results bucket, with their jobs.
    rules = {
        tuple(unquote(p) for p in block(block(r, "content"), "condition")["matches_prefix"]): r
        for r in dynamics(bucket, "lifecycle_rule")
    }
    tryon = block(rules[("tryon/",)], "content")
    assert block(tryon, "condition")["age"] == "${var.tryon_ttl_days}"
    assert "results" in rules[("tryon/",)]["for_each"]


def test_firestore_is_native_with_a_ttl_on_expires_at(
    tf: dict[str, dict[str, dict[str, Any]]],
) -> None:
    database = tf["google_firestore_database"]["jobs"]
    ttl = tf["google_firestore_field"]["jobs_ttl"]

    assert unquote(database["type"]) == "FIRESTORE_NATIVE"
    assert (unquote(ttl["collection"]), unquote(ttl["field"])) == ("jobs", "expiresAt")
    assert "ttl_config" in ttl


def test_the_web_apps_recent_jobs_query_has_its_composite_index(
    tf: dict[str, dict[str, dict[str, Any]]],
) -> None:
    source = (ROOT / "web" / "src" / "recent.js").read_text()
    equality = re.findall(r"where\('(\w+)', '=='", source)
    ordering = re.findall(r"orderBy\('(\w+)', '(asc|desc)'\)", source)
    wanted = [(field, "ASCENDING") for field in equality]
    wanted += [(field, order.upper() + "ENDING") for field, order in ordering]
    indexes = [
        [(unquote(f["field_path"]), unquote(f["order"])) for f in index["fields"]]
        for index in tf["google_firestore_index"].values()
        if unquote(index["collection"]) == "jobs"
    ]

    assert wanted == [("uid", "ASCENDING"), ("createdAt", "DESCENDING")]
    assert wanted in indexes


def test_the_gemini_key_is_a_secret_only_the_stages_calling_gemini_may_read(
    tf: dict[str, dict[str, dict[str, Any]]], tfvars: dict[str, Any]
) -> None:
    readers = [n for n, f in tfvars["functions"].items() if "GEMINI_API_KEY" in f["secrets"]]
    container = block(
        block(tf["google_cloud_run_v2_service"]["function"], "template"), "containers"
    )
    mounted = block(dynamic(container, "env"), "content")

    assert readers == ["expand", "tryon_generate", "backdrop", "caption"]
    assert tf["google_secret_manager_secret"]["env"]["for_each"] == "${local.secrets}"
    assert "secret_key_ref" in block(mounted, "value_source")
    grant = tf["google_secret_manager_secret_iam_member"]["runtime"]
    assert unquote(grant["role"]) == "roles/secretmanager.secretAccessor"


def test_nothing_is_public_and_no_primitive_role_is_granted(
    tf: dict[str, dict[str, dict[str, Any]]],
) -> None:
    text = " ".join(strings(tf))
    roles = {
        unquote(body["role"])
        for named in tf.values()
        for body in named.values()
        if isinstance(body.get("role"), str) and not body["role"].startswith("${each")
    }
    locals_text = " ".join(strings(locals_()))

    # The one public grant: anyone may reach the api, which refuses requests without a valid
    # Firebase ID token itself.
    public = [
        (rtype, name)
        for rtype, named in tf.items()
        for name, body in named.items()
        if {"allUsers", "allAuthenticatedUsers"} & {unquote(v) for v in strings(body)}
    ]
    assert public == [("google_cloud_run_v2_service_iam_member", "public_api")]
    assert "allAuthenticatedUsers" not in text
    assert roles, "roles found"
    assert not roles & PRIMITIVE_ROLES
    assert not set(re.findall(r"roles/\w+", locals_text)) & PRIMITIVE_ROLES


def test_each_stage_gets_only_the_access_its_topology_entry_declares(
    tfvars: dict[str, Any],
) -> None:
    functions = tfvars["functions"]

    uploads_readers = [n for n, f in functions.items() if "uploads" in f["reads"] + f["writes"]]
    results_writers = sorted(n for n, f in functions.items() if "results" in f["writes"])
    # The person photo of a try-on and a studio photo are uploads too; the api signs upload
    # URLs, which act with its service account's access.
    assert uploads_readers == ["ingest", "tryon_prepare", "studio_prepare", "api"]
    assert functions["api"]["writes"] == ["uploads"] and functions["api"]["reads"] == ["results"]
    # Cache hits are copied by the first stage of a pipeline; compose writes the studio shots.
    assert results_writers == ["compose", "finalize", "ingest", "tryon_prepare"]
    # Publishers follow the pipeline declaration: the uploads trigger starts every pipeline.
    assert functions["ingest"]["publishes"] == sorted(
        [
            functions["remove_background"]["topic"],
            functions["tryon_prepare"]["topic"],
            functions["studio_prepare"]["topic"],
        ]
    )
    # A fan-out publishes to every branch; every branch may publish the join.
    assert functions["studio_prepare"]["publishes"] == sorted(
        functions[name]["topic"] for name in ("upscale", "backdrop", "caption")
    )
    for branch in ("upscale", "backdrop", "caption"):
        assert functions[branch]["publishes"] == [functions["compose"]["topic"]]
    assert functions["tryon_generate"]["publishes"] == [functions["finalize"]["topic"]]
    assert functions["finalize"]["publishes"] == []
    dead = functions["dead_letter"]
    assert dead["reads"] == dead["writes"] == dead["publishes"] == dead["secrets"] == []


def test_terraform_files_are_formatted() -> None:
    try:
        done = subprocess.run(
            ["terraform", "fmt", "-check", "-recursive", str(INFRA)], capture_output=True, text=True
        )
    except FileNotFoundError:
        pytest.skip("terraform is not installed (make lint runs terraform fmt -check)")
    assert done.returncode == 0, done.stdout + done.stderr


# --- cloudbuild.yaml --------------------------------------------------------------------------


def test_cloudbuild_yaml_is_the_rendering_of_the_topology(topology: Topology) -> None:
    committed = (ROOT / "cloudbuild.yaml").read_text()

    assert committed == render_cloudbuild(topology), "run `make render` after editing the topology"


def test_cloudbuild_builds_and_pushes_every_function_in_parallel_then_applies() -> None:
    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    steps = {step["id"]: step for step in build["steps"]}

    for function in deployed_functions():
        step = steps[f"image-{service_name(function)}"]
        script = step["args"][-1]
        assert f"--build-arg FUNCTION={function} " in script
        assert f"/{service_name(function)}:${{_TAG}}" in script and "docker push" in script
        assert step["waitFor"] == ["lint-and-unit-tests"]
        assert step["id"] in steps["terraform-apply"]["waitFor"]
    assert "pytest" in steps["lint-and-unit-tests"]["args"][-1]
    assert "terraform" in steps["terraform-apply"]["name"]
    assert "-var=image_tag=${_TAG}" in steps["terraform-apply"]["args"][-1]
    assert build["substitutions"]["_TAG"] == "${COMMIT_SHA}"
    assert {"_REGION", "_UPLOADS_BUCKET", "_WORK_BUCKET", "_RESULTS_BUCKET"} <= set(
        build["substitutions"]
    )


# --- the Dockerfile ---------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (INFRA / "Dockerfile").read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def installed_requirement(build_args: dict[str, str]) -> Requirement:
    """What the final stage's `pip install` installs, expanded by the shell with `build_args`."""
    installs = [line for line in dockerfile_stages()[-1] if "pip install" in line]
    assert len(installs) == 1, "the function's image installs once"
    command = installs[0].removeprefix("RUN ").split("&&")[0]
    word = shlex.split(command)[-1]  # "$(ls /wheels/*.whl)[cloud${GROUP:+,${GROUP}}]"
    script = f'ls() {{ echo closet_pipeline.whl; }}; printf %s "{word}"'
    expanded = subprocess.run(
        ["bash", "-c", script], env=build_args, capture_output=True, text=True, check=True
    ).stdout
    return Requirement(expanded.replace(".whl", "").replace("closet_pipeline", "closet-pipeline"))


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("function", deployed_functions())
def test_each_image_installs_exactly_its_function_group(function: str, topology: Topology) -> None:
    spec = topology.function(function)
    project = pyproject()
    step = next(
        s
        for s in yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())["steps"]
        if s["id"] == f"image-{service_name(function)}"
    )
    build_args = dict(re.findall(r"--build-arg (\w+)=(\S*)", step["args"][-1]))

    requirement = installed_requirement(build_args)

    expected = {"cloud"} | ({spec.group} if spec.group else set())
    assert requirement.extras == expected
    assert expected <= set(project["optional-dependencies"]), "groups exist in pyproject.toml"
    installed = set(project["dependencies"]) | {
        dep for extra in requirement.extras for dep in project["optional-dependencies"][extra]
    }
    wanted = set(project["dependencies"]) | {
        dep for extra in expected for dep in project["optional-dependencies"][extra]
    }
    assert installed == wanted


def test_the_image_runs_as_a_non_root_user_with_functions_framework() -> None:
    final = dockerfile_stages()[-1]
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    cmd = [line for line in final if line.upper().startswith("CMD ")]

    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert cmd == ['CMD ["functions-framework"]']
    assert any("FUNCTION_SIGNATURE_TYPE=${SIGNATURE}" in line for line in final)
    assert "ARG SIGNATURE=cloudevent" in final
    preload = "from common.service import preload; preload('${FUNCTION}')"
    assert any(preload in line for line in final), "imported and loaded at build time"
    # Weights come from the build stage that fetched them, never from the serving process.
    assert any(line.startswith("COPY --from=weights /models") for line in final)
    assert any("closet models fetch" in line for line in dockerfile_stages()[1])


def test_the_image_starts_its_process_with_the_environment_closet_dev_gives_functions() -> None:
    env_lines = [line for line in dockerfile_stages()[-1] if line.upper().startswith("ENV ")]
    declared = dict(
        word.split("=", 1) for line in env_lines for word in shlex.split(line)[1:] if "=" in word
    )
    assert PROCESS_ENV  # the image and `closet dev` agree on something real
    for name, value in PROCESS_ENV.items():
        assert declared.get(name) == value, f"the Dockerfile should set {name}={value}"


@pytest.mark.parametrize("function", deployed_functions())
def test_each_entry_point_exists_with_the_signature_its_image_declares(
    function: str, topology: Topology
) -> None:
    spec = topology.function(function)
    decorator = "http" if spec.http else "cloud_event"
    tree = ast.parse((ROOT / "functions" / function / "main.py").read_text())
    entry = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and node.name == function
        and any(ast.unparse(d).endswith(f".{decorator}") for d in node.decorator_list)
    ]

    assert entry, f"functions/{function}/main.py defines @{decorator} def {function}"
    signature = "http" if spec.http else "cloudevent"
    assert f"--build-arg SIGNATURE={signature}" in render_cloudbuild(topology)


# --- Firestore security rules -----------------------------------------------------------------


def test_the_rules_the_emulator_enforces_are_the_rules_deployed(
    tf: dict[str, dict[str, dict[str, Any]]],
) -> None:
    ruleset = tf["google_firebaserules_ruleset"]["firestore"]
    release = tf["google_firebaserules_release"]["firestore"]
    files = block(block(ruleset, "source"), "files")

    assert unquote(files["name"]) == "firestore.rules"
    assert files["content"] == '${file("${path.module}/firestore.rules")}'
    assert (INFRA / "firestore.rules").is_file()
    # The default database's release, pointing at this ruleset.
    assert unquote(release["name"]) == "cloud.firestore"
    assert "google_firebaserules_ruleset.firestore.name" in release["ruleset_name"]
    assert unquote(release["ruleset_name"]).startswith("projects/${var.project}/rulesets/")


def test_the_rules_let_clients_read_their_own_jobs_and_write_nothing() -> None:
    rules = (INFRA / "firestore.rules").read_text()
    statements = re.findall(r"allow (\w+(?:, \w+)*): if ([^;]+);", rules)

    assert "rules_version = '2'" in rules
    assert {verbs for verbs, _ in statements} == {"get", "list", "write"}
    for verbs, condition in statements:
        if verbs == "write":
            assert condition.strip() == "false"
        else:
            assert "request.auth != null" in condition
            assert "resource.data.uid == request.auth.uid" in condition
