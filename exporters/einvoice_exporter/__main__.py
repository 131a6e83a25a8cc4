"""`python -m einvoice_exporter`, the same as the `einvoice-exporter` console script."""

import sys

from .cli import main

sys.exit(main())
