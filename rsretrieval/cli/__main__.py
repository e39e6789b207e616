"""``python -m rsretrieval.cli <command>``: the same as the ``rsretrieval`` console script."""

import sys

from rsretrieval.cli import console

sys.exit(console())
