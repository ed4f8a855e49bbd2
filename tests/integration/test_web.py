"""The web app in Debian's Chromium (driven by playwright-core) against the `closet dev` stack.

The browser half is `web/tests/e2e.mjs`; this test starts the stack, hands the script the page's
URL and reports what it printed. Under `CI=true` a missing Chromium, Node or build fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from common.devstack import DevStack
from tests.fakes.gemini_server import DEFAULT_CAPTION, FakeGemini
from tests.integration.conftest import emulators_unavailable, running_stack

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
SCRIPT = WEB / "tests" / "e2e.mjs"
SAMPLE = REPO / "tests" / "data" / "sample-shirt.jpg"
SCREENSHOT = REPO / "docs" / "screenshot.png"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# What the fake Gemini tags the sample shirt with, so the page shows attributes.
SHIRT = {
    "category": "shirt",
    "colors": ["steel blue", "navy"],
    "pattern": "solid",
    "seasons": ["spring", "autumn"],
}


def missing_browser_parts() -> str | None:
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} is missing (make test installs Debian's chromium)"
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        return "web/node_modules is missing: run `make web`"
    if not (WEB / "dist" / "index.html").is_file():
        return "web/dist is missing: run `make web`"
    return None


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    reason = missing_browser_parts()
    if reason is not None:
        emulators_unavailable(reason)
    with (
        FakeGemini(api_key="web-key", attributes=SHIRT) as gemini,
        running_stack(
            "demo-closet-web",
            {"GEMINI_API_KEY": "web-key", "CLOSET_GEMINI_BASE_URL": gemini.url},
        ) as stack,
    ):
        yield stack


def heic_copy(photo: Path, folder: Path) -> Path:
    """The photo as an iPhone saves it (HEIC), which Chromium cannot decode."""
    pillow_heif.register_heif_opener()
    path = folder / f"{photo.stem}.heic"
    with Image.open(photo) as image:
        image.save(path, format="HEIF", quality=80)
    return path


def test_a_user_uploads_watches_sees_garments_and_shares_studio_shots_and_nobody_else_does(
    stack: DevStack, tmp_path: Path
) -> None:
    assert stack.page is not None, stack.page_missing
    assert stack.auth is not None
    run = subprocess.run(
        ["node", str(SCRIPT)],
        cwd=WEB,
        env={
            **os.environ,
            "CLOSET_PAGE_URL": stack.page.url,
            "CLOSET_SAMPLE": str(SAMPLE),
            "CLOSET_SAMPLE_HEIC": str(heic_copy(SAMPLE, tmp_path)),
            "CLOSET_SCREENSHOT": str(SCREENSHOT),
            "CHROMIUM": CHROMIUM,
            "CLOSET_AUTH_URL": stack.auth.url,
            "CLOSET_AUTH_PROJECT": stack.auth.project,
            "CLOSET_CAPTION_TITLE": DEFAULT_CAPTION["title"],
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "web app: every check passed" in run.stdout, report
    assert SCREENSHOT.stat().st_size > 10_000
