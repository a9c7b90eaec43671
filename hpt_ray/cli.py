"""The ``hpt-ray`` command: run an experiment file, show results, list searchers."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpt_ray import __version__
from searchers.validation import InvalidParameterError

# The experiment file as run (with the command line's overrides), kept in the experiment's
# directory or URI location: `hpt-ray resume` rebuilds the experiment from it.
EXPERIMENT_FILE = "experiment.yaml"
EPILOG = "Docs and examples: README.md; experiment file format: hpt_ray/experiment.py"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except _user_errors() as exc:
        # User errors get one line; anything else is a bug and keeps its traceback.
        print(f"hpt-ray: error: {exc}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """What the CLI prints as one line: a user's mistake (a bad option, space or file, a run
    directory that is taken or missing, a metric the trials never report, resources no node
    can hold). Each is an `InvalidParameterError`; `ExperimentError` (a bad experiment file)
    is one too. Anything else is a bug and keeps its traceback.
    """
    return (InvalidParameterError,)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpt-ray", description="Hyperparameter tuning on Ray Tune.", epilog=EPILOG
    )
    parser.add_argument("--version", action="version", version=f"hpt-ray {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run an experiment file on a local Ray (or RAY_ADDRESS)",
        description="Run the experiment described by a YAML file and print a leaderboard.",
    )
    run.add_argument("experiment", help="path to an experiment YAML file")
    run.add_argument("--storage-path", help="override the file's storage_path")
    run.add_argument("--name", help="override the file's experiment name")
    run.add_argument("--num-samples", type=int, help="override the file's num_samples")
    _set_argument(run)
    run.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.set_defaults(handler=_run)

    resume = sub.add_parser(
        "resume",
        help="continue an interrupted experiment",
        description="Continue the experiment in DIR (written by `hpt-ray run`): completed trials "
        "are kept, unfinished ones resume from their last checkpoint, the searcher and scheduler "
        "continue where they were.",
    )
    resume.add_argument(
        "directory",
        help="the experiment directory (holds experiment.yaml): a local path or a storage URI "
        "such as s3://bucket/hpt/digits-mlp",
    )
    resume.add_argument(
        "--retry-errored", action="store_true", help="run errored trials again (default: keep)"
    )
    resume.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    resume.add_argument("--quiet", action="store_true", help="no progress line")
    resume.set_defaults(handler=_resume)

    show = sub.add_parser(
        "show",
        help="leaderboard of a finished or running experiment",
        description="Print the leaderboard of an experiment directory.",
    )
    show.add_argument(
        "directory",
        help="experiment directory (holds results.parquet): a local path or a storage URI "
        "such as s3://bucket/hpt/digits-mlp",
    )
    show.add_argument("--top", type=int, default=10, help="rows to show (default 10)")
    show.set_defaults(handler=_show)

    report = sub.add_parser(
        "report",
        help="one-file HTML report of one or several experiments",
        description="Write a self-contained HTML report (history, learning curves, importance, "
        "slices, parallel coordinates, timeline, all trials) of experiment directories; "
        "several directories are compared in one report.",
    )
    report.add_argument("directories", nargs="+", metavar="DIR", help="experiment directory")
    report.add_argument(
        "-o", "--output", help="the HTML file (default: report.html in the first DIR)"
    )
    report.add_argument("--png", metavar="OUTDIR", help="also write the figures as PNG files")
    report.set_defaults(handler=_report)

    submit = sub.add_parser(
        "submit",
        help="run an experiment file on a Ray cluster as a job",
        description="Submit `hpt-ray run FILE --address auto` to a Ray cluster through the Jobs "
        "API, with this project as the job's working_dir; stream its logs and exit with its "
        "status (0 when it SUCCEEDED).",
    )
    submit.add_argument("experiment", help="experiment YAML file inside the working directory")
    _address_argument(submit)
    submit.add_argument("--storage-path", help="override the file's storage_path (use s3://...)")
    submit.add_argument("--name", help="override the file's experiment name")
    submit.add_argument("--num-samples", type=int, help="override the file's num_samples")
    _set_argument(submit)
    submit.add_argument(
        "--working-dir", default=".", help="project directory to upload (default: current)"
    )
    submit.add_argument(
        "--python", default="python", help="python on the cluster nodes (default: python)"
    )
    submit.add_argument("--job-id", help="submission id (default: Ray picks one)")
    submit.add_argument(
        "--no-wait", action="store_true", help="print the job id and return at once"
    )
    submit.set_defaults(handler=_submit)

    job_status = sub.add_parser(
        "status", help="status of a submitted job", description="Print a job's status."
    )
    job_status.add_argument("job_id")
    _address_argument(job_status)
    job_status.set_defaults(handler=_status)

    logs = sub.add_parser("logs", help="logs of a submitted job", description="Print job logs.")
    logs.add_argument("job_id")
    _address_argument(logs)
    logs.add_argument("--follow", action="store_true", help="stream until the job ends")
    logs.set_defaults(handler=_logs)

    lister = sub.add_parser(
        "searchers",
        help="list the available searchers",
        description="List the searcher names make_searcher accepts.",
    )
    lister.set_defaults(handler=_searchers)
    return parser


def _set_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of the file, the value read as YAML; a dotted key reaches into "
        "mappings; repeatable: --set searcher=pso --set epochs=3 "
        "--set space.lr.loguniform=[1e-4,1e-2] --set scheduler_options.grace_period=2",
    )


def _run(args: argparse.Namespace) -> int:
    from hpt_ray.experiment import load_experiment
    from hpt_ray.storage import (
        DEFAULT_STORAGE,
        claim_directory,
        claim_location,
        holds_run,
        is_uri,
    )

    flags = [
        (key, getattr(args, key))
        for key in ("storage_path", "name", "num_samples")
        if getattr(args, key) is not None
    ]
    # --set first, then the named flags: the document is checked as a whole, with both.
    experiment = load_experiment(args.experiment, overrides=[*args.set, *flags])
    kwargs = dict(experiment.kwargs)
    if args.address:
        kwargs["ray_address"] = args.address
    if args.quiet:
        kwargs["verbose"] = 0
    storage = str(kwargs.get("storage_path") or DEFAULT_STORAGE)
    # Claim the run's directory (or URI location) first: a new one, or an error if the named
    # one holds a run. Then keep the file there, so that `hpt-ray resume DIR` rebuilds the
    # experiment (on any machine, for a URI).
    prefix = Path(args.experiment).stem
    target: str | Path
    created = False
    if is_uri(storage):
        name, target = claim_location(storage, kwargs.get("name"), prefix=prefix)
    else:
        root = Path(storage).expanduser().resolve()
        existed = kwargs.get("name") is not None and (root / str(kwargs["name"])).exists()
        name, target = claim_directory(root, kwargs.get("name"), prefix=prefix)
        created = not existed
    kwargs["name"] = name
    _keep_experiment_file(experiment, name, target)
    try:
        return _tune_and_report(experiment, kwargs)
    except InvalidParameterError:
        # Refused before any trial ran (a bad option, space or data): leave no empty run
        # directory behind, only one this command made and that holds no run.
        if created and not holds_run(target):
            shutil.rmtree(target, ignore_errors=True)
        raise


def _keep_experiment_file(experiment: Any, name: str, target: str | Path) -> None:
    """Write the document as run (the file with every override) into the experiment directory.

    ``base_dir`` is written as an absolute path: the copy lives elsewhere, and its relative data
    paths and modules next to the original file must still be found on resume.
    """
    import yaml

    from hpt_ray.storage import is_uri, write_remote_file

    document = {**experiment.document, "name": name}
    if experiment.base_dir is not None:
        document["base_dir"] = str(experiment.base_dir)
    text = yaml.safe_dump(document, sort_keys=False)
    if is_uri(target):
        write_remote_file(str(target), EXPERIMENT_FILE, text.encode())
    else:
        (Path(target) / EXPERIMENT_FILE).write_text(text)


def _resume(args: argparse.Namespace) -> int:
    from hpt_ray.experiment import load_experiment, parse_experiment, read_yaml
    from hpt_ray.storage import RunNotFoundError, is_uri, read_remote_file

    missing = (
        "resume needs a directory written by `hpt-ray run` (from Python, call "
        "tune_model(..., name=..., storage_path=..., resume=True))"
    )
    if is_uri(args.directory):
        location = str(args.directory).rstrip("/")
        data = read_remote_file(location, EXPERIMENT_FILE)
        if data is None:
            raise RunNotFoundError(f"{location}/{EXPERIMENT_FILE} not found: {missing}")
        source = f"{location}/{EXPERIMENT_FILE}"
        experiment = parse_experiment(read_yaml(data.decode()), source=source)
        storage, _, name = location.rpartition("/")
    else:
        directory = Path(args.directory).expanduser().resolve()
        if not (directory / EXPERIMENT_FILE).exists():
            raise RunNotFoundError(f"{directory / EXPERIMENT_FILE} not found: {missing}")
        experiment = load_experiment(directory / EXPERIMENT_FILE)
        storage, name = str(directory.parent), directory.name
    kwargs = {
        **experiment.kwargs,
        "storage_path": storage,
        "name": name,
        "resume": True,
        "retry_errored": args.retry_errored,
    }
    if args.address:
        kwargs["ray_address"] = args.address
    if args.quiet:
        kwargs["verbose"] = 0
    return _tune_and_report(experiment, kwargs)


def _tune_and_report(experiment: Any, kwargs: dict) -> int:
    from hpt_ray.table import leaderboard
    from hpt_ray.tuning import ExperimentInterrupted, TrialFailuresWarning, tune_model

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TrialFailuresWarning)
            result = tune_model(experiment.model, experiment.space, **kwargs)
    except ExperimentInterrupted as interrupt:
        print(f"\nhpt-ray: {interrupt}", file=sys.stderr)
        print(f"hpt-ray resume {interrupt.path}")
        return 130
    finally:
        for warning in caught:
            if issubclass(warning.category, TrialFailuresWarning):
                print(f"hpt-ray: warning: {warning.message}", file=sys.stderr)
            else:
                warnings.showwarning(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
    print()
    print(leaderboard(result.trials, metric=result.metric, mode=result.mode))
    print()
    print(f"best {result.metric}: {result.best_score}")
    print(f"best config: {json.dumps(result.best_config, default=repr)}")
    if result.best_checkpoint is not None:
        print(f"best checkpoint: {result.best_checkpoint.path}")
    # A URI (s3://...) is not a Path: join with "/" so the scheme's "//" survives.
    print(f"results: {result.path.rstrip('/')}/results.parquet")
    return 0 if result.best_score is not None else 1


def _show(args: argparse.Namespace) -> int:
    from hpt_ray.table import best_row, leaderboard, read_metadata, read_results

    frame = read_results(args.directory)
    meta = read_metadata(args.directory)
    metric, mode = meta.get("metric", "metric"), meta.get("mode", "max")
    print(leaderboard(frame, metric=metric, mode=mode, top=args.top))
    best = best_row(frame, mode)
    if best is not None:
        print(f"best config: {best['config_json']}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from hpt_ray.html_report import report_html, report_png

    path = report_html(args.directories, args.output)
    print(f"report: {path}")
    if args.png:
        for image in report_png(args.directories, args.png):
            print(f"figure: {image}")
    return 0


def _address_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=os.environ.get("RAY_JOBS_ADDRESS") or os.environ.get("RAY_API_SERVER_ADDRESS"),
        help="the head's dashboard URL, e.g. http://HEAD:8265 (env RAY_API_SERVER_ADDRESS)",
    )


def _need_address(args: argparse.Namespace) -> str:
    if not args.address:
        raise InvalidParameterError(
            "--address: give the head's dashboard URL, e.g. --address http://HEAD:8265 "
            "(`ray up cluster.yaml` prints it; `ray dashboard cluster.yaml` forwards it)"
        )
    return str(args.address)


def _submit(args: argparse.Namespace) -> int:
    from hpt_ray.cluster import (
        JOB_EXIT_CODES,
        follow_logs,
        job_client,
        results_location,
        submit_experiment,
    )
    from hpt_ray.experiment import load_experiment

    address = _need_address(args)
    # Check the file here: a typo should not cost an upload and a failed job. Its data is read
    # where it runs.
    flags = [
        (key, getattr(args, key))
        for key in ("storage_path", "name", "num_samples")
        if getattr(args, key) is not None
    ]
    experiment = load_experiment(args.experiment, overrides=[*args.set, *flags], load_data=False)
    storage = args.storage_path or experiment.kwargs.get("storage_path")
    client = job_client(address)
    submission = submit_experiment(
        args.experiment,
        address=address,
        working_dir=args.working_dir,
        overrides={
            "num_samples": args.num_samples,
            "storage_path": args.storage_path,
            "name": args.name,
        },
        sets=args.set,
        python=args.python,
        job_id=args.job_id,
        client=client,
    )
    print(f"submitted job {submission.job_id} to {address}: {submission.entrypoint}", flush=True)
    if storage is None or not (str(storage).startswith("/") or "://" in str(storage)):
        print(
            "note: storage_path is relative, so results stay in the job's working directory on "
            "the head node; pass --storage-path s3://BUCKET/PREFIX (or a shared absolute path)",
            file=sys.stderr,
        )
    if args.no_wait:
        print(f"follow it: hpt-ray logs {submission.job_id} --address {address} --follow")
        return 0
    status = follow_logs(
        submission.job_id, client=client, write=lambda text: print(text, end="", flush=True)
    )
    where = results_location(client.get_job_logs(submission.job_id))
    print(f"\njob {submission.job_id} {status}")
    if where:
        print(f"results: {where}")
        directory = where.removesuffix("/results.parquet")
        print(f"show them: hpt-ray show {directory}")
    return JOB_EXIT_CODES.get(status, 1)


def _status(args: argparse.Namespace) -> int:
    from hpt_ray.cluster import job_client

    client = job_client(_need_address(args))
    info = client.get_job_info(args.job_id)
    status = str(info.status).rsplit(".", 1)[-1]
    print(f"{args.job_id}: {status}")
    if info.message:
        print(info.message)
    return 0


def _logs(args: argparse.Namespace) -> int:
    from hpt_ray.cluster import JOB_EXIT_CODES, follow_logs, job_client

    client = job_client(_need_address(args))
    if args.follow:
        status = follow_logs(
            args.job_id, client=client, write=lambda text: print(text, end="", flush=True)
        )
        return JOB_EXIT_CODES.get(status, 1)
    print(client.get_job_logs(args.job_id), end="")
    return 0


def _searchers(args: argparse.Namespace) -> int:
    import searchers

    for name in searchers.available():
        grid = " (grids)" if searchers.supports_grid(name) else ""
        print(f"{name}{grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
