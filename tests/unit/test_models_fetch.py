"""`closet models fetch` through the real huggingface_hub client against a local Hub server."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from transformers import SegformerForSemanticSegmentation, SegformerImageProcessorPil

from common.backends.background.u2net import U2netBackground
from common.backends.segmentation.segformer import SegformerSegmentation
from common.config import Settings
from common.models import SEGFORMER, FetchPlan
from tests.fakes.hub_server import HubRepo, HubServer, hub_server
from tests.unit.test_background_u2net import write_brightness_model
from tests.unit.test_segformer import (
    save_model_where_label_wins,
    segment_in_a_fresh_interpreter,
    tiny_config,
)

pytestmark = pytest.mark.slow

REPO = "test-org/tiny-segformer-clothes"
ROOT = Path(__file__).parents[2]
UPPER_CLOTHES = 4


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> HubRepo:
    """A SegFormer in the segformer_b2_clothes layout, saved with save_pretrained."""
    folder = tmp_path_factory.mktemp("tiny-segformer")
    model = SegformerForSemanticSegmentation(tiny_config())
    save_model_where_label_wins(model, UPPER_CLOTHES, folder)
    SegformerImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(folder)
    return HubRepo.from_folder(REPO, folder)


@pytest.fixture
def hub(tiny_repo: HubRepo) -> Iterator[HubServer]:
    tiny_repo.tampered.clear()
    with hub_server(tiny_repo) as server:
        yield server


def fetch(hub: HubServer, to: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLOSET_", "HF_", "HUGGINGFACE_")) and key != "U2NET_HOME"
    }
    environ |= {"HF_ENDPOINT": hub.url, "HF_HOME": str(to.parent / "hf-home")}
    environ |= env or {}
    command = [sys.executable, "-m", "common.cli", "models", "fetch", "--to", str(to), *args]
    return subprocess.run(command, env=environ, cwd=ROOT, capture_output=True, text=True)


@dataclass
class Fetched:
    to: Path
    done: subprocess.CompletedProcess[str]
    repo: HubRepo
    downloads: list[str]
    requested: list[str]


@pytest.fixture(scope="module")
def fetched(tiny_repo: HubRepo, tmp_path_factory: pytest.TempPathFactory) -> Fetched:
    """One real fetch of the tiny model (the export takes seconds), shared by what it shows."""
    to = tmp_path_factory.mktemp("fetched") / "models"
    with hub_server(tiny_repo) as server:
        done = fetch(server, to, "--segformer-repo", REPO, "--function", "segment")
    return Fetched(to, done, tiny_repo, server.downloads, server.requested)


def test_segformer_lands_exported_optimised_and_checked(fetched: Fetched) -> None:
    assert fetched.done.returncode == 0, fetched.done.stderr
    folder = fetched.to / "segformer"
    assert sorted(p.name for p in folder.iterdir()) == [
        "closet-model.json",
        "config.json",
        "model.onnx",
        "preprocessor_config.json",
    ]
    manifest = json.loads((folder / "closet-model.json").read_text())
    repo = fetched.repo
    assert manifest["repo"] == REPO
    assert manifest["commit"] == repo.commit
    assert manifest["sha256"] == {
        name: hashlib.sha256(data).hexdigest() for name, data in repo.files.items()
    }
    assert manifest["onnx"]["optimization"] == "extended"
    assert sorted(fetched.downloads) == sorted(repo.files)
    # After the first file, everything is read at the commit it named, not at the branch.
    first = fetched.requested[0].rsplit("/", 1)[1]
    later = [path for path in fetched.requested if not path.endswith(f"/{first}")]
    assert len(later) >= len(repo.files) - 1
    assert all(f"/resolve/{repo.commit}/" in path for path in later)
    assert not any(fetched.to.glob("segformer-*")), "the staging folder is removed"
    # What a deployer pins with --segformer-revision is printed.
    assert f"({REPO} at commit {repo.commit})" in fetched.done.stdout


def test_the_fetched_graph_is_served_without_torch_or_transformers(fetched: Fetched) -> None:
    ran = segment_in_a_fresh_interpreter(fetched.to / "segformer")

    assert ran == ["onnx", "['upper-clothes']", "[]"]


def test_the_serving_backend_runs_the_fetched_onnx_without_optimising(fetched: Fetched) -> None:
    settings = Settings.from_env({}, segformer_path=fetched.to / "segformer")

    backend = SegformerSegmentation.from_settings(settings)
    labels = backend.label_map(Image.new("RGB", (48, 40), (200, 30, 30)))

    assert backend.runtime == "onnx"
    session = backend.logits.session  # type: ignore[attr-defined]
    assert session.get_session_options().graph_optimization_level.name == "ORT_DISABLE_ALL"
    assert labels.shape == (40, 48)
    assert np.all(labels == UPPER_CLOTHES)


def test_a_tampered_file_is_a_clear_error_and_nothing_lands(hub: HubServer, tmp_path: Path) -> None:
    repo = hub.repos[REPO]
    weights = bytearray(repo.files["model.safetensors"])
    weights[-1] ^= 0xFF  # same size: only the checksum can tell
    repo.tampered["model.safetensors"] = bytes(weights)
    to = tmp_path / "models"

    failed = fetch(hub, to, "--segformer-repo", REPO)

    assert failed.returncode == 1
    assert "model.safetensors" in failed.stderr
    assert "checksum mismatch" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (to / "segformer").exists()


def test_the_default_model_is_read_at_its_pinned_commit_and_checked(
    hub: HubServer, tiny_repo: HubRepo, tmp_path: Path
) -> None:
    # The tiny model served under the default repository's name, at its pinned commit: the
    # pinned SHA-256s are the real model's, so the very first file fails.
    hub.repos[SEGFORMER.repo_id] = HubRepo(SEGFORMER.repo_id, SEGFORMER.revision, tiny_repo.files)

    failed = fetch(hub, tmp_path / "models")

    assert failed.returncode == 1
    where = f"{SEGFORMER.repo_id}@{SEGFORMER.revision}/config.json"
    assert f"{where}: checksum mismatch" in failed.stderr
    assert hub.requested, "the pinned commit exists on the server"
    assert all(f"/resolve/{SEGFORMER.revision}/" in path for path in hub.requested)
    assert re.fullmatch("[0-9a-f]{40}", SEGFORMER.revision), "a commit, not a branch"


def test_a_missing_file_is_a_clear_error(hub: HubServer, tmp_path: Path) -> None:
    del hub.repos[REPO].files["preprocessor_config.json"]
    try:
        failed = fetch(hub, tmp_path / "models", "--segformer-repo", REPO)
    finally:
        hub.repos.clear()

    assert failed.returncode == 1
    assert f"{REPO}@main/preprocessor_config.json: no such file" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_u2net_is_fetched_only_when_configured_with_its_checksum(
    hub: HubServer, tmp_path: Path
) -> None:
    source = tmp_path / "published" / "u2net.onnx"
    source.parent.mkdir()
    write_brightness_model(source)
    md5 = hashlib.md5(source.read_bytes(), usedforsecurity=False).hexdigest()
    with hub_server(HubRepo("rembg", "0" * 40, {"u2net.onnx": source.read_bytes()})) as mirror:
        url = f"{mirror.url}/rembg/resolve/main/u2net.onnx"
        args = ("--function", "remove_background", "--u2net-url", url, "--u2net-md5", md5)
        classic = fetch(hub, tmp_path / "classic", *args)
        good = fetch(hub, tmp_path / "models", *args, env={"CLOSET_BACKGROUND_BACKEND": "u2net"})
        bad = fetch(
            hub,
            tmp_path / "bad",
            *args[:-1],
            "0" * 32,
            env={"CLOSET_BACKGROUND_BACKEND": "u2net"},
        )

    assert classic.returncode == 0 and "nothing to fetch" in classic.stdout
    assert good.returncode == 0, good.stderr
    home = tmp_path / "models" / "u2net"
    settings = Settings.from_env({}, background_backend="u2net", u2net_home=home)
    assert U2netBackground.from_settings(settings) is not None
    assert bad.returncode == 1 and "checksum mismatch" in bad.stderr
    assert not (tmp_path / "bad" / "u2net" / "u2net.onnx").exists()


def test_a_function_fetches_only_the_models_it_declares() -> None:
    settings = Settings.from_env({}, background_backend="u2net")

    assert FetchPlan.for_function(settings, ("segformer",)) == FetchPlan(True, False)
    assert FetchPlan.for_function(settings, ()) == FetchPlan(False, False)
    assert FetchPlan.for_function(settings, None) == FetchPlan(True, True)


def test_no_other_code_downloads_weights() -> None:
    downloaders = ("hf_hub_download", "snapshot_download", "download_models", "pooch")
    sources = [*ROOT.glob("common/**/*.py"), *ROOT.glob("functions/**/*.py")]

    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sources
        if path.name != "models.py" or path.parent.name != "common"
        for name in downloaders
        if name in path.read_text()
    ]

    assert offenders == []
