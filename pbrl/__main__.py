"""``python -m pbrl``: the ``pbrl`` command, for when the venv's bin folder is not on PATH."""

import sys

from pbrl.cli import main

sys.exit(main())
