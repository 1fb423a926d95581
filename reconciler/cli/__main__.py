"""`python -m reconciler.cli ...`: the same as the `gitship` console script."""

import sys

from reconciler.cli import main

sys.exit(main())
