"""`python -m dropbox_importer` runs the command line."""

import sys

from dropbox_importer.cli import main

sys.exit(main())
