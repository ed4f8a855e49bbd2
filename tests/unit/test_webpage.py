"""The page server of `closet dev`: the build as it is, and a config.json made for the stack."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from common.emulators import EmulatorError
from common.webpage import PageServer

CONFIG = {
    "apiUrl": "http://127.0.0.1:9999/",
    "firebase": {"projectId": "demo-closet", "apiKey": "demo-key"},
    "emulators": {"auth": "http://127.0.0.1:9099", "firestore": "127.0.0.1:8080"},
}


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Cache-Control"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Cache-Control"], ""


def test_the_build_and_its_config_are_served_and_always_revalidated(tmp_path: Path):
    (tmp_path / "index.html").write_text("<!doctype html><title>Closet</title>")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app.js").write_text("console.log('closet')")

    server = PageServer(CONFIG, dist=tmp_path).start()
    try:
        page = fetch(server.url)
        script = fetch(server.url + "assets/app.js")
        config = fetch(server.url + "config.json?v=2")
        missing = fetch(server.url + "nothing.js")
    finally:
        server.stop()

    assert page == (200, "no-cache", "<!doctype html><title>Closet</title>")
    assert script[0] == 200 and script[2] == "console.log('closet')"
    assert config[0] == 200 and config[1] == "no-cache"
    assert json.loads(config[2]) == CONFIG
    assert missing[0] == 404


def test_an_unbuilt_page_says_how_to_build_it(tmp_path: Path):
    server = PageServer(CONFIG, dist=tmp_path / "dist")

    assert not server.built
    with pytest.raises(EmulatorError, match="make web"):
        server.start()


def test_requests_are_logged_to_the_log_file(tmp_path: Path):
    (tmp_path / "index.html").write_text("hi")
    log = tmp_path / "web.log"
    server = PageServer(CONFIG, dist=tmp_path, log_file=log).start()
    try:
        fetch(server.url + "config.json")
    finally:
        server.stop()

    assert '"GET /config.json HTTP/1.1" 200' in log.read_text()
