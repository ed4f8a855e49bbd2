"""The segformer backend: label maps to garments, and loading a model in the real on-disk format."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    SegformerConfig,
    SegformerForSemanticSegmentation,
    SegformerImageProcessorPil,
)

from common.backends.segmentation import new_segmentation
from common.backends.segmentation.segformer import (
    LABELS,
    Preprocessing,
    SegformerSegmentation,
    export_onnx,
    garments_from_label_map,
)
from common.backends.segmentation.upsample import upsampled_argmax
from common.config import Settings
from common.errors import ConfigurationError

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

UPPER_CLOTHES, LEFT_SHOE, RIGHT_SHOE = 4, 9, 10
HAT, HAIR, PANTS, FACE, LEFT_LEG, LEFT_ARM, RIGHT_ARM, BAG = 1, 2, 6, 11, 12, 14, 15, 16


def tiny_config(labels: tuple[str, ...] = LABELS) -> SegformerConfig:
    id2label = dict(enumerate(labels))
    return SegformerConfig(
        num_labels=len(labels),
        id2label=id2label,
        label2id={name: i for i, name in id2label.items()},
        hidden_sizes=[8, 16, 32, 64],
        depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 1, 1],
        decoder_hidden_size=16,
    )


def save_model_where_label_wins(
    model: SegformerForSemanticSegmentation, label: int, folder: Path
) -> Path:
    """Save `model` so that `label` has the highest logit at every pixel, whatever the input."""
    with torch.no_grad():
        model.decode_head.classifier.weight.zero_()
        model.decode_head.classifier.bias.zero_()
        model.decode_head.classifier.bias[label] = 10.0
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    model = SegformerForSemanticSegmentation(tiny_config())
    root = tmp_path_factory.mktemp("segformer")
    upper = save_model_where_label_wins(model, UPPER_CLOTHES, root / "upper")
    SegformerImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(upper)
    # No preprocessor_config.json here: the backend falls back to the real preprocessing.
    shoes = save_model_where_label_wins(model, RIGHT_SHOE, root / "shoes")
    # Only model.onnx and the configs: whatever runs must be ONNX Runtime.
    onnx = shutil.copytree(upper, root / "onnx")
    export_onnx(onnx)
    (onnx / "model.safetensors").unlink()
    return {"upper": upper, "shoes": shoes, "onnx": onnx}


def settings_for(path: Path) -> Settings:
    return Settings.from_env({}, segformer_path=path)


def label_map_of(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


def box_mask(height: int, width: int, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.bool_)
    mask[top:bottom, left:right] = True
    return mask


# garments_from_label_map


def test_left_and_right_shoe_become_one_shoes_item() -> None:
    label_map = label_map_of([[LEFT_SHOE, 0, RIGHT_SHOE], [LEFT_SHOE, 0, RIGHT_SHOE]])
    foreground = np.ones((2, 3), dtype=np.bool_)

    garments = garments_from_label_map(label_map, foreground)

    assert [g.label for g in garments] == ["shoes"]
    assert garments[0].mask.tolist() == [[True, False, True], [True, False, True]]


def test_body_parts_and_background_are_not_garments() -> None:
    label_map = label_map_of([[0, HAIR, FACE], [LEFT_ARM, RIGHT_ARM, LEFT_LEG]])
    foreground = np.ones((2, 3), dtype=np.bool_)

    garments = garments_from_label_map(label_map, foreground)

    assert garments == []


def test_masks_are_restricted_to_the_foreground() -> None:
    label_map = np.full((4, 4), UPPER_CLOTHES, dtype=np.uint8)
    foreground = box_mask(4, 4, 1, 1, 3, 4)

    garments = garments_from_label_map(label_map, foreground)

    assert [g.label for g in garments] == ["upper-clothes"]
    assert np.array_equal(garments[0].mask, foreground)


def test_a_garment_only_outside_the_foreground_is_dropped() -> None:
    label_map = label_map_of([[HAT, PANTS], [PANTS, PANTS]])
    foreground = label_map_of([[0, 1], [1, 1]]).astype(np.bool_)

    garments = garments_from_label_map(label_map, foreground)

    assert [g.label for g in garments] == ["pants"]


def test_garments_come_largest_first_with_every_label_name() -> None:
    label_map = np.zeros((10, 10), dtype=np.uint8)
    label_map[0:1, 0:2] = HAT  # 2 px
    label_map[2:10, 0:10] = PANTS  # 80 px
    label_map[1:2, 0:10] = BAG  # 10 px
    label_map[0:1, 2:6] = 3  # sunglasses, 4 px
    foreground = np.ones((10, 10), dtype=np.bool_)

    garments = garments_from_label_map(label_map, foreground)

    assert [(g.label, int(g.mask.sum())) for g in garments] == [
        ("pants", 80),
        ("bag", 10),
        ("sunglasses", 4),
        ("hat", 2),
    ]


def test_an_empty_foreground_has_no_garments() -> None:
    label_map = np.full((3, 3), PANTS, dtype=np.uint8)

    garments = garments_from_label_map(label_map, np.zeros((3, 3), dtype=np.bool_))

    assert garments == []


def test_label_map_and_foreground_must_have_the_same_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        garments_from_label_map(np.zeros((3, 3), dtype=np.uint8), np.ones((3, 4), dtype=np.bool_))


# the backend with a model on disk


def test_segment_finds_the_winning_garment_inside_the_foreground(
    model_dirs: dict[str, Path],
) -> None:
    backend = SegformerSegmentation.from_settings(settings_for(model_dirs["upper"]))
    image = Image.new("RGB", (48, 40), (200, 30, 30))
    foreground = box_mask(40, 48, 5, 10, 30, 40)

    garments = backend.segment(image, foreground)

    assert [g.label for g in garments] == ["upper-clothes"]
    assert np.array_equal(garments[0].mask, foreground)


def test_either_shoe_label_is_reported_as_shoes(model_dirs: dict[str, Path]) -> None:
    backend = SegformerSegmentation.from_settings(settings_for(model_dirs["shoes"]))
    foreground = box_mask(30, 50, 0, 0, 30, 25)

    garments = backend.segment(Image.new("RGB", (50, 30)), foreground)

    assert [g.label for g in garments] == ["shoes"]
    assert np.array_equal(garments[0].mask, foreground)


def test_segment_accepts_non_rgb_images(model_dirs: dict[str, Path]) -> None:
    backend = SegformerSegmentation.from_settings(settings_for(model_dirs["upper"]))
    foreground = np.ones((20, 20), dtype=np.bool_)

    garments = backend.segment(Image.new("RGBA", (20, 20)), foreground)

    assert [g.label for g in garments] == ["upper-clothes"]


def test_the_preprocessing_comes_from_the_model_directory(model_dirs: dict[str, Path]) -> None:
    with_config = SegformerSegmentation.from_settings(settings_for(model_dirs["upper"]))
    without_config = SegformerSegmentation.from_settings(settings_for(model_dirs["shoes"]))

    assert (with_config.processor.height, with_config.processor.width) == (64, 64)
    assert (without_config.processor.height, without_config.processor.width) == (512, 512)
    assert without_config.processor.mean == pytest.approx((0.485, 0.456, 0.406))
    assert without_config.processor.std == pytest.approx((0.229, 0.224, 0.225))


def test_the_numpy_preprocessing_matches_transformers(model_dirs: dict[str, Path]) -> None:
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, size=(90, 120, 3), dtype=np.uint8))
    ours = Preprocessing.from_dir(model_dirs["upper"])
    theirs = SegformerImageProcessorPil.from_pretrained(model_dirs["upper"])

    expected = np.asarray(theirs(images=image, return_tensors="np")["pixel_values"])

    assert ours(image).shape == expected.shape == (1, 3, 64, 64)
    assert np.allclose(ours(image), expected, atol=1e-4)


@pytest.mark.parametrize(("height", "width"), [(37, 53), (768, 1024), (128, 96)])
def test_upsampled_argmax_equals_torch_bilinear_then_argmax(height: int, width: int) -> None:
    rng = np.random.default_rng(height)
    # Smooth logits, as a model gives: labels form regions with boundaries between them.
    coarse = rng.normal(size=(18, 8, 8)).astype(np.float32)
    logits = torch.nn.functional.interpolate(
        torch.from_numpy(coarse)[None], size=(32, 32), mode="bicubic", align_corners=False
    )[0].numpy()

    ours = upsampled_argmax(logits, height, width)
    theirs = torch.nn.functional.interpolate(
        torch.from_numpy(logits)[None], size=(height, width), mode="bilinear", align_corners=False
    )[0].argmax(dim=0)

    assert ours.shape == (height, width)
    assert len(np.unique(ours)) > 2
    assert (ours == theirs.numpy()).mean() >= 0.9999


def segment_in_a_fresh_interpreter(path: Path) -> list[str]:
    """Load the backend from `path`, segment an image, and say what ran and what was imported.

    A fresh interpreter: the test process has torch loaded already.
    """
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from PIL import Image\n"
        "from common.backends.segmentation import new_segmentation\n"
        "from common.config import Settings\n"
        f"path = Path({str(path)!r})\n"
        "backend = new_segmentation(Settings.from_env({}, segformer_path=path))\n"
        "backend.warmup()\n"
        "found = backend.segment(Image.new('RGB', (40, 30)), np.ones((30, 40), dtype=bool))\n"
        "print(backend.runtime, [g.label for g in found],\n"
        "      sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    return done.stdout.split()


def test_the_onnx_path_imports_neither_torch_nor_transformers(model_dirs: dict[str, Path]) -> None:
    assert segment_in_a_fresh_interpreter(model_dirs["onnx"]) == ["onnx", "['upper-clothes']", "[]"]


def test_the_registry_builds_segformer_when_a_path_is_configured(
    model_dirs: dict[str, Path],
) -> None:
    backend = new_segmentation(settings_for(model_dirs["upper"]))

    backend.warmup()

    assert isinstance(backend, SegformerSegmentation)
    assert backend.runtime == "torch"


def test_a_model_onnx_in_the_directory_is_run_by_onnx_runtime(model_dirs: dict[str, Path]) -> None:
    backend = SegformerSegmentation.from_settings(settings_for(model_dirs["onnx"]))
    foreground = box_mask(40, 30, 10, 0, 40, 30)

    backend.warmup()
    garments = backend.segment(Image.new("RGB", (30, 40)), foreground)

    assert backend.runtime == "onnx"
    assert [g.label for g in garments] == ["upper-clothes"]
    assert np.array_equal(garments[0].mask, foreground)


def test_an_unreadable_model_onnx_is_a_configuration_error(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    broken = shutil.copytree(model_dirs["onnx"], tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"not a model")

    with pytest.raises(ConfigurationError, match=r"model\.onnx"):
        SegformerSegmentation.from_settings(settings_for(broken))


def test_a_missing_model_directory_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"

    with pytest.raises(ConfigurationError, match="no-such-model"):
        SegformerSegmentation.from_settings(settings_for(missing))


def test_a_directory_without_weights_is_a_configuration_error(tmp_path: Path) -> None:
    tiny_config().save_pretrained(tmp_path)

    with pytest.raises(ConfigurationError, match="weights"):
        SegformerSegmentation.from_settings(settings_for(tmp_path))


def test_a_directory_without_config_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")

    with pytest.raises(ConfigurationError, match="config"):
        SegformerSegmentation.from_settings(settings_for(tmp_path))


def test_a_model_with_another_label_layout_is_a_configuration_error(tmp_path: Path) -> None:
    SegformerForSemanticSegmentation(tiny_config(("background", "person"))).save_pretrained(
        tmp_path
    )

    with pytest.raises(ConfigurationError, match="labels"):
        SegformerSegmentation.from_settings(settings_for(tmp_path))


def test_no_path_configured_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="CLOSET_SEGFORMER_PATH"):
        SegformerSegmentation.from_settings(Settings.from_env({}))
