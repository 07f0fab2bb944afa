"""``python -m kiosk_demo``: Redis, the gateway and the demo workers, until Ctrl-C."""

import sys

from kiosk_demo.launch import main

sys.exit(main())
