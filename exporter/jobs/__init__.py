"""The jobs: an export run, a discovery, a dry run, the demo, and what they report."""
