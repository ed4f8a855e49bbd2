"""`closet`: the command line (see the CLI contract in DESIGN.md).

Every user mistake (a path, a state file, missing credentials, a bad value) is one line on
stderr naming what is wrong and what to do, and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from rich.console import Console

from common import cache, telemetry
from common.backends.backdrop.base import STYLES
from common.backends.tryon.base import CATEGORIES
from common.config import Settings, effective
from common.errors import ConfigurationError
from common.jobs import studio_metadata as inputs_metadata
from common.models import add_fetch_command
from common.progress import JobsProgress
from common.schemas import Inputs, Job, JobStatus, StageStatus
from common.studio.compose import ASPECTS

if TYPE_CHECKING:
    from common.pipeline import LocalPipeline

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# `closet dev` stands in for Cloud Scheduler: the watchdog sweeps this often.
DEV_SWEEP_EVERY_S = 60.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")
DEFAULT_OUT = Path("closet-out")
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)

EPILOG = """\
exit codes:
  0  every job is done
  1  a job failed (its job.json says why), or a watched job did not finish in time
  2  a usage or configuration error (one line on stderr says what to fix)

main variables (`closet config` shows all of them, with where each value came from):
  CLOSET_BACKGROUND_BACKEND   classic (default), u2net, space, removebg
  CLOSET_SEGFORMER_PATH       local SegFormer weights: one item per garment
  GEMINI_API_KEY              tags attributes and completes cut-off garments
  CLOSET_OUTPUT_FORMAT        webp (default), jpeg, png
  GOOGLE_CLOUD_PROJECT        project for `submit`, `watch` and `dev`
"""


# `closet submit --studio` with no item: the studio shot is of IMAGE itself.
PHOTO = "photo"


class UsageError(Exception):
    """A user mistake: reported as one line and exit code 2."""


# -- closet run ----------------------------------------------------------------------------


def _images_in(folder: Path, recursive: bool, skip: Path) -> list[Path]:
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    found = []
    for path in candidates:
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_relative_to(skip):
            continue  # our own outputs, when --out lies inside the folder
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.append(path)
    return sorted(found)


def expand_images(arguments: Sequence[Path], recursive: bool, out_dir: Path) -> list[Path]:
    """Files as given, folders as the images they hold; a wrong path is a `UsageError`."""
    images: list[Path] = []
    for argument in arguments:
        if argument.is_dir():
            found = _images_in(argument, recursive, out_dir.resolve())
            if not found:
                hint = "" if recursive else " (add --recursive for its subfolders)"
                raise UsageError(
                    f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {argument}{hint}"
                )
            images += found
        elif argument.is_file():
            images.append(argument)
        elif argument.exists():
            raise UsageError(f"{argument} is neither a file nor a folder")
        else:
            raise UsageError(f"no such file or folder: {argument}")
    for image in images:
        try:
            with image.open("rb"):
                pass
        except OSError as exc:
            raise UsageError(f"cannot read {image}: {exc.strerror}") from None
    return images


def prepare_out(out_dir: Path) -> None:
    """Create `--out` and prove it writable, or say why it cannot be used."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file, not a folder: name a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise UsageError(
            f"--out {out_dir} is not a writable folder ({exc.strerror}): name another one"
        ) from None


def job_id_for(path: Path) -> str:
    """`<stem>-<short id>`: the output folder says which photo it came from."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-_")[:40] or "image"
    return f"{stem}-{uuid.uuid4().hex[:8]}"


SINGLE_MODE = "single-garment mode (set CLOSET_SEGFORMER_PATH for one item per garment)"


def describe_stages(job: Job) -> list[str]:
    """Which backend each stage ran, and why a stage was skipped."""
    ran = []
    skipped = []
    for name, record in job.stages.items():
        if record.status is StageStatus.SKIPPED:
            skipped.append(f"{name}: {record.reason or 'no reason given'}")
        elif record.backend:
            note = f": {SINGLE_MODE}" if record.backend == "single" else ""
            ran.append(f"{name}={record.backend}{note}")
    lines = []
    if ran:
        lines.append(f"backends: {', '.join(ran)}")
    if skipped:
        lines.append(f"skipped:  {'; '.join(skipped)}")
    return lines


def job_folder(job: Job, out_dir: Path) -> Path:
    """Where a job's job.json goes: beside its images (`tryon/` for try-ons)."""
    return out_dir / cache.results_prefix(job.kind, job.id)


