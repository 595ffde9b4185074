"""What the commands share: argument types, the exit-code table, and how an outcome is said."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.config import is_store_url, load_config
from exporter.errors import EXIT_FAILURES, EXIT_OK, UsageError
from exporter.jobs.session import store_export_at

if TYPE_CHECKING:
    from exporter.destination.store import StoreDestination
    from exporter.jobs.export import ExportResult
    from exporter.logs import Console

DEFAULT_CONFIG = Path("config.yaml")  # in the working folder, taken when it exists

EXIT_CODES = """\
exit codes:
  0    every image is exported or was already done (verify: all files match)
  1    the run finished, but some images failed; the report names them
  2    usage, configuration or manifest error, or another run holds the lock:
       nothing was requested
  3    the portal refused the job as a whole (credentials, scope, plan, block)
  4    the backup did not complete: the output cannot be written (disk full,
       read-only, not a folder) or the portal stopped answering
  130  interrupted by SIGINT (143: SIGTERM); the report is still written
"""


def positive(text: str) -> int:
    """An argument that must be a whole number of at least 1."""
    return _whole_number(text, 1)


def port_number(text: str) -> int:
    """A TCP port: 0 (any free one) to 65535."""
    return _whole_number(text, 0, 65535)


def _whole_number(text: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise argparse.ArgumentTypeError(f"must be {bound}")
    return value


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """`-c/--config FILE`, which every command that talks to a portal needs."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        help=f"YAML configuration file (default: ./{DEFAULT_CONFIG} if it exists)",
    )


def add_rate_options(parser: argparse.ArgumentParser) -> None:
    """`--rate R` and `--burst B`, which override the config's `rate_limit`."""
    parser.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help="requests per second; overrides rate_limit.requests_per_second",
    )
    parser.add_argument(
        "--burst", type=int, metavar="B", help="requests at once; overrides rate_limit.burst"
    )


def config_file(args: argparse.Namespace) -> Path:
    """The configuration to load: --config, else ./config.yaml when it exists."""
    if args.config is not None:
        return Path(args.config)
    if DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    raise UsageError(
        f"no configuration: give -c/--config FILE, or put a {DEFAULT_CONFIG} in the current folder"
    )


def add_folder_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """The export folder a command works on: DIR, -o DIR, or output.dir of -c FILE."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("dir", nargs="?", metavar="DIR", help=f"the export folder to {what}")
    where.add_argument("-o", "--output", metavar="DIR", help="the export folder (instead of DIR)")
    where.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        help=f"{what} output.dir of this config (default: ./{DEFAULT_CONFIG} if it exists)",
    )


def export_folder(args: argparse.Namespace, command: str) -> Path:
    """The folder `add_folder_arguments` named: DIR, --output, or output.dir of the config."""
    named: str | None = args.dir or args.output
    if named is not None:
        return Path(named)
    if args.config is None and not DEFAULT_CONFIG.is_file():
        raise UsageError(
            f"{command} needs the export folder: give DIR, --output DIR or --config FILE "
            f"(there is no ./{DEFAULT_CONFIG} to take it from)"
        )
    return load_config(config_file(args)).output.dir


def level_of(exit_code: int) -> str:
    """The log level an outcome is said at: info when all is well, warning when something
    failed, error when the job did not happen."""
    return {EXIT_OK: "info", EXIT_FAILURES: "warning"}.get(exit_code, "error")


def say_summary(console: Console, result: ExportResult) -> None:
    """The end of a run: the summary's lines, or one JSON line with the report's figures."""
    console.say(
        result.summary(),
        topic="exporter.summary",
        level=level_of(result.exit_code),
        fields=result.summary_fields(),
    )


def store_export_named(args: argparse.Namespace, named: str | None) -> StoreDestination | None:
    """The object-store export a command is asked about: an s3:// DIR (reached as
    ./config.yaml's output.s3 says, when there is one), or the config's s3:// output.dir;
    None for a folder."""
    if named is not None:
        if not is_store_url(named):
            return None
        near = load_config(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else None
        return store_export_at(named, near)
    if args.config is None and not DEFAULT_CONFIG.is_file():
        return None
    config = load_config(config_file(args))
    if config.output.store is None:
        return None
    from exporter.destination.store import StoreDestination

    return StoreDestination(config.output, "", retries=config.retries)
