"""`python -m compare`: the command-line entry point (logic lives in compare.cli).

Stage: the entry point.
"""

import sys

from compare.cli import main

sys.exit(main())
