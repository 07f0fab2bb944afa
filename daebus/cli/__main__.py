"""``python -m daebus.cli`` is the ``daebus`` command."""

import sys

from . import main

sys.exit(main())
