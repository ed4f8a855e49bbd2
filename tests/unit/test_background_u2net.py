"""The u2net backend: a real rembg session on a tiny local ONNX model, never a download."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from common.backends.background import new_background
from common.backends.background.u2net import U2netBackground
from common.config import Settings
from common.errors import ConfigurationError
from tests.synthetic import alpha_at, bright_square


def write_brightness_model(path: Path) -> None:
    """u2net's interface ([1,3,320,320] in, [1,1,320,320] out): bright pixels are foreground."""
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 320, 320])
    mask = helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 320, 320])
    steepness = helper.make_tensor("steepness", TensorProto.FLOAT, [], [10.0])
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["brightness"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["brightness", "steepness"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["mask"]),
    ]
    graph = helper.make_graph(nodes, "brightness", [image], [mask], initializer=[steepness])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


@pytest.fixture
def isolated_rembg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty U2NET_HOME the backend may overwrite; monkeypatch restores it afterwards."""
    inherited = tmp_path / "inherited"
    inherited.mkdir()
    monkeypatch.setenv("U2NET_HOME", str(inherited))
    monkeypatch.setenv("MODEL_CHECKSUM_DISABLED", "1")
    return inherited


@pytest.fixture
def weights_home(tmp_path: Path) -> Path:
    home = tmp_path / "u2net"
    home.mkdir()
    write_brightness_model(home / "u2net.onnx")
    return home


def test_bright_square_on_dark_background_becomes_the_foreground(
    isolated_rembg: Path, weights_home: Path
) -> None:
    settings = Settings.from_env({}, background_backend="u2net", u2net_home=weights_home)
    backend = new_background(settings)
    image = bright_square()

    cutout = backend.remove(image)

    assert isinstance(backend, U2netBackground)
    assert cutout.mode == "RGBA"
    assert cutout.size == image.size
    assert alpha_at(cutout, 32, 32) > 200
    assert alpha_at(cutout, 20, 40) > 200
    assert alpha_at(cutout, 2, 2) < 50
    assert alpha_at(cutout, 60, 32) < 50
    assert cutout.convert("RGB").getpixel((32, 32)) == (235, 235, 235)


def test_weights_come_from_settings_not_from_an_inherited_u2net_home(
    isolated_rembg: Path, weights_home: Path
) -> None:
    settings = Settings.from_env({}, u2net_home=weights_home)

    backend = U2netBackground.from_settings(settings)
    backend.remove(bright_square())

    assert list(isolated_rembg.iterdir()) == []


def test_missing_weights_fail_at_startup_naming_the_file_and_download_nothing(
    isolated_rembg: Path, tmp_path: Path
) -> None:
    empty_home = tmp_path / "empty"
    empty_home.mkdir()
    settings = Settings.from_env({}, u2net_home=empty_home)

    with pytest.raises(ConfigurationError) as raised:
        U2netBackground.from_settings(settings)

    assert str(empty_home / "u2net.onnx") in str(raised.value)
    assert list(empty_home.iterdir()) == []
    assert list(isolated_rembg.iterdir()) == []


def test_a_model_rembg_cannot_load_from_one_local_file_is_a_configuration_error(
    isolated_rembg: Path, weights_home: Path
) -> None:
    for model in ("no-such-model", "u2net_custom", "sam"):
        settings = Settings.from_env({}, u2net_home=weights_home, u2net_model=model)

        with pytest.raises(ConfigurationError, match="CLOSET_U2NET_MODEL"):
            U2netBackground.from_settings(settings)
