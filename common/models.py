"""`closet models fetch`: the only code that downloads weights (an image build step).

SegFormer comes from the Hugging Face Hub at a pinned revision, every file checked against a
pinned SHA-256 (or, for another repository, against the content address the Hub reports), then
exported to ONNX and saved already graph-optimised, so a serving process optimises nothing at
start. rembg's ONNX file comes with its MD5 checked. Real-ESRGAN's weights come from the
project's GitHub release assets (immutable tag URLs) with a pinned SHA-256, and are exported to
ONNX here. Serving reads the result from disk only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from common.config import Settings
from common.errors import ClosetError

SEGFORMER_DIR = "segformer"
U2NET_DIR = "u2net"
MANIFEST = "closet-model.json"
"""Written beside the weights: where they came from, their checksums, how the ONNX was made."""
OPTIMIZATION = "extended"
"""ONNX Runtime's level baked into `model.onnx`; `all` adds layouts tied to the build CPU."""


class ModelFetchError(ClosetError):
    """A download failed, a file is missing upstream, or a checksum does not match."""


@dataclass(frozen=True)
class HubModel:
    """Files of one Hub repository at one revision, with the SHA-256 each must have."""

    repo_id: str
    revision: str
    files: tuple[str, ...]
    sha256: Mapping[str, str] = field(default_factory=dict)


SEGFORMER = HubModel(
    repo_id="mattmdjaga/segformer_b2_clothes",
    # A branch moves; the checksums below are what pins the content: a changed file on `main`
    # fails the build instead of shipping. Set --segformer-revision to a commit to pin that too.
    revision="main",
    files=("config.json", "preprocessor_config.json", "model.safetensors"),
    sha256={
        "config.json": "4b5127ca00fe61187b6cc6c232c9e19326ed228683f8f5c221790be9cc196a6e",
        "preprocessor_config.json": (
            "a608e3a47dcfba8dc052a766babb4b6c963285ab4f176bc6c1eb2b257fd3ad93"
        ),
        "model.safetensors": "8f86fd90c567afd4370b3cc3a7e81ed767a632b2832a738331af660acc0c4c68",
    },
)


def _digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _git_blob_sha1(path: Path) -> str:
    """The Hub's ETag of a file stored in git (not LFS): git's blob id."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _check(path: Path, where: str, pinned: str | None, hub_etag: str | None) -> str:
    sha256 = _digest(path, "sha256")
    if pinned is not None:
        if sha256 != pinned:
            raise ModelFetchError(
                f"{where}: checksum mismatch: expected sha256 {pinned}, got {sha256}; "
                "the file was changed or corrupted (refusing to use it)"
            )
    elif hub_etag is None:
        raise ModelFetchError(f"{where}: the Hub reported no checksum and none is pinned")
    elif hub_etag not in (sha256, _git_blob_sha1(path)):
        raise ModelFetchError(
            f"{where}: checksum mismatch: the Hub says {hub_etag}, the downloaded file hashes "
            f"to sha256 {sha256}; the file was changed or corrupted (refusing to use it)"
        )
    return sha256


def download_hub_model(model: HubModel, to: Path) -> tuple[str | None, dict[str, str]]:
    """Every file of `model` into `to`, checked; returns the commit and each file's SHA-256."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    commit: str | None = None
    checked: dict[str, str] = {}
    for name in model.files:
        where = f"{model.repo_id}@{model.revision}/{name}"
        # Once the first file names its commit, every other file is read at that commit, so
        # a branch that moves during the fetch cannot mix two versions.
        revision = commit or model.revision
        try:
            url = hf_hub_url(model.repo_id, name, revision=revision)
            metadata = get_hf_file_metadata(url)
            path = Path(hf_hub_download(model.repo_id, name, revision=revision, local_dir=to))
        except EntryNotFoundError:
            raise ModelFetchError(f"{where}: no such file in the repository") from None
        except RevisionNotFoundError:
            raise ModelFetchError(f"{where}: no such revision") from None
        except RepositoryNotFoundError:
            raise ModelFetchError(f"{where}: no such repository (or it is private)") from None
        except (HfHubHTTPError, httpx.HTTPError, OSError) as exc:
            raise ModelFetchError(f"{where}: download failed: {exc}") from exc
        commit = commit or metadata.commit_hash
        checked[name] = _check(path, where, model.sha256.get(name), metadata.etag)
    return commit, checked


