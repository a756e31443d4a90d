"""`python -m tests.lab` (from the repository root): the lab's command line."""

import sys

from .cli import main

sys.exit(main())
