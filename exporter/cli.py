"""The command line's entry point: `main`, the options every command takes, and the `Runner`
that runs a command's async work under the signal supervisor.

The commands themselves (their parsers and handlers) are in `exporter.commands`; this
module alone imports them. An error that reaches `main` becomes the exit status its
class carries.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio

from exporter import __version__
from exporter.commands import check, demo, discover, prune, run, simulate, verify
from exporter.commands.shared import EXIT_CODES
from exporter.errors import (
    EXIT_USAGE,
    ExporterError,
    OutputError,
    UsageError,
    exit_status,
    primary_exception,
)
from exporter.jobs.progress import DiscoveryFigures, ProgressView, choose_view, discovery_reporter
from exporter.logs import Console, configure_logging

if TYPE_CHECKING:
    from exporter.jobs.export import ExportResult

log = logging.getLogger("exporter.cli")

T = TypeVar("T")

COMMANDS = (run, check, discover, verify, prune, demo, simulate)  # in the order --help lists them

# uvloop's event loop (installed with the exporter except on Windows) receives a
# download with about a tenth less CPU than asyncio's own; either runs the same code.
HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `b24-image-exporter` and `python -m exporter`."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(Console("json" if asks_for_json(arguments) else "text"))
    if not arguments:
        # Like rclone, a usage error: a cron line that lost its command must not pass for
        # a backup that ran. The help says what to type instead.
        parser.print_help()
        return EXIT_USAGE
    args = parser.parse_args(arguments)
    verbosity = -1 if args.quiet else min(args.verbose, 1)
    configure_logging(verbosity, args.log_format)
    console = Console(args.log_format)
    handler: Callable[[argparse.Namespace, Runner], int] = args.handler
    try:
        return handler(args, Runner(progress=not (args.quiet or args.no_progress), console=console))
    except (UsageError, OutputError) as exc:
        console.error(str(exc), fields={"exitCode": exit_status(exc)})
        return exit_status(exc)
    except KeyboardInterrupt as exc:
        console.say(
            "interrupted",
            topic="exporter.cli",
            level="warning",
            fields={"exitCode": exit_status(exc)},
            to_stderr=True,
        )
        return exit_status(exc)
    except Exception as exc:
        # A bug, not a situation: say so through the log, whose formatter redacts
        # the message and the traceback alike.
        log.exception("internal error (please report it)")
        return exit_status(exc)


def asks_for_json(arguments: Sequence[str]) -> bool:
    """Whether the command line asks for JSON logs: known before parsing, so that even the
    parser's own usage errors come out as JSON lines."""
    return "--log-format=json" in arguments or any(
        flag == "--log-format" and value == "json" for flag, value in itertools.pairwise(arguments)
    )


class CommandLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one JSON line (still exit 2) under `--log-format json`."""

    def __init__(self, *args: Any, console: Console | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.console = console or Console()

    def error(self, message: str) -> NoReturn:
        if not self.console.json:
            super().error(message)
        self.console.error(
            f"{self.prog}: {message}",
            fields={"usage": self.format_usage().strip(), "exitCode": EXIT_USAGE},
        )
        self.exit(EXIT_USAGE)


def build_parser(console: Console | None = None) -> CommandLineParser:
    """The top-level parser with every command's subparser."""
    parser = CommandLineParser(
        prog="b24-image-exporter",
        description="Back up Bitrix24 catalog product images: batched, rate-limited, resumable.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(defaults=True)],
        console=console,
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    common = _common_options(defaults=False)
    for command in COMMANDS:
        subparser = commands.add_parser(
            command.__name__.rpartition(".")[2],
            parents=[common],
            help=command.HELP,
            description=command.DESCRIPTION,
            epilog=command.EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            console=parser.console,
        )
        command.add_arguments(subparser)
        subparser.set_defaults(handler=command.handle)
    return parser


def _common_options(*, defaults: bool) -> CommandLineParser:
    """Options every command takes; subcommands leave unset ones to the top level."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    common = CommandLineParser(add_help=False)
    common.add_argument(
        "-V", "--version", action="version", version=f"b24-image-exporter {__version__}"
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=default(0), help="log every request"
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="only errors"
    )
    common.add_argument(
        "--no-progress",
        action="store_true",
        default=default(False),
        help="no progress bar or status lines",
    )
    common.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=default("text"),
        help="log as text or JSON lines (default: text)",
    )
    return common


class Runner:
    """How a command runs its work: on a fresh event loop, under the signal supervisor."""

    def __init__(self, *, progress: bool, console: Console | None = None) -> None:
        self.progress = progress  # whether to show progress at all
        self.console = console or Console()  # where the command's answers and errors go

    def progress_view(self) -> ProgressView | None:
        """A bar on a terminal, status lines in the log otherwise (always with JSON logs);
        none with -q/--no-progress."""
        return choose_view(enabled=self.progress, bar=not self.console.json)

    def discovery_reporter(self) -> Callable[[DiscoveryFigures], None] | None:
        """What a discovery shows as it goes, chosen like `progress_view`."""
        return discovery_reporter(self.progress, bar=not self.console.json)

    def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run async work on a fresh event loop; a task group's error comes out unwrapped."""
        try:
            return anyio.run(work, backend_options={"use_uvloop": HAVE_UVLOOP})
        except BaseExceptionGroup as group:
            raise primary_exception(group) from None

    def run_job(
        self,
        start: Callable[[], Awaitable[ExportResult]],
        result_of: Callable[[], ExportResult | None],
        on_signal: Callable[[int], None],
    ) -> ExportResult:
        """Run a job; SIGINT/SIGTERM cancel it (told first to `on_signal`, so its exit
        status can say which), and its report still lands."""

        async def supervise() -> ExportResult | None:
            async with anyio.create_task_group() as tg:

                async def watch_signals() -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for received in signals:
                            log.warning("%s received: stopping", signal.Signals(received).name)
                            on_signal(received)
                            tg.cancel_scope.cancel()
                            return

                tg.start_soon(watch_signals)
                outcome = await start()
                tg.cancel_scope.cancel()
                return outcome
            return result_of()

        result = self.run(supervise)
        if result is None:
            raise ExporterError("the run stopped before it could write its report")
        return result
