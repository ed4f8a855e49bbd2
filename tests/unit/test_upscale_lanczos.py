"""The model-less upscale and how the upscale backend is chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.backends.upscale import new_upscale, target_size
from common.backends.upscale.lanczos import LanczosUpscale
from common.config import Settings
from common.errors import ConfigurationError


def test_lanczos_scales_colour_and_alpha_together() -> None:
    image = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    image.paste((200, 40, 40, 255), (10, 10, 30, 20))

    out = LanczosUpscale().upscale(image, 2.5)

    assert out.size == (100, 75) and out.mode == "RGBA"
    alpha = np.asarray(out.getchannel("A"))
    assert alpha[37, 50] == 255 and alpha[5, 5] == 0
    # Premultiplied resampling: the transparent black does not darken the red's edge.
    edge = np.asarray(out)[alpha > 30]
    assert edge[:, 0].min() > 150


def test_any_scale_rounds_to_whole_pixels_and_refuses_nonsense() -> None:
    assert target_size((33, 17), 1.5) == (50, 26)
    with pytest.raises(ValueError):
        target_size((10, 10), 0)


def test_without_weights_the_default_is_lanczos_and_says_so(tmp_path: Path) -> None:
    settings = Settings.from_env({}, upscale_dir=tmp_path)

    assert settings.resolved_upscale_backend == "lanczos"
    backend = new_upscale(settings)
    assert backend.name == "lanczos" and backend.device == "cpu"


def test_with_the_onnx_file_in_the_models_dir_the_default_is_realesrgan(tmp_path: Path) -> None:
    (tmp_path / "realesr-general-x4v3.onnx").write_bytes(b"")

    settings = Settings.from_env({}, upscale_dir=tmp_path)

    assert settings.resolved_upscale_backend == "realesrgan"
    assert (
        Settings.from_env(
            {}, upscale_dir=tmp_path, upscale_model="RealESRGAN_x4plus"
        ).resolved_upscale_backend
        == "lanczos"
    )


def test_realesrgan_asked_for_without_its_file_fails_at_startup(tmp_path: Path) -> None:
    settings = Settings.from_env({}, upscale_backend="realesrgan", upscale_dir=tmp_path)

    with pytest.raises(ConfigurationError, match=r"realesr-general-x4v3\.onnx"):
        new_upscale(settings)
