"""`python -m compare`: the command-line entry point (logic lives in compare.cli).

Stage: the entry point.
"""

import sys

from compare import quiet

# Before anything imports TensorFlow (a user's pair module may).
quiet.install()

from compare.cli import main  # noqa: E402

sys.exit(main())
