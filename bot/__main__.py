"""``python -m bot`` is the same as the ``nst-bot`` command."""

import sys

from .cli import main

sys.exit(main())
