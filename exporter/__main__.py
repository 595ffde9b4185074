"""`python -m exporter` runs the same CLI as the `b24-image-exporter` script."""

import sys

from exporter.cli import main

sys.exit(main())
