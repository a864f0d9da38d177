"""`python -m solver.cli` runs the `llbook` command line."""

import sys

from solver.cli.main import main

sys.exit(main())
