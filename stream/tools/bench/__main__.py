"""``python -m stream.tools.bench``: the same as ``seqstream bench``."""

import sys

from . import main

sys.exit(main())
