"""`closet`: the command line (see the CLI contract in DESIGN.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from common import telemetry
from common.config import Settings
from common.errors import ConfigurationError
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
        if "CLOSET_LOCAL_ROOT" not in os.environ:
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    telemetry.configure(logging.INFO if args.verbose else logging.WARNING)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
