"""Where the appliance keeps things: each path once.

The systemd units and the maintainer scripts in ``debian/`` name the same
paths (they cannot import this); each says in a comment that this module
holds them, and ``tests/unit/test_paths.py`` checks that they agree.
Every path but the share folder can be moved by its environment variable
(tests and unusual layouts).
"""

from __future__ import annotations

import os
from pathlib import Path

# The configuration's folder (daebus.ops.config reads daebus.toml and conf.d/ there).
CONFIG_DIR = "/etc/daebus"
# Worker files: daebus-worker@NAME.service runs WORKERS_DIR/NAME.toml.
WORKERS_DIR = f"{CONFIG_DIR}/workers"
WORKERS_DIR_ENV = "DAEBUS_WORKERS_DIR"
# The bus users' secrets (root only; each unit gets its own as a credential).
SECRETS_DIR = f"{CONFIG_DIR}/secrets"
SECRETS_DIR_ENV = "DAEBUS_SECRETS_DIR"
# The bus's ACL file, rendered from the worker files (read by daebus-redis.service).
ACL_FILE = "/etc/redis/redis-daebus.acl"
ACL_FILE_ENV = "DAEBUS_ACL_FILE"
# The bus's own Redis configuration (the package installs it; daebus-redis.service reads it).
BUS_CONFIG = "/etc/redis/redis-daebus.conf"
# The bus's runtime folder, and its socket there (the appliance's Redis listens nowhere else).
BUS_RUNTIME_DIR = "/run/redis-daebus"
BUS_SOCKET = f"{BUS_RUNTIME_DIR}/redis-server.sock"
BUS_URL = f"unix://{BUS_SOCKET}"
# Where the appliance package installs its parts (the gateway, the kiosk, the demo).
SHARE_DIR = "/usr/share/daebus"


def workers_dir() -> Path:
    return Path(os.environ.get(WORKERS_DIR_ENV) or WORKERS_DIR)


def secrets_dir() -> Path:
    return Path(os.environ.get(SECRETS_DIR_ENV) or SECRETS_DIR)


def acl_file() -> Path:
    return Path(os.environ.get(ACL_FILE_ENV) or ACL_FILE)
