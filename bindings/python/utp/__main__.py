"""``python -m utp``: see :mod:`utp.cli`."""

import sys

from .cli import main

sys.exit(main())
