"""The commands: one module each (run, check, discover, verify, prune, restore, demo,
simulate), with its parser and its handler; `shared` holds what several of them take or
say alike.

Each module (named as its command) has its `HELP`, `DESCRIPTION` and `EPILOG`, an
`add_arguments(parser)` for its options, and a `handle(args, runner)` that turns parsed
arguments into a job and the job's end into an exit status. A job that not every run
needs (a restore, a check, a dry run, a store) is imported in the handler that runs
it, so that an export into a folder loads only what it runs (tests/test_startup.py).
The entry point (`exporter.cli`) alone imports them; it owns `main`, the options every
command takes and the `Runner` that runs a job under the signal supervisor.
"""
