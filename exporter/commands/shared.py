"""What the commands' parsers share: argument types and the exit-code table."""

from __future__ import annotations

import argparse
from pathlib import Path

EXIT_CODES = """\
exit codes:
  0    every image is exported or was already done (verify: all files match)
  1    some images failed, or the run stopped early (full disk, portal
       unreachable); the report says which
  2    usage, configuration or manifest error: nothing was requested
  3    the portal refused the job as a whole (credentials, scope, plan, block)
  130  interrupted (SIGINT/SIGTERM); the report is still written
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
