"""``python -m daebus.cli`` is the ``daebus`` command."""

import sys

from daebus.cli import main

sys.exit(main())
