"""``python -m cronflow_actors``: the same command line as ``cronflow-actors``."""

import sys

from cronflow_actors.cli import main

sys.exit(main())