def write_job(job: Job, out_dir: Path) -> None:
    folder = job_folder(job, out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.json").write_text(json.dumps(job.to_wire(), indent=2) + "\n")


def summary(job: Job, path: Path, out_dir: Path, seconds: float) -> str:
    folder = job_folder(job, out_dir)
    details = [*describe_stages(job)]
    if job.status is JobStatus.DONE and job.result is not None:
        labels = ", ".join(item.label for item in job.result.items)
        cached = " (cache hit)" if job.cache_hit else ""
        count = len(job.result.items)
        noun = "item" if count == 1 else "items"
        head = f"done    {path}: {count} {noun}: {labels} in {seconds:.2f} s{cached}"
        details.append(f"outputs:  {folder}")
    else:
        error = job.error
        reason = f"{error.code}: {error.message}" if error else job.message
        head = f"failed  {path}: {reason}"
    details.append(f"job document: {folder / 'job.json'}")
    return "\n".join([head, *(f"        {line}" for line in details)])


def labels_for(images: Sequence[Path]) -> dict[Path, str]:
    """File names for the progress display; whole paths only where two names are alike."""
    names = [path.name for path in images]
    return {path: path.name if names.count(path.name) == 1 else str(path) for path in images}


def _process(
    pipelines: SimpleQueue[LocalPipeline],
    path: Path,
    label: str,
    uid: str,
    progress: JobsProgress,
    *,
    folder: str = "",
    metadata: dict[str, str] | None = None,
) -> tuple[Job, float]:
    """One upload through the pipeline its folder picks (`tryon/`: a try-on)."""
    pipeline = pipelines.get()
    try:
        started = time.perf_counter()
        event = pipeline.upload(
            path.read_bytes(), path.name, uid, str(time.time_ns()), folder=folder
        )
        tags = {**(metadata or {}), "job-id": job_id_for(path)}
        event = event.model_copy(update={"metadata": tags})
        job = pipeline.start(event)
        unsubscribe = pipeline.jobs.listen(job.id, progress.track(label))
        try:
            pipeline.drain()
        finally:
            unsubscribe()
        final = pipeline.jobs.get(job.id)
        assert final is not None
        return final, time.perf_counter() - started
    finally:
        pipelines.put(pipeline)


def local_settings(out_dir: Path) -> Settings:
    settings = Settings.from_env()
    if settings.local_root is None:
        # Uploads and intermediate artefacts stay next to the results they produced.
        settings = settings.replace(local_root=out_dir / ".closet")
    return settings


def run(args: argparse.Namespace) -> int:
    out_dir: Path = args.out
    images = expand_images(args.images, args.recursive, out_dir)
    prepare_out(out_dir)
    settings = local_settings(out_dir)
    # Imported here so `closet --help` stays instant: loading models takes seconds.
    from common.backends.lazy import Backends
    from common.pipeline import LocalPipeline

    backends = Backends(settings)  # shared: each model loads once, whatever the worker count
    workers = max(1, min(args.workers, len(images)))
    pipelines: SimpleQueue[LocalPipeline] = SimpleQueue()
    for _ in range(workers):
        pipelines.put(LocalPipeline(settings, results_dir=out_dir, backends=backends))

    jobs: dict[Path, Job] = {}
    labels = labels_for(images)
    with (
        JobsProgress(Console(stderr=True), len(images)) as progress,
        ThreadPoolExecutor(workers, thread_name_prefix="closet-run") as pool,
    ):
        futures = {
            pool.submit(_process, pipelines, path, labels[path], args.uid, progress): path
            for path in images
        }
        try:
            for future in as_completed(futures):
                path = futures[future]
                job, seconds = future.result()
                progress.finish(labels[path])
                write_job(job, out_dir)
                jobs[path] = job
                if not args.json:
                    print(summary(job, path, out_dir, seconds), flush=True)
        except BaseException:
            # Ctrl-C or an error: the photos not started yet are not started at all.
            pool.shutdown(wait=False, cancel_futures=True)
            raise

    ordered = [jobs[path] for path in images]
    if args.json:
        json.dump([job.to_wire() for job in ordered], sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_OK if all(job.status is JobStatus.DONE for job in ordered) else EXIT_FAILED


# -- closet tryon ---------------------------------------------------------------------------


def one_local_pipeline(out_dir: Path) -> tuple[LocalPipeline, SimpleQueue[LocalPipeline]]:
    """An in-process pipeline writing to `out_dir`, and the queue `_process` takes it from."""
    prepare_out(out_dir)
    settings = local_settings(out_dir)
    from common.backends.lazy import Backends
    from common.pipeline import LocalPipeline

    pipeline = LocalPipeline(settings, results_dir=out_dir, backends=Backends(settings))
    pipelines: SimpleQueue[LocalPipeline] = SimpleQueue()
    pipelines.put(pipeline)
    return pipeline, pipelines


def tryon(args: argparse.Namespace) -> int:
    """A try-on in-process: GARMENT is a garment photo (a closet job runs on it first) or an
    item of an earlier `closet run` output (`DIR/<jobId>/items/<n>-<label>.webp`)."""
    person: Path = args.person
    garment: Path = args.garment
    for path in (person, garment):
        if not path.is_file():
            raise UsageError(f"no such file: {path}")
    out_dir: Path = args.out
    pipeline, pipelines = one_local_pipeline(out_dir)
    jobs: list[Job] = []
    with JobsProgress(Console(stderr=True), 2) as progress:

        def one(path: Path, uid: str, **upload: Any) -> Job:
            job, seconds = _process(pipelines, path, path.name, uid, progress, **upload)
            progress.finish(path.name)
            write_job(job, out_dir)
            if not args.json:
                print(summary(job, path, out_dir, seconds), flush=True)
            return job

        adopted = adopted_item(pipeline, garment)
        if adopted is None:
            closet = one(garment, args.uid)
            adopted = closet, f"{closet.id}/items/0"
        closet, item = adopted
        jobs.append(closet)
        if closet.status is JobStatus.DONE:
            metadata = {"garment": item}
            if args.category:
                metadata["category"] = args.category
            jobs.append(one(person, closet.uid, folder="tryon/", metadata=metadata))
    if args.json:
        json.dump([job.to_wire() for job in jobs], sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_OK if all(job.status is JobStatus.DONE for job in jobs) else EXIT_FAILED


def adopted_item(pipeline: LocalPipeline, image: Path) -> tuple[Job, str] | None:
    """The closet job and `JOB_ID/items/N` when `image` is an item of an earlier `closet run`
    output (the job is taken into `pipeline`); None for any other photo."""
    job_json = image.parent.parent / "job.json"
    if image.parent.name != "items" or not job_json.is_file():
        return None
    closet = pipeline.adopt(job_json)
    return closet, f"{closet.id}/items/{image.name.partition('-')[0]}"


def studio_metadata(args: argparse.Namespace) -> dict[str, str]:
    """The upload metadata a studio job reads (`closet studio`, `closet submit --studio`)."""
    return inputs_metadata(
        Inputs(
            style=args.style,
            prompt=args.prompt,
            aspects=args.aspect,
            context=args.context,
            language=args.language,
        )
    )


# -- closet studio ---------------------------------------------------------------------------


def studio(args: argparse.Namespace) -> int:
    """Studio shots in-process: SUBJECT is a photo, or an item of an earlier `closet run`
    output (`DIR/<jobId>/items/<n>-<label>.webp`)."""
    subject: Path = args.subject
    if not subject.is_file():
        raise UsageError(f"no such file: {subject}")
    out_dir: Path = args.out
    pipeline, pipelines = one_local_pipeline(out_dir)
    metadata = studio_metadata(args)
    uid = args.uid
    if (adopted := adopted_item(pipeline, subject)) is not None:
        closet, metadata["subject"] = adopted
        uid = closet.uid  # only its owner may take a closet item into the studio
    with JobsProgress(Console(stderr=True), 1) as progress:
        job, seconds = _process(
            pipelines, subject, subject.name, uid, progress, folder="studio/", metadata=metadata
        )
        progress.finish(subject.name)
    write_job(job, out_dir)
    if args.json:
        json.dump([job.to_wire()], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(summary(job, subject, out_dir, seconds), flush=True)
        caption = job.result.caption if job.result else None
        if caption is not None:
            print(f"        {caption.title}: {caption.story}")
            print(f"        {' '.join(caption.hashtags)}")
    return EXIT_OK if job.status is JobStatus.DONE else EXIT_FAILED


# -- closet submit / watch -------------------------------------------------------------------


def load_state(path: Path | None) -> None:
    """Point the client libraries at a `closet dev` stack described by its state file."""
    if path is None:
        return
    fix = f"start `closet dev --state {path}` and pass the file it writes"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"state file {path} does not exist: {fix}") from None
    except OSError as exc:
        raise UsageError(f"cannot read state file {path} ({exc.strerror}): {fix}") from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"state file {path} is not JSON ({exc.msg}, line {exc.lineno})") from None
    env = state.get("env") if isinstance(state, dict) else None
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise UsageError(f"state file {path} has no `env` of `closet dev`: {fix}")
    os.environ.update(env)


@contextmanager
def google_credentials() -> Iterator[None]:
    """Missing application default credentials is a usage error, not a traceback."""
    from google.auth.exceptions import DefaultCredentialsError

    try:
        yield
    except DefaultCredentialsError:
        raise UsageError(
            "no Google Cloud credentials: run `gcloud auth application-default login`, "
            "set GOOGLE_APPLICATION_CREDENTIALS, or pass --state FILE of `closet dev`"
        ) from None


def _watch(job_id: str, settings: Settings, args: argparse.Namespace) -> int:
    from common.submit import follow

    with JobsProgress(Console(stderr=True), 1) as progress, google_credentials():
        job = follow(job_id, settings, progress.track(job_id), args.timeout)
    if job is None:
        print(f"closet: job {job_id} did not finish within {args.timeout:.0f} s", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(job.to_wire(), indent=2))
    elif job.status is JobStatus.DONE and job.result is not None:
        labels = ", ".join(item.label for item in job.result.items)
        print(f"done    {job.id}: {len(job.result.items)} item(s): {labels}")
        for line in describe_stages(job):
            print(f"        {line}")
        for item in job.result.items:
            print(f"        {item.image.url}")
    else:
        reason = f"{job.error.code}: {job.error.message}" if job.error else job.message
        print(f"failed  {job.id}: {reason}")
    return EXIT_OK if job.status is JobStatus.DONE else EXIT_FAILED


def submit(args: argparse.Namespace) -> int:
    if not args.image.is_file():
        raise UsageError(f"no such file: {args.image}")
    load_state(args.state)
    settings = Settings.from_env()
    from common.submit import upload

    with google_credentials():
        if args.tryon:
            metadata = {"garment": args.tryon}
            if args.category:
                metadata["category"] = args.category
            job_id = upload(args.image, args.uid, settings, folder="tryon/", metadata=metadata)
        elif args.studio:
            metadata = studio_metadata(args)
            if args.studio != PHOTO:
                metadata["subject"] = args.studio
            job_id = upload(args.image, args.uid, settings, folder="studio/", metadata=metadata)
        else:
            job_id = upload(args.image, args.uid, settings)
    print(job_id, flush=True)
    return _watch(job_id, settings, args) if args.watch else EXIT_OK


def watch(args: argparse.Namespace) -> int:
    load_state(args.state)
    return _watch(args.job_id, Settings.from_env(), args)


# -- closet dev ------------------------------------------------------------------------------


def parse_ports(text: str) -> dict[str, int]:
    """`pubsub=8085,firestore=8086,ingest=8101`, or a base port `8100` that numbers them all."""
    if text.isdigit():
        return {"base": _port(text)}
    ports = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"expected NAME=PORT, got {part.strip()!r}")
        ports[name.strip()] = _port(value.strip())
    return ports


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"expected a number of workers from 1 to 64, got {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text!r}")
    return int(text)


