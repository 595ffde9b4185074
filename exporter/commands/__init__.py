"""The commands: one module each (run, check, discover, verify, prune, demo, simulate), with
its parser and its handler; `shared` holds what several of them take or say alike.

Each module (named as its command) has its `HELP`, `DESCRIPTION` and `EPILOG`, an
`add_arguments(parser)` for its options, and a `handle(args, runner)` that turns parsed
arguments into a job and the job's end into an exit status.
The entry point (`exporter.cli`) alone imports them; it owns `main`, the options every
command takes and the `Runner` that runs a job under the signal supervisor.
"""
