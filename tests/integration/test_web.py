"""The web app in Debian's Chromium (driven by playwright-core) against the `closet dev` stack.

The browser half is `web/tests/e2e.mjs`; this test starts the stack, hands the script the page's
URL and reports what it printed; when the script asks (a line `harness: break captions`), it makes
the fake Gemini's captions unusable and answers `done` on the script's stdin. Under `CI=true` a
missing Chromium, Node or build fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
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
STUDIO_SCREENSHOT = REPO / "docs" / "studio.png"
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
def gemini() -> Iterator[FakeGemini]:
    reason = missing_browser_parts()
    if reason is not None:
        emulators_unavailable(reason)
    with FakeGemini(api_key="web-key", attributes=SHIRT) as server:
        yield server


@pytest.fixture(scope="module")
def stack(gemini: FakeGemini) -> Iterator[DevStack]:
    with running_stack(
        "demo-closet-web", {"GEMINI_API_KEY": "web-key", "CLOSET_GEMINI_BASE_URL": gemini.url}
    ) as stack:
        yield stack


def heic_copy(photo: Path, folder: Path) -> Path:
    """The photo as an iPhone saves it (HEIC), which Chromium cannot decode."""
    pillow_heif.register_heif_opener()
    path = folder / f"{photo.stem}.heic"
    with Image.open(photo) as image:
        image.save(path, format="HEIF", quality=80)
    return path


def run_script(env: dict[str, str], gemini: FakeGemini, timeout_s: float) -> tuple[int, str]:
    """Run e2e.mjs, doing what it asks on the way; its exit code and everything it printed."""
    process = subprocess.Popen(
        ["node", str(SCRIPT)],
        cwd=WEB,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin and process.stdout and process.stderr
    printed: list[str] = []
    errors: list[str] = []

    def follow_stdout() -> None:
        assert process.stdin and process.stdout
        for line in process.stdout:
            printed.append(line)
            if line.strip() == "harness: break captions":
                gemini.caption = {"title": "Half a caption"}  # no story: it does not parse
                process.stdin.write("done\n")
                process.stdin.flush()

    def follow_stderr() -> None:
        assert process.stderr
        errors.extend(process.stderr)

    readers = [threading.Thread(target=f, daemon=True) for f in (follow_stdout, follow_stderr)]
    for reader in readers:
        reader.start()
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    for reader in readers:
        reader.join(timeout=10)
    return code, "".join(printed) + "".join(errors)


def test_a_user_uploads_watches_sees_garments_and_shares_studio_shots_and_nobody_else_does(
    stack: DevStack, gemini: FakeGemini, tmp_path: Path
) -> None:
    assert stack.page is not None, stack.page_missing
    assert stack.auth is not None
    code, report = run_script(
        {
            **os.environ,
            "CLOSET_PAGE_URL": stack.page.url,
            "CLOSET_SAMPLE": str(SAMPLE),
            "CLOSET_SAMPLE_HEIC": str(heic_copy(SAMPLE, tmp_path)),
            "CLOSET_SCREENSHOT": str(SCREENSHOT),
            "CLOSET_STUDIO_SCREENSHOT": str(STUDIO_SCREENSHOT),
            "CHROMIUM": CHROMIUM,
            "CLOSET_AUTH_URL": stack.auth.url,
            "CLOSET_AUTH_PROJECT": stack.auth.project,
            "CLOSET_CAPTION_TITLE": DEFAULT_CAPTION["title"],
            "CLOSET_HARNESS_STDIN": "1",
        },
        gemini,
        timeout_s=900,
    )
    assert code == 0, report
    assert "web app: every check passed" in report, report
    assert "without a caption the page says so" in report, report
    assert SCREENSHOT.stat().st_size > 10_000
    assert STUDIO_SCREENSHOT.stat().st_size > 10_000