def dev(args: argparse.Namespace) -> int:
    from common.devstack import DevStack, PortsError
    from common.emulators import EmulatorError

    if args.state is not None and not args.state.parent.is_dir():
        raise UsageError(f"--state {args.state}: folder {args.state.parent} does not exist")
    if args.logs.exists() and not args.logs.is_dir():
        raise UsageError(f"--logs {args.logs} is a file, not a folder: name a folder")
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    # Set before starting anything, so a Ctrl-C during start-up still stops what was started.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack = DevStack(
            Settings.from_env(),
            ports=args.ports or {},
            logs_dir=args.logs,
            console=sys.stdout,
            sweep_every_s=DEV_SWEEP_EVERY_S,
        )
    except PortsError as exc:
        raise UsageError(str(exc)) from None
    try:
        print("closet dev: starting the emulators and the functions...", file=sys.stderr)
        try:
            stack.start()
        except EmulatorError as exc:
            # A port in use, gcloud or Java missing: the first line says which; the log has more.
            first = str(exc).splitlines()[0]
            raise UsageError(f"{first} (every process's output is in {args.logs}/)") from None
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
        print(f"api       {state['api']} (POST /uploads, GET /jobs/JOB_ID/images)")
        auth = state["auth"]
        print(f"auth      {auth['url']} (Firebase Auth emulator, project {auth['project']})")
        print(f"logs      {args.logs}/<name>.log")
        print(f"page      {state['page'] or stack.page_missing}")
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


