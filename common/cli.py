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
from typing import TYPE_CHECKING, TextIO

from common import cache, telemetry
from common.backends.tryon.base import CATEGORIES
from common.config import Settings
from common.errors import ConfigurationError
from common.schemas import Job, JobStatus

if TYPE_CHECKING:
    from common.pipeline import LocalPipeline

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


def _job_folder(job: Job, out_dir: Path) -> Path:
    """Where a job's job.json goes: beside its images (`tryon/` for try-ons)."""
    return out_dir / cache.results_prefix(job.kind, job.id)


def _summary(job: Job, path: Path, out_dir: Path, seconds: float) -> str:
    folder = _job_folder(job, out_dir)
    if job.status is JobStatus.DONE and job.result is not None:
        labels = ", ".join(item.label for item in job.result.items)
        cached = " (cache hit)" if job.cache_hit else ""
        count = len(job.result.items)
        return (
            f"done    {path}: {count} item(s): {labels} in {seconds:.2f} s{cached}\n"
            f"        outputs: {folder}\n"
            f"        job document: {folder / 'job.json'}"
        )
    error = job.error
    reason = f"{error.code}: {error.message}" if error else job.message
    return f"failed  {path}: {reason}\n        job document: {folder / 'job.json'}"


def _local_pipeline(command: str, out_dir: Path) -> LocalPipeline | None:
    """The in-process pipeline writing under `out_dir`; None (after saying why) when the
    configuration is wrong."""
    try:
        settings = Settings.from_env()
        if settings.local_root is None:
            # Uploads and intermediate artefacts stay next to the results they produced.
            settings = dataclasses.replace(settings, local_root=out_dir / ".closet")
        # Imported here so `closet --help` stays instant: loading models takes seconds.
        from common.pipeline import LocalPipeline

        return LocalPipeline(settings, results_dir=out_dir)
    except ConfigurationError as exc:
        print(f"closet {command}: configuration error: {exc}", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    paths: list[Path] = args.images
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"closet run: error: no such file: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    out_dir: Path = args.out
    pipeline = _local_pipeline("run", out_dir)
    if pipeline is None:
        return EXIT_USAGE
    jobs = [_run_one(pipeline, path, args.uid, out_dir, quiet=args.json) for path in paths]

    if args.json:
        json.dump([job.to_wire() for job in jobs], sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_OK if all(job.status is JobStatus.DONE for job in jobs) else EXIT_FAILED


def tryon(args: argparse.Namespace) -> int:
    """A try-on in-process: GARMENT is a garment photo (a closet job runs on it first) or an
    item of an earlier `closet run` output (`DIR/<jobId>/items/<n>-<label>.webp`)."""
    person: Path = args.person
    garment: Path = args.garment
    missing = [str(p) for p in (person, garment) if not p.is_file()]
    if missing:
        print(f"closet tryon: error: no such file: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    out_dir: Path = args.out
    pipeline = _local_pipeline("tryon", out_dir)
    if pipeline is None:
        return EXIT_USAGE

    job_json = garment.parent.parent / "job.json"
    if garment.parent.name == "items" and job_json.is_file():
        closet = pipeline.adopt(job_json)
        index = garment.name.partition("-")[0]
    else:
        closet = _run_one(pipeline, garment, args.uid, out_dir, quiet=args.json)
        index = "0"
    jobs = [closet]
    if closet.status is JobStatus.DONE:
        metadata = {"garment": f"{closet.id}/items/{index}"}
        if args.category:
            metadata["category"] = args.category
        jobs.append(
            _run_one(
                pipeline,
                person,
                closet.uid,
                out_dir,
                quiet=args.json,
                folder="tryon/",
                metadata=metadata,
            )
        )
    if args.json:
        json.dump([job.to_wire() for job in jobs], sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_OK if all(job.status is JobStatus.DONE for job in jobs) else EXIT_FAILED


def _run_one(
    pipeline: LocalPipeline,
    path: Path,
    uid: str,
    out_dir: Path,
    *,
    quiet: bool,
    folder: str = "",
    metadata: dict[str, str] | None = None,
) -> Job:
    """One upload through its pipeline with live progress; writes its job.json."""
    started = time.perf_counter()
    event = pipeline.upload(
        path.read_bytes(), path.name, uid, str(time.time_ns()), folder=folder, metadata=metadata
    )
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
    job_folder = _job_folder(final, out_dir)
    job_folder.mkdir(parents=True, exist_ok=True)
    (job_folder / "job.json").write_text(json.dumps(final.to_wire(), indent=2) + "\n")
    if not quiet:
        print(_summary(final, path, out_dir, time.perf_counter() - started), flush=True)
    return final


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

    if args.tryon:
        metadata = {"garment": args.tryon}
        if args.category:
            metadata["category"] = args.category
        job_id = upload(args.image, args.uid, settings, folder="tryon/", metadata=metadata)
    else:
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

    tryon_parser = commands.add_parser(
        "tryon", help="dress a person photo in a garment, in-process (no cloud needed)"
    )
    tryon_parser.add_argument("person", type=Path, metavar="PERSON", help="a photo of a person")
    tryon_parser.add_argument(
        "garment",
        type=Path,
        metavar="GARMENT",
        help="a garment photo, or an item image of an earlier `closet run` output",
    )
    tryon_parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    tryon_parser.add_argument(
        "--category", choices=CATEGORIES, help="how the garment is worn (default: from its label)"
    )
    tryon_parser.add_argument(
        "--json", action="store_true", help="print the final job documents as a JSON list"
    )
    tryon_parser.add_argument("--uid", default="local", help="owner recorded on the jobs")
    tryon_parser.set_defaults(handler=tryon)

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
    submit_parser.add_argument(
        "--tryon",
        metavar="ITEM",
        help="IMAGE is a person photo: try on this finished closet item (JOB_ID/items/N)",
    )
    submit_parser.add_argument(
        "--category", choices=CATEGORIES, help="with --tryon: how the garment is worn"
    )
    submit_parser.set_defaults(handler=submit)

    watch_parser = commands.add_parser(
        "watch", parents=[follow_options], help="follow a job live from Firestore"
    )
    watch_parser.add_argument("job_id", metavar="JOB_ID")
    watch_parser.set_defaults(handler=watch)

    bench_parser = commands.add_parser("bench", help="measure every stage against its target")
    bench_parser.add_argument("--quick", action="store_true", help="a small run, under a minute")
    bench_parser.add_argument("--json", type=Path, metavar="FILE", help="also write the JSON here")
    bench_parser.add_argument("--out", type=Path, metavar="DIR", help="default: bench/results")
    bench_parser.add_argument("--cache", type=Path, metavar="DIR", help="models and photo")
    bench_parser.set_defaults(handler=_bench)
    return parser


def _bench(args: argparse.Namespace) -> int:
    from common.bench.run import command  # torch and the emulators load only for the bench

    return command(args)


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
