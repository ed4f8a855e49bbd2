from pathlib import Path

import pytest

from common.config import Settings, env_names
from common.errors import ConfigurationError


def test_defaults_need_no_environment():
    settings = Settings.from_env({})

    assert settings.background_backend == "classic"
    assert settings.resolved_segmentation_backend == "single"
    assert settings.working_size == 1024
    assert settings.has_generative_credentials is False


def test_environment_values_are_parsed_and_typed():
    settings = Settings.from_env(
        {
            "CLOSET_WORKING_SIZE": "768",
            "CLOSET_TAGGING": "false",
            "CLOSET_SEGFORMER_PATH": "/models/segformer",
            "CLOSET_ALLOWED_FORMATS": "jpeg, png",
            "GOOGLE_API_KEY": "k",
        }
    )

    assert settings.working_size == 768
    assert settings.tagging is False
    assert settings.segformer_path == Path("/models/segformer")
    assert settings.resolved_segmentation_backend == "segformer"
    assert settings.allowed_formats == ("jpeg", "png")
    assert settings.gemini_api_key == "k"


def test_explicit_argument_beats_environment():
    settings = Settings.from_env({"CLOSET_WORKING_SIZE": "768"}, working_size=512)

    assert settings.working_size == 512


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLOSET_WORKING_SIZE", "big"),
        ("CLOSET_WORKING_SIZE", "-1"),
        ("CLOSET_OUTPUT_FORMAT", "bmp"),
        ("CLOSET_OUTPUT_QUALITY", "101"),
        ("CLOSET_CACHE", "perhaps"),
        ("CLOSET_ALLOWED_FORMATS", "jpeg,eps"),
    ],
)
def test_bad_value_fails_fast_naming_the_variable(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


def test_outputs_may_not_share_the_uploads_bucket():
    with pytest.raises(ConfigurationError, match="different"):
        Settings.from_env({"CLOSET_RESULTS_BUCKET": "closet-uploads"})


def test_fingerprint_changes_with_result_shaping_settings():
    base = Settings.from_env({})

    assert base.fingerprint() == Settings.from_env({}).fingerprint()
    assert base.fingerprint() != Settings.from_env({"CLOSET_OUTPUT_FORMAT": "png"}).fingerprint()
    assert base.fingerprint() != Settings.from_env({"CLOSET_WORKING_SIZE": "512"}).fingerprint()


def test_readme_lists_every_variable():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()

    missing = [name for name, _ in env_names() if f"`{name}`" not in readme]

    assert missing == []
