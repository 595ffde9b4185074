"""The jobs: whole runs built from the parts, and what they tell the operator.

* `export` — one `run`: checks, the destination, the client, the pipeline, the report;
  `pipeline` wires its stages; `state` decides which images it takes and counts them,
  with the circuit breakers that stop a hopeless run.
* `discovery` — one `discover`: the catalog walked into a manifest.
* `dryrun` — what a run would do, and how long the portal's limit makes it take.
* `check` — whether a configuration is ready for its first run, writing nothing.
* `prune` — the images gone from the portal for long enough, removed from the backup.
* `demo` — an export against the built-in simulated portal.
* `session` — what every job sets up the same way: the HTTP session, the portal client,
  the destination.
* `report`, `metrics`, `progress` — the report file, the Prometheus textfile, the bar
  or status lines.
"""
