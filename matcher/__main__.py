"""``python -m matcher``: the same as the ``matcher`` command."""

import sys

from .cli import main

sys.exit(main())
