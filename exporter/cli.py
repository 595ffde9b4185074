"""The command line's entry point: `main`, the options every command takes, and the `Runner`
that runs a command's async work under the signal supervisor.

The commands themselves (their parsers and handlers) are in `exporter.commands`; this
module alone imports them. An error that reaches `main` becomes the exit status its
class carries.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import itertools
import logging
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio

from exporter import __version__
from exporter.commands import check, demo, discover, prune, restore, run, simulate, verify
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

COMMANDS = (
    run,
    check,
    discover,
    verify,
    prune,
    restore,
    demo,
    simulate,
)  # in the order --help lists them

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
    """argparse with the manners of rclone and restic: options are spelled out (a prefix is
    no abbreviation), a mistyped option is named as unknown before anything it left
    missing, and usage errors are one JSON line (still exit 2) under `--log-format json`."""

    def __init__(self, *args: Any, console: Console | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.console = console or Console()
        self._arguments: list[str] = []  # what the last parse was given

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse this parser's share of the command line; anything left over is an error
        here, where the usage shown is this command's."""
        self._arguments = list(sys.argv[1:] if args is None else args)
        parsed, extras = super().parse_known_args(self._arguments, namespace)
        if extras:
            self.error(self._unrecognized(extras))
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        unknown = self._unknown_options()
        if unknown and not message.startswith(UNRECOGNIZED):
            message = self._unrecognized(unknown)
        if not self.console.json:
            super().error(message)
        self.console.error(
            f"{self.prog}: {message}",
            fields={"usage": self.format_usage().strip(), "exitCode": EXIT_USAGE},
        )
        self.exit(EXIT_USAGE)

    def _unknown_options(self) -> list[str]:
        """The options of the last parse this parser does not know (up to the command, for
        the parser that has commands: what follows is the command's)."""
        unknown: list[str] = []
        words = iter(self._arguments)
        for word in words:
            if word == "--":
                break
            if not word.startswith("-") or word == "-" or _NUMBER.match(word):
                if self._subparsers is not None:
                    break
                continue
            long = word.startswith("--")
            name, inline, _ = word.partition("=") if long else (word[:2], word[2:], "")
            action = self._option_string_actions.get(name)
            if action is None:
                unknown.append(name)
            elif action.nargs is None and not inline:
                next(words, None)  # its value, which may look like anything
        return unknown

    def _unrecognized(self, extras: list[str]) -> str:
        """The message for words this parser does not take, suggesting a near option."""
        unknown = [word for word in extras if word.startswith("-")] or extras
        options = [option[2:] for option in self._option_string_actions if option.startswith("--")]
        named = []
        for word in unknown:
            close = difflib.get_close_matches(word.partition("=")[0].lstrip("-"), options, n=1)
            named.append(f"{word} (did you mean --{close[0]}?)" if close else word)
        return f"{UNRECOGNIZED} {' '.join(named)}"


UNRECOGNIZED = "unrecognized arguments:"  # argparse's own words for them
_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")  # a negative number is a value, not an option


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