def optimize_onnx(source: Path, target: Path) -> None:
    """Save `source` with ONNX Runtime's graph optimisations applied, for the CPU provider."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def fetch_segformer(to: Path, model: HubModel = SEGFORMER) -> Path:
    """`to/segformer`: config, preprocessing and a graph-optimised `model.onnx`, nothing else."""
    target = to / SEGFORMER_DIR
    with tempfile.TemporaryDirectory(prefix="segformer-", dir=to) as staging_dir:
        staging = Path(staging_dir)
        commit, checked = download_hub_model(model, staging)
        # Imported once the files are in: torch takes seconds to import.
        import onnxruntime

        from common.backends.segmentation.segformer import ONNX_FILE, export_onnx

        export_onnx(staging)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in ("config.json", "preprocessor_config.json"):
            if (staging / name).is_file():
                shutil.copyfile(staging / name, target / name)
        optimize_onnx(staging / ONNX_FILE, target / ONNX_FILE)
    manifest = {
        "repo": model.repo_id,
        "revision": model.revision,
        "commit": commit,
        "sha256": checked,
        "onnx": {
            "file": ONNX_FILE,
            "optimization": OPTIMIZATION,
            "onnxruntime": onnxruntime.__version__,
        },
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return target


def fetch_u2net(home: Path, model: str, url: str | None = None, md5: str | None = None) -> Path:
    """`home/<model>.onnx`: from rembg's own release (its MD5 checked by rembg), or from `url`."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / f"{model}.onnx"
    if url is None:
        return _fetch_u2net_from_rembg(home, model)
    if md5 is None:
        raise ModelFetchError(f"{url}: a download from another address needs its md5")
    partial = target.with_suffix(".part")
    _download(url, partial)
    got = _digest(partial, "md5")
    if got != md5.lower():
        partial.unlink()
        raise ModelFetchError(
            f"{url}: checksum mismatch: expected md5 {md5}, got {got}; refusing to use it"
        )
    partial.replace(target)
    return target


def _download(url: str, to: Path) -> None:
    """`url` (redirects followed, as GitHub's release assets need) streamed into `to`."""
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as response:
            response.raise_for_status()
            with to.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
    except httpx.HTTPStatusError as exc:
        raise ModelFetchError(f"{url}: download failed: HTTP {exc.response.status_code}") from None
    except httpx.HTTPError as exc:
        raise ModelFetchError(f"{url}: download failed: {exc}") from None


def _fetch_u2net_from_rembg(home: Path, model: str) -> Path:
    from rembg.sessions import sessions

    session_class = sessions.get(model)
    if session_class is None:
        raise ModelFetchError(f"{model!r} is not a rembg model")
    # rembg's downloader (pooch, with the model's MD5) writes where U2NET_HOME points.
    os.environ["U2NET_HOME"] = str(home)
    try:
        return Path(session_class.download_models())
    except ValueError as exc:  # pooch's checksum mismatch
        raise ModelFetchError(f"{model}: {exc}") from None
    except OSError as exc:
        raise ModelFetchError(f"{model}: download failed: {exc}") from exc


REALESRGAN_DIR = "realesrgan"


@dataclass(frozen=True)
class ReleaseAsset:
    """One file of a GitHub release: the tag's URL, and the SHA-256 it must hash to."""

    url: str
    sha256: str
    size: int


# xinntao publishes no checksums; these SHA-256 are of the release files as downloaded, and
# agree with the ones independent packagers pin (Arch's python-realesrgan, ComfyUI lists).
REALESRGAN: dict[str, ReleaseAsset] = {
    "realesr-general-x4v3": ReleaseAsset(
        "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-general-x4v3.pth",
        "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
        4_885_111,
    ),
    "RealESRGAN_x4plus": ReleaseAsset(
        "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
        "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        67_040_989,
    ),
}


def fetch_realesrgan(
    to: Path, model: str, url: str | None = None, sha256: str | None = None
) -> Path:
    """`to/realesrgan/<model>.onnx` (and `.fp16.onnx`, and `<model>.json`) from the release."""
    asset = REALESRGAN.get(model)
    if asset is None:
        raise ModelFetchError(
            f"{model!r} is not a Real-ESRGAN model; choose {', '.join(REALESRGAN)}"
        )
    if url is not None and sha256 is None:
        raise ModelFetchError(f"{url}: a download from another address needs its sha256")
    source, pinned = url or asset.url, (sha256 or asset.sha256).lower()
    target = to / REALESRGAN_DIR
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="realesrgan-", dir=to) as staging_dir:
        staging = Path(staging_dir)
        pth = staging / f"{model}.pth"
        _download(source, pth)
        got = _digest(pth, "sha256")
        if got != pinned:
            raise ModelFetchError(
                f"{source}: checksum mismatch: expected sha256 {pinned}, got {got}; the file was "
                "changed or corrupted (refusing to use it)"
            )
        # Imported once the weights are in and checked: torch takes seconds to import.
        import onnxruntime

        from common.backends.upscale.export import export_onnx

        meta = export_onnx(pth, staging / f"{model}.onnx", fp16=True)
        meta |= {"source": source, "sha256": got, "onnxruntime": onnxruntime.__version__}
        (staging / f"{model}.json").write_text(json.dumps(meta, indent=2) + "\n")
        pth.unlink()
        for made in staging.iterdir():
            made.replace(target / made.name)
    return target / f"{model}.onnx"