# -- closet config ---------------------------------------------------------------------------


def config(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    arguments = []
    if args.out is not None and settings.local_root is None:
        settings = settings.replace(local_root=args.out / ".closet")
        arguments.append("local_root")
    rows = effective(settings, arguments=arguments)
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
        return EXIT_OK
    width = max(len(row.variable) for row in rows)
    for row in rows:
        print(f"{row.variable:<{width}}  {row.value}  ({row.origin})")
    return EXIT_OK


# -- the parser ------------------------------------------------------------------------------


def _version() -> str:
    try:
        return metadata.version("closet-pipeline")
    except metadata.PackageNotFoundError:
        return "unknown"


def _command(
    commands: Any, name: str, summary: str, description: str, parents: list[Any]
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=parents,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    # `-v` is accepted before and after the subcommand: SUPPRESS keeps a subcommand's
    # absent flag from overwriting the one given before it.
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log what every stage does (-vv: debug)",
    )
    parser = argparse.ArgumentParser(
        prog="closet",
        description="Turn photos of clothing into clean, labelled garment images.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[verbosity],
    )
    parser.add_argument("--version", action="version", version=f"closet {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # What every in-process command (run, tryon, studio) takes.
    local_options = argparse.ArgumentParser(add_help=False)
    local_options.add_argument(
        "-o",
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output folder (default: ./{DEFAULT_OUT})",
    )
    local_options.add_argument(
        "--json", action="store_true", help="print the final job documents as a JSON list"
    )
    local_options.add_argument(
        "--uid", default="local", help="owner recorded on the jobs (default: local)"
    )
    run_parser = _command(
        commands,
        "run",
        "run the whole pipeline in-process on local images (no cloud needed)",
        "Run every stage in this process on each IMAGE and write, per image, a folder "
        "OUT/<stem>-<id>/ with job.json (the job document) and the output images.",
        [verbosity, local_options],
    )
    run_parser.add_argument(
        "images",
        nargs="+",
        type=Path,
        metavar="IMAGE",
        help="a photo (JPEG, PNG, WebP, GIF) or a folder of them",
    )
    run_parser.add_argument(
        "-r", "--recursive", action="store_true", help="also take images in subfolders"
    )
    run_parser.add_argument(
        "-j",
        "--workers",
        type=_workers,
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"images processed at once (default: {DEFAULT_WORKERS}, from the CPU count)",
    )
    run_parser.set_defaults(handler=run)

    tryon_parser = _command(
        commands,
        "tryon",
        "dress a person photo in a garment, in-process (no cloud needed)",
        "Run a virtual try-on in this process: GARMENT is a garment photo (a closet job runs "
        "on it first) or an item image of an earlier `closet run` output. Writes "
        "OUT/tryon/<id>/ with job.json and the image.",
        [verbosity, local_options],
    )
    tryon_parser.add_argument("person", type=Path, metavar="PERSON", help="a photo of a person")
    tryon_parser.add_argument(
        "garment",
        type=Path,
        metavar="GARMENT",
        help="a garment photo, or OUT/<jobId>/items/<n>-<label>.webp of `closet run`",
    )
    tryon_parser.add_argument(
        "--category", choices=CATEGORIES, help="how the garment is worn (default: from its label)"
    )
    tryon_parser.set_defaults(handler=tryon)

    # What a studio job is asked for (`closet studio`, `closet submit --studio`).
    studio_options = argparse.ArgumentParser(add_help=False)
    studio_options.add_argument(
        "--style", choices=STYLES, help="the backdrop (default: pastel; scene needs --prompt)"
    )
    studio_options.add_argument("--prompt", help="with --style scene: what the scene shows")
    studio_options.add_argument(
        "--aspect",
        action="extend",
        nargs="+",
        choices=tuple(ASPECTS),
        metavar="A",
        help=f"frames to make, among {', '.join(ASPECTS)} (default: all)",
    )
    studio_options.add_argument(
        "--context", metavar="TEXT", help="facts for the caption (size, material, a name...)"
    )
    studio_options.add_argument(
        "--language", metavar="L", help="the caption's language, e.g. en, fr, pt-BR (default: en)"
    )
    studio_parser = _command(
        commands,
        "studio",
        "listing-ready shots of a photo or a closet item, in-process (no cloud needed)",
        "Cut the subject out, upscale it when small, put it on a backdrop in every frame "
        "asked for (1080 px wide) and write its caption, in this process. SUBJECT is a photo "
        "or an item image of an earlier `closet run` output. Writes OUT/studio/<id>/ with "
        "job.json and the images.",
        [verbosity, local_options, studio_options],
    )
    studio_parser.add_argument(
        "subject",
        type=Path,
        metavar="PHOTO|ITEM",
        help="a photo, or OUT/<jobId>/items/<n>-<label>.webp of `closet run`",
    )
    studio_parser.set_defaults(handler=studio)

    dev_parser = _command(
        commands,
        "dev",
        "start the emulators and every function locally, wired as in the cloud",
        "Start the Pub/Sub and Firestore emulators, fake-gcs-server and one process per "
        "function, apply the topology, print the endpoints and stream every log with its "
        "name. Ctrl-C stops everything.",
        [verbosity],
    )
    dev_parser.add_argument(
        "--state", type=Path, metavar="FILE", help="write the endpoints as JSON to FILE"
    )
    dev_parser.add_argument(
        "--logs",
        type=Path,
        default=Path(".closet-dev-logs"),
        metavar="DIR",
        help="keep each process's log as DIR/<name>.log (default: ./.closet-dev-logs)",
    )
    dev_parser.add_argument(
        "--ports",
        type=parse_ports,
        metavar="SPEC",
        help="fixed ports: a base port (8100: pubsub, firestore, gcs, then the functions in "
        "topology order, then the web page) or NAME=PORT,... with pubsub, firestore, gcs, web "
        "or a function's name",
    )
    dev_parser.set_defaults(handler=dev)

    follow_options = argparse.ArgumentParser(add_help=False)
    follow_options.add_argument(
        "--state", type=Path, metavar="FILE", help="use the endpoints of `closet dev --state FILE`"
    )
    follow_options.add_argument("--json", action="store_true", help="print the final job document")
    follow_options.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="give up after this long (default: 600)",
    )
    submit_parser = _command(
        commands,
        "submit",
        "upload a photo to the uploads bucket, as a client app does",
        "Upload IMAGE to the uploads bucket under users/UID/ with a job id chosen here, "
        "print the job id and, with --watch, follow the job until it ends.",
        [verbosity, follow_options, studio_options],
    )
    submit_parser.add_argument("image", type=Path, metavar="IMAGE", help="the photo to upload")
    submit_parser.add_argument(
        "--uid", default="local", help="owner: uploads go to users/UID/ (default: local)"
    )
    submit_parser.add_argument("--watch", action="store_true", help="follow the job live")
    submit_parser.add_argument(
        "--tryon",
        metavar="ITEM",
        help="IMAGE is a person photo: try on this finished closet item (JOB_ID/items/N)",
    )
    submit_parser.add_argument(
        "--category", choices=CATEGORIES, help="with --tryon: how the garment is worn"
    )
    submit_parser.add_argument(
        "--studio",
        nargs="?",
        const=PHOTO,
        metavar="ITEM",
        help="studio shots of IMAGE, or of this finished closet item (JOB_ID/items/N) when "
        "named (then IMAGE only carries the request)",
    )
    submit_parser.set_defaults(handler=submit)

    watch_parser = _command(
        commands,
        "watch",
        "follow a job live from Firestore",
        "Follow the job document jobs/JOB_ID with a Firestore listener until it is done or failed.",
        [verbosity, follow_options],
    )
    watch_parser.add_argument("job_id", metavar="JOB_ID", help="the id `closet submit` printed")
    watch_parser.set_defaults(handler=watch)

    config_parser = _command(
        commands,
        "config",
        "print the effective settings and where each came from",
        "Print every setting with its variable, its value (secrets masked) and its origin: "
        "default, environment or argument.",
        [verbosity],
    )
    config_parser.add_argument(
        "-o", "--out", type=Path, metavar="DIR", help="as `closet run --out DIR` would use them"
    )
    config_parser.add_argument("--json", action="store_true", help="print a JSON list")
    config_parser.set_defaults(handler=config)

    models_parser = _command(
        commands,
        "models",
        "download and prepare model weights (at image build time, never while serving)",
        "Download the configured models, check their checksums and save them ready to serve "
        "(SegFormer exported to an optimised ONNX graph). The only command that downloads "
        "weights.",
        [verbosity],
    )
    add_fetch_command(models_parser, EPILOG)
    bench_parser = _command(
        commands,
        "bench",
        "measure every stage against its target (make bench)",
        "Measure every stage, the encoding, the segmentation serving path, the cold start, end "
        "to end and throughput on the emulator topology, memory, cut-out quality and cost; "
        "write a Markdown table, charts and JSON under bench/results.",
        [verbosity],
    )
    bench_parser.add_argument("--quick", action="store_true", help="a small run, under a minute")
    bench_parser.add_argument("--json", type=Path, metavar="FILE", help="also write the JSON here")
    bench_parser.add_argument("--out", type=Path, metavar="DIR", help="default: bench/results")
    bench_parser.add_argument("--cache", type=Path, metavar="DIR", help="models and photo")
    bench_parser.set_defaults(handler=_bench)
    return parser


def _log_level(verbose: int) -> int:
    return logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG


def _bench(args: argparse.Namespace) -> int:
    from common.bench.run import command  # torch and the emulators load only for the bench

    return command(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A person reads these: human lines, whatever stderr is (the functions log JSON).
    telemetry.configure(_log_level(getattr(args, "verbose", 0)), human=True)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        print(f"closet {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigurationError as exc:
        print(f"closet {args.command}: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
