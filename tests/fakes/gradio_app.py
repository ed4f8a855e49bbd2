"""Launch a Gradio app on loopback for a test module, offline, and close it afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.emulators import free_port


@contextlib.contextmanager
def launched(build_app: Callable[[], Any], temp_dir: Path) -> Iterator[str]:
    """The app's URL while it serves; no analytics, files under `temp_dir`."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        env.setenv("GRADIO_TEMP_DIR", str(temp_dir))
        app = build_app()
        port = free_port()
        app.launch(
            server_name="127.0.0.1",
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            ssr_mode=False,
        )
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            app.close(verbose=False)
