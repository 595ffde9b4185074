"""What the commands' parsers share: argument types and the exit-code table."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`, which every command that talks to a portal needs."""
    parser.add_argument(
        "--config", type=Path, required=True, metavar="FILE", help="YAML configuration file"
    )
