"""Real-ESRGAN through ONNX Runtime: tiny models of the real architectures, saved as release-style
`.pth` state dicts with the real key names, exported by our export code, served tiled."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from common.backends.upscale import new_upscale
from common.backends.upscale.arch import RRDBNet, SRVGGNetCompact
from common.backends.upscale.export import ExportError, export_onnx
from common.backends.upscale.realesrgan import RealEsrganUpscale
from common.config import Settings
from common.errors import ConfigurationError
from common.models import REALESRGAN, FetchPlan, ModelFetchError, fetch
from tests.fakes.hub_server import HubRepo, hub_server

ROOT = Path(__file__).parents[2]


def tiny_compact(seed: int = 0) -> SRVGGNetCompact:
    torch.manual_seed(seed)
    model = SRVGGNetCompact(num_feat=8, num_conv=4, upscale=4, act_type="prelu")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(0.5)  # a gentle random model: outputs stay near the nearest upsample
    return model.eval()


def tiny_rrdb(seed: int = 1) -> RRDBNet:
    torch.manual_seed(seed)
    return RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).eval()


def save_release_pth(model: torch.nn.Module, path: Path, key: str) -> Path:
    """As the release files are: `{"params": ...}` or `{"params_ema": ...}` of the state dict."""
    torch.save({key: model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def compact_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compact")
    pth = save_release_pth(tiny_compact(), folder / "realesr-general-x4v3.pth", "params")
    export_onnx(pth, folder / "realesr-general-x4v3.onnx", fp16=True)
    return folder / "realesr-general-x4v3.onnx"


@pytest.fixture(scope="module")
def rrdb_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rrdb")
    pth = save_release_pth(tiny_rrdb(), folder / "RealESRGAN_x4plus.pth", "params_ema")
    export_onnx(pth, folder / "RealESRGAN_x4plus.onnx")
    return folder / "RealESRGAN_x4plus.onnx"


def photo(size: tuple[int, int] = (70, 53)) -> np.ndarray:
    rng = np.random.default_rng(3)
    smooth = rng.uniform(0, 1, (size[1] // 8 + 2, size[0] // 8 + 2, 3)).astype(np.float32)
    image = Image.fromarray((smooth * 255).astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32) / 255.0


def test_the_architectures_match_the_release_models_key_names_and_size() -> None:
    compact = SRVGGNetCompact(num_feat=64, num_conv=32, upscale=4, act_type="prelu")
    keys = set(compact.state_dict())

    # realesr-general-x4v3: 1,213,296 parameters; the last conv is body.66.
    assert sum(p.numel() for p in compact.parameters()) == 1_213_296
    assert {"body.0.weight", "body.1.weight", "body.66.weight", "body.66.bias"} <= keys
    rrdb_keys = set(RRDBNet(num_block=2).state_dict())
    assert {"conv_first.weight", "body.1.rdb3.conv5.bias", "conv_up2.weight"} <= rrdb_keys
    assert {"conv_body.weight", "conv_hr.weight", "conv_last.bias"} <= rrdb_keys
    # RealESRGAN_x4plus: 16,697,987 parameters in 702 tensors.
    full = RRDBNet()
    assert sum(p.numel() for p in full.parameters()) == 16_697_987
    assert len(full.state_dict()) == 702


def test_the_export_agrees_with_the_torch_model(compact_onnx: Path) -> None:
    backend = RealEsrganUpscale(compact_onnx, tile=512)
    rgb = photo((40, 30))

    ours = backend.run(rgb)
    with torch.no_grad():
        theirs = tiny_compact()(torch.from_numpy(rgb.transpose(2, 0, 1))[None])[0]

    assert ours.shape == (120, 160, 3)
    assert np.abs(ours - theirs.numpy().transpose(1, 2, 0)).max() < 1e-4


def test_the_fp16_export_for_cuda_agrees_with_the_float_one(compact_onnx: Path) -> None:
    import onnxruntime

    half = compact_onnx.with_name("realesr-general-x4v3.fp16.onnx")
    rgb = photo((24, 20)).transpose(2, 0, 1)[None]
    runs = {}
    for path, dtype, onnx_type in (
        (compact_onnx, np.float32, "tensor(float)"),
        (half, np.float16, "tensor(float16)"),
    ):
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].type == onnx_type
        runs[dtype] = session.run(None, {"image": rgb.astype(dtype)})[0].astype(np.float32)

    assert np.abs(runs[np.float32] - runs[np.float16]).max() <= 2 / 255


@pytest.mark.parametrize("which", ["compact", "rrdb"])
def test_tiled_equals_whole_within_one_level(
    which: str, compact_onnx: Path, rrdb_onnx: Path
) -> None:
    backend = RealEsrganUpscale(compact_onnx if which == "compact" else rrdb_onnx, tile=4096)
    rgb = photo((70, 53))

    whole = backend.run(rgb)
    tiled = backend.run(rgb, tile=16)  # 5 x 4 tiles, cut through the middle of everything

    assert whole.shape == tiled.shape == (212, 280, 3)
    assert np.abs(whole - tiled).max() <= 1 / 255


def test_x4_output_size_and_any_other_scale(compact_onnx: Path) -> None:
    backend = RealEsrganUpscale(compact_onnx, tile=32)
    image = Image.fromarray((photo((37, 29)) * 255).astype(np.uint8)).convert("RGBA")

    assert backend.upscale(image, 4).size == (148, 116)
    assert backend.upscale(image, 2.5).size == (92, 72)
    assert backend.upscale(image, 6).size == (222, 174)  # x4 twice, then down
    assert backend.device == "cpu" and backend.name == "realesrgan"


def test_alpha_is_kept_and_scaled_with_the_colour(compact_onnx: Path) -> None:
    backend = RealEsrganUpscale(compact_onnx, tile=24)
    image = Image.new("RGBA", (48, 40), (250, 250, 250, 0))  # the old white background, hidden
    ImageDraw.Draw(image).ellipse((10, 8, 38, 32), fill=(30, 90, 160, 255))

    out = backend.upscale(image, 4)

    alpha = np.asarray(out.getchannel("A"))
    expected = np.asarray(image.getchannel("A").resize((192, 160), Image.Resampling.LANCZOS))
    assert np.array_equal(alpha, expected)
    assert alpha[80, 96] == 255 and alpha[2, 2] == 0
    # The hidden white did not bleed into the subject's edge through the convolutions.
    edge = np.asarray(out)[(alpha > 128) & (alpha < 255)]
    assert edge[:, :3].mean(axis=0)[0] < 150


def test_a_bad_state_dict_is_a_clear_error(tmp_path: Path) -> None:
    torch.save({"params": {"something.else": torch.zeros(3)}}, tmp_path / "odd.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")

    with pytest.raises(ExportError, match="neither SRVGGNetCompact nor RRDBNet"):
        export_onnx(tmp_path / "odd.pth", tmp_path / "odd.onnx")
    with pytest.raises(ExportError, match="not a torch state dict"):
        export_onnx(tmp_path / "junk.pth", tmp_path / "junk.onnx")


def fetched_with(tmp_path: Path, data: bytes, sha256: str) -> Path:
    repo = HubRepo("mirror/real-esrgan", "0" * 40, {"realesr-general-x4v3.pth": data})
    with hub_server(repo) as mirror:
        url = f"{mirror.url}/mirror/real-esrgan/resolve/main/realesr-general-x4v3.pth"
        settings = Settings.from_env({})
        (written,) = fetch(
            tmp_path / "models",
            FetchPlan(segformer=False, u2net=False, realesrgan=True),
            settings,
            realesrgan_url=url,
            realesrgan_sha256=sha256,
        )
    return written


def test_models_fetch_checks_the_weights_and_exports_them(tmp_path: Path) -> None:
    data = save_release_pth(tiny_compact(), tmp_path / "w.pth", "params").read_bytes()

    onnx = fetched_with(tmp_path, data, hashlib.sha256(data).hexdigest())

    assert onnx == tmp_path / "models" / "realesrgan" / "realesr-general-x4v3.onnx"
    meta = json.loads(onnx.with_suffix(".json").read_text())
    assert meta["architecture"] == "SRVGGNetCompact" and meta["receptive_field"] == 6
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert onnx.with_name("realesr-general-x4v3.fp16.onnx").is_file()
    assert not list(onnx.parent.glob("*.pth"))  # only what serving reads
    settings = Settings.from_env({}, upscale_dir=onnx.parent)
    assert settings.resolved_upscale_backend == "realesrgan"
    assert new_upscale(settings).name == "realesrgan"


def test_a_checksum_mismatch_is_a_clear_error_and_nothing_lands(tmp_path: Path) -> None:
    data = save_release_pth(tiny_compact(), tmp_path / "w.pth", "params").read_bytes()

    with pytest.raises(ModelFetchError, match="checksum mismatch: expected sha256 0000"):
        fetched_with(tmp_path, data, "0" * 64)

    assert not list((tmp_path / "models" / "realesrgan").glob("*.onnx"))


def test_the_release_weights_are_pinned_by_url_and_sha256() -> None:
    for name, asset in REALESRGAN.items():
        assert asset.url.startswith("https://github.com/xinntao/Real-ESRGAN/releases/download/v")
        assert asset.url.endswith(f"/{name}.pth") and len(asset.sha256) == 64


def test_a_function_fetches_real_esrgan_only_when_it_declares_it() -> None:
    default = Settings.from_env({})

    assert FetchPlan.for_function(default, ("realesrgan",)).realesrgan
    assert not FetchPlan.for_function(default, ("segformer",)).realesrgan
    assert not FetchPlan.for_function(default, None).realesrgan
    lanczos = Settings.from_env({}, upscale_backend="lanczos")
    assert not FetchPlan.for_function(lanczos, ("realesrgan",)).realesrgan


def test_serving_never_imports_torch(compact_onnx: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from PIL import Image
        from common.backends.lazy import Backends
        from common.config import Settings
        from common.backends.backdrop import BackdropRequest, render_with_fallback
        from common.studio import compose, palette

        settings = Settings.from_env({{}}, upscale_dir={str(compact_onnx.parent)!r})
        backends = Backends(settings)
        backends.warmer(["upscale", "backdrop", "caption"])()
        subject = backends.upscale.upscale(Image.new("RGBA", (20, 20), (9, 9, 9, 255)), 4)
        request = BackdropRequest("gradient", None, (108, 192), palette(subject))
        backdrop = render_with_fallback(backends.backdrop, request).image
        compose(subject, backdrop, "9:16", 108)
        assert backends.upscale.name == "realesrgan", backends.upscale.name
        print("torch" in sys.modules, "torchvision" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_asking_for_cuda_without_it_is_a_clear_startup_error(compact_onnx: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has ONNX Runtime's CUDA provider")

    with pytest.raises(ConfigurationError, match="no CUDA provider"):
        RealEsrganUpscale(compact_onnx, device="cuda")
    assert RealEsrganUpscale(compact_onnx, device="auto").device == "cpu"