@dataclass(frozen=True)
class FetchPlan:
    """Which models to fetch: SegFormer, and rembg's only when the background is u2net."""

    segformer: bool
    u2net: bool
    realesrgan: bool = False
    """Real-ESRGAN: for a function that declares it (unless the upscale is set to lanczos);
    with no function named, only when CLOSET_UPSCALE_BACKEND=realesrgan."""

    @classmethod
    def for_function(cls, settings: Settings, declared: tuple[str, ...] | None) -> FetchPlan:
        """`declared`: the models a function lists in the topology; None means every model."""
        wanted = {"segformer", "u2net"} if declared is None else set(declared)
        upscale = settings.upscale_backend
        return cls(
            segformer="segformer" in wanted,
            u2net="u2net" in wanted and settings.background_backend == "u2net",
            realesrgan=upscale == "realesrgan"
            or ("realesrgan" in wanted and upscale in (None, "realesrgan")),
        )


def fetch(
    to: Path,
    plan: FetchPlan,
    settings: Settings,
    *,
    segformer: HubModel = SEGFORMER,
    u2net_url: str | None = None,
    u2net_md5: str | None = None,
    realesrgan_url: str | None = None,
    realesrgan_sha256: str | None = None,
) -> list[Path]:
    """Fetch what `plan` names into `to`; returns the folders or files written."""
    to.mkdir(parents=True, exist_ok=True)
    written = []
    if plan.segformer:
        written.append(fetch_segformer(to, segformer))
    if plan.u2net:
        written.append(fetch_u2net(to / U2NET_DIR, settings.u2net_model, u2net_url, u2net_md5))
    if plan.realesrgan:
        written.append(
            fetch_realesrgan(to, settings.upscale_model, realesrgan_url, realesrgan_sha256)
        )
    return written


def fetch_command(args: argparse.Namespace) -> int:
    """`closet models fetch`: exit 0 when everything landed and checked, 1 otherwise."""
    from common import topology

    settings = Settings.from_env()
    declared = None
    if args.function is not None:
        try:
            declared = topology.load().function(args.function).models
        except KeyError:
            print(
                f"closet models fetch: no function {args.function!r} in the topology",
                file=sys.stderr,
            )
            return 2
    segformer = SEGFORMER
    if args.segformer_repo or args.segformer_revision:
        repo = args.segformer_repo or SEGFORMER.repo_id
        # Pinned checksums belong to the pinned repository; another one is checked against
        # the content addresses the Hub reports.
        pins = SEGFORMER.sha256 if repo == SEGFORMER.repo_id and not args.segformer_revision else {}
        segformer = HubModel(
            repo, args.segformer_revision or SEGFORMER.revision, SEGFORMER.files, pins
        )
    try:
        written = fetch(
            args.to,
            FetchPlan.for_function(settings, declared),
            settings,
            segformer=segformer,
            u2net_url=args.u2net_url,
            u2net_md5=args.u2net_md5,
            realesrgan_url=args.realesrgan_url,
            realesrgan_sha256=args.realesrgan_sha256,
        )
    except ModelFetchError as exc:
        print(f"closet models fetch: error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"fetched {path}")
    if not written:
        print("nothing to fetch: no model configured for this function")
    return 0


def add_fetch_command(models: argparse.ArgumentParser, epilog: str) -> None:
    """`closet models fetch --to DIR [--function NAME]` under the `models` command."""
    actions = models.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="what to do with the weights"
    )
    fetch_parser = actions.add_parser(
        "fetch",
        help="download the configured models, check them, save them ready to serve",
        description="Download the configured models, check them and save them ready to serve.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fetch_parser.add_argument(
        "--to", required=True, type=Path, metavar="DIR", help="folder the weights land in"
    )
    fetch_parser.add_argument(
        "--function", metavar="NAME", help="only the models this function declares in the topology"
    )
    fetch_parser.add_argument("--segformer-repo", metavar="REPO", help="another Hub repository")
    fetch_parser.add_argument("--segformer-revision", metavar="REV", help="a commit or tag")
    fetch_parser.add_argument("--u2net-url", metavar="URL", help="a mirror of rembg's ONNX file")
    fetch_parser.add_argument("--u2net-md5", metavar="MD5", help="the checksum of --u2net-url")
    fetch_parser.add_argument(
        "--realesrgan-url", metavar="URL", help="a mirror of the Real-ESRGAN release weights"
    )
    fetch_parser.add_argument(
        "--realesrgan-sha256", metavar="SHA256", help="the checksum of --realesrgan-url"
    )
    fetch_parser.set_defaults(handler=fetch_command)
