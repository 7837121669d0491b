"""``python -m pbrl.bench ARGS``: the same as ``pbrl bench ARGS``, with this Python."""

import sys

from pbrl.bench.cli import main

sys.exit(main())
