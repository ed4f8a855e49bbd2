"""`closet`: the command line (see the CLI contract in DESIGN.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from common import telemetry
from common.config import Settings
from common.errors import ConfigurationError
from common.models import add_models_command
from common.schemas import Job, JobStatus

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class ProgressView:
    """Live progress of one job, fed by the job store's listener: a bar on a terminal."""

    WIDTH = 24

    def __init__(self, label: str, stream: TextIO) -> None:
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        self._last: tuple[object, ...] | None = None

    def __call__(self, job: Job) -> None:
        state = (job.status, job.stage, job.progress, job.message)
        if state == self._last:
            return
        self._last = state
        if self.tty:
            filled = self.WIDTH * job.progress // 100
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            line = f"\r\x1b[2K{self.label} [{bar}] {job.progress:3d}% {job.message}"
            self.stream.write(line[:200])
        else:
            self.stream.write(f"{self.label}: {job.progress:3d}% {job.stage}: {job.message}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._last is not None:
            self.stream.write("\n")
            self.stream.flush()


def _summary(job: Job, path: Path, out_dir: Path, seconds: float) -> str:
    folder = out_dir / job.id
    if job.status is JobStatus.DONE and job.result is not None:
        labels = ", ".join(item.label for item in job.result.items)
        cached = " (cache hit)" if job.cache_hit else ""
        count = len(job.result.items)
        return (
            f"done    {path}: {count} item(s): {labels} in {seconds:.2f} s{cached}\n"
            f"        outputs: {out_dir / Path(job.result.cutout.path).parent}\n"
            f"        job document: {folder / 'job.json'}"
        )
    error = job.error
    reason = f"{error.code}: {error.message}" if error else job.message
    return f"failed  {path}: {reason}\n        job document: {folder / 'job.json'}"


def run(args: argparse.Namespace) -> int:
    paths: list[Path] = args.images
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"closet run: error: no such file: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    out_dir: Path = args.out
    try:
        settings = Settings.from_env()
        if settings.local_root is None:
            # Uploads and intermediate artefacts stay next to the results they produced.
            settings = dataclasses.replace(settings, local_root=out_dir / ".closet")
        # Imported here so `closet --help` stays instant: loading models takes seconds.
        from common.pipeline import LocalPipeline

        pipeline = LocalPipeline(settings, results_dir=out_dir)
    except ConfigurationError as exc:
        print(f"closet run: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    jobs: list[Job] = []
    for path in paths:
        started = time.perf_counter()
        event = pipeline.upload(path.read_bytes(), path.name, args.uid, str(time.time_ns()))
        job = pipeline.start(event)
        view = ProgressView(path.name, sys.stderr)
        unsubscribe = pipeline.jobs.listen(job.id, view)
        try:
            pipeline.drain()
        finally:
            unsubscribe()
            view.close()
        final = pipeline.jobs.get(job.id)
        assert final is not None
        folder = out_dir / final.id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "job.json").write_text(json.dumps(final.to_wire(), indent=2) + "\n")
        jobs.append(final)
        if not args.json:
            print(_summary(final, path, out_dir, time.perf_counter() - started), flush=True)

    if args.json:
        json.dump([job.to_wire() for job in jobs], sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_OK if all(job.status is JobStatus.DONE for job in jobs) else EXIT_FAILED


def _load_state(path: Path | None) -> None:
    """Point the client libraries at a `closet dev` stack described by its state file."""
    if path is None:
        return
    state = json.loads(path.read_text())
    os.environ.update(state.get("env", {}))


def _watch(job_id: str, settings: Settings, args: argparse.Namespace) -> int:
    from common.submit import follow

    view = ProgressView(job_id[:12], sys.stderr)
    try:
        job = follow(job_id, settings, view, args.timeout)
    finally:
        view.close()
    if job is None:
        print(f"closet: job {job_id} did not finish within {args.timeout:.0f} s", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(job.to_wire(), indent=2))
    elif job.status is JobStatus.DONE and job.result is not None:
        labels = ", ".join(item.label for item in job.result.items)
        print(f"done    {job.id}: {len(job.result.items)} item(s): {labels}")
        for item in job.result.items:
            print(f"        {item.image.url}")
    else:
        reason = f"{job.error.code}: {job.error.message}" if job.error else job.message
        print(f"failed  {job.id}: {reason}")
    return EXIT_OK if job.status is JobStatus.DONE else EXIT_FAILED


def submit(args: argparse.Namespace) -> int:
    if not args.image.is_file():
        print(f"closet submit: error: no such file: {args.image}", file=sys.stderr)
        return EXIT_USAGE
    _load_state(args.state)
    settings = Settings.from_env()
    from common.submit import upload

    job_id = upload(args.image, args.uid, settings)
    print(job_id, flush=True)
    return _watch(job_id, settings, args) if args.watch else EXIT_OK


def watch(args: argparse.Namespace) -> int:
    _load_state(args.state)
    return _watch(args.job_id, Settings.from_env(), args)


def dev(args: argparse.Namespace) -> int:
    from common.devstack import DevStack

    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    # Set before starting anything, so a Ctrl-C during start-up still stops what was started.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = DevStack(Settings.from_env())
    try:
        print("closet dev: starting the emulators and the functions...", file=sys.stderr)
        stack.start()
        state = stack.state()
        if args.state is not None:
            args.state.write_text(json.dumps(state, indent=2) + "\n")
        print(f"project   {state['project']}")
        for name, value in state["env"].items():
            print(f"env       {name}={value}")
        for role, bucket in state["buckets"].items():
            print(f"bucket    {role}: {bucket}")
        for name, url in state["functions"].items():
            print(f"function  {name}: {url}")
        print(
            "ready: upload with `closet submit IMAGE --watch`; Ctrl-C stops everything", flush=True
        )
        while not stopping.wait(0.5):
            pass
    finally:
        print("closet dev: stopping...", file=sys.stderr)
        stack.stop()
        if args.state is not None:
            args.state.unlink(missing_ok=True)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="closet", description="Turn photos of clothing into clean, labelled garment images."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every stage (JSON)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_parser = commands.add_parser(
        "run", help="run the whole pipeline in-process on local images (no cloud needed)"
    )
    run_parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    run_parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    run_parser.add_argument(
        "--json", action="store_true", help="print the final job documents as a JSON list"
    )
    run_parser.add_argument("--uid", default="local", help="owner recorded on the jobs")
    run_parser.set_defaults(handler=run)

    dev_parser = commands.add_parser(
        "dev", help="start the emulators and every function locally, wired as in the cloud"
    )
    dev_parser.add_argument(
        "--state", type=Path, metavar="FILE", help="write the endpoints as JSON to FILE"
    )
    dev_parser.set_defaults(handler=dev)

    follow_options = argparse.ArgumentParser(add_help=False)
    follow_options.add_argument(
        "--state", type=Path, metavar="FILE", help="use the endpoints of `closet dev --state FILE`"
    )
    follow_options.add_argument("--json", action="store_true", help="print the final job document")
    follow_options.add_argument(
        "--timeout", type=float, default=600.0, metavar="SECONDS", help="give up after this long"
    )
    submit_parser = commands.add_parser(
        "submit", parents=[follow_options], help="upload a photo to the uploads bucket"
    )
    submit_parser.add_argument("image", type=Path, metavar="IMAGE")
    submit_parser.add_argument("--uid", default="local", help="owner: uploads go to users/UID/")
    submit_parser.add_argument("--watch", action="store_true", help="follow the job live")
    submit_parser.set_defaults(handler=submit)

    watch_parser = commands.add_parser(
        "watch", parents=[follow_options], help="follow a job live from Firestore"
    )
    watch_parser.add_argument("job_id", metavar="JOB_ID")
    watch_parser.set_defaults(handler=watch)

    add_models_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    telemetry.configure(logging.INFO if args.verbose else logging.WARNING)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except ConfigurationError as exc:
        print(f"closet {args.command}: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
