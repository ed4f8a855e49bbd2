import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common import imaging
from common.adapters.folder import FolderBlobStore
from common.config import (
    Settings,
    available_cpus,
    effective,
    env_names,
    warn_unknown_variables,
)
from common.errors import ConfigurationError
from common.outputs import Output, Results


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
        ("CLOSET_REMOTE_TIMEOUT_S", "-3"),
        ("CLOSET_REMOTE_TIMEOUT_S", "0"),
        ("CLOSET_OUTPUT_QUALITY", "0"),
        ("CLOSET_MIN_GARMENT_AREA", "1.5"),
        ("CLOSET_ENCODE_WORKERS", "0"),
        ("CLOSET_MAX_ATTEMPTS", "-1"),
    ],
)
def test_bad_value_fails_fast_naming_the_variable(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "CLOSET_OUTPUT_QUALITY='abc': should be a valid integer"),
        ("101", "CLOSET_OUTPUT_QUALITY='101': should be less than or equal to 100"),
    ],
)
def test_a_bad_value_is_explained_in_words_not_in_python(value, message):
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"CLOSET_OUTPUT_QUALITY": value})

    assert str(caught.value).startswith(message)
    assert "invalid literal" not in str(caught.value)


def test_a_bad_argument_is_named_as_an_argument():
    with pytest.raises(ConfigurationError, match="argument output_quality=0"):
        Settings.from_env({}, output_quality=0)


def test_an_unknown_closet_variable_warns_once_with_the_closest_name(caplog):
    environ = {"CLOSET_THUMBNAIL_SIZ": "128", "CLOSET_ZZZZZZZZ": "1", "HOME": "/root"}

    with caplog.at_level(logging.WARNING, logger="closet.config"):
        Settings.from_env(environ)
        Settings.from_env(environ)

    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "unknown variable CLOSET_THUMBNAIL_SIZ; did you mean CLOSET_THUMBNAIL_SIZE?",
        "unknown variable CLOSET_ZZZZZZZZ; it is ignored",
    ]
    assert warn_unknown_variables(environ) == []


def test_effective_settings_say_where_each_value_came_from():
    environ = {"CLOSET_WORKING_SIZE": "768", "CLOSET_REMOVEBG_API_KEY": "rb-secret"}
    settings = Settings.from_env(environ, cache=False)

    rows = {row.name: row for row in effective(settings, environ, arguments=["cache"])}

    assert (rows["working_size"].value, rows["working_size"].origin) == ("768", "environment")
    assert (rows["cache"].value, rows["cache"].origin) == ("false", "argument")
    assert (rows["output_format"].value, rows["output_format"].origin) == ("webp", "default")
    assert rows["removebg_api_key"].value == "****"
    assert rows["removebg_api_key"].variable == "CLOSET_REMOVEBG_API_KEY"


def test_outputs_may_not_share_the_uploads_bucket():
    with pytest.raises(ConfigurationError, match="different"):
        Settings.from_env({"CLOSET_RESULTS_BUCKET": "closet-uploads"})


def test_fingerprint_changes_with_result_shaping_settings():
    base = Settings.from_env({})

    assert base.fingerprint() == Settings.from_env({}).fingerprint()
    assert base.fingerprint() != Settings.from_env({"CLOSET_OUTPUT_FORMAT": "png"}).fingerprint()
    assert base.fingerprint() != Settings.from_env({"CLOSET_WORKING_SIZE": "512"}).fingerprint()
    effort = {"CLOSET_WEBP_METHOD": "6"}
    assert base.fingerprint() != Settings.from_env(effort).fingerprint()
    assert base.studio_fingerprint() != Settings.from_env(effort).studio_fingerprint()
    # WebP's effort shapes nothing but WebP.
    jpeg = {"CLOSET_OUTPUT_FORMAT": "jpeg"}
    assert Settings.from_env(jpeg).fingerprint() == Settings.from_env(jpeg | effort).fingerprint()


def test_outputs_are_encoded_with_the_configured_webp_effort(tmp_path):
    yy, xx = np.mgrid[:96, :128]
    pixels = np.stack([xx * 2, yy * 2, (xx * yy) % 256, np.full_like(xx, 255)], axis=-1)
    image = Image.fromarray(pixels.astype(np.uint8), "RGBA")
    sizes = {}
    for method in ("0", "6"):
        settings = Settings.from_env({"CLOSET_WEBP_METHOD": method}, local_root=tmp_path)
        results = Results(settings, FolderBlobStore(tmp_path / method))
        (ref,) = results.store_all([Output(f"m{method}.webp", image, 1024)])
        data = FolderBlobStore(tmp_path / method).read(settings.results_bucket, ref.path)
        assert data == imaging.encode(image, "webp", quality=85, webp_method=int(method))
        sizes[method] = len(data)
    assert sizes["6"] < sizes["0"]


def test_readme_lists_every_variable():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()

    missing = [name for name, _ in env_names() if f"`{name}`" not in readme]

    assert missing == []


class _MetadataServer(BaseHTTPRequestHandler):
    """Google's metadata server as far as finding the project goes."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"metadata-project" if self.path.endswith("/project/project-id") else b"ok"
        self.send_response(200)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", "application/text")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def project_in_a_fresh_process(tmp_path: Path, **env: str) -> str:
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GOOGLE_", "GCE_", "CLOSET_", "K_"))
    }
    # No application default credentials: an empty home and gcloud folder.
    environ |= {"HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), **env}
    code = "from common.config import Settings; print(Settings.from_env().project)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_on_cloud_run_the_project_comes_from_the_metadata_server(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MetadataServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        project = project_in_a_fresh_process(
            tmp_path, K_SERVICE="segment", GCE_METADATA_HOST=host, GCE_METADATA_IP=host
        )
    finally:
        server.shutdown()
        server.server_close()

    assert project == "metadata-project"


def test_the_environment_names_the_project_before_any_lookup(tmp_path: Path) -> None:
    unreachable = "127.0.0.1:9"
    project = project_in_a_fresh_process(
        tmp_path,
        GOOGLE_CLOUD_PROJECT="from-env",
        K_SERVICE="segment",
        GCE_METADATA_HOST=unreachable,
        GCE_METADATA_IP=unreachable,
    )

    assert project == "from-env"


def test_off_google_cloud_without_credentials_the_project_is_local(tmp_path: Path) -> None:
    assert project_in_a_fresh_process(tmp_path) == "closet-local"


def test_model_threads_follow_the_cgroup_cpu_quota(tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == cpus
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs keep two threads busy
    assert available_cpus(tmp_path) == min(cpus, 2)
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").unlink()
    assert available_cpus(tmp_path) == cpus


def test_cpu_threads_overrides_what_the_instance_allows() -> None:
    assert Settings.from_env({"CLOSET_CPU_THREADS": "3"}).model_threads == 3
    assert Settings.from_env({}).model_threads == available_cpus()
    with pytest.raises(ConfigurationError, match="CLOSET_CPU_THREADS"):
        Settings.from_env({"CLOSET_CPU_THREADS": "0"})
