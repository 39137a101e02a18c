"""``python -m stream.cli``: the ``seqstream`` command."""

import sys

from . import main

sys.exit(main())
