"""The AsyncAPI 3.0 document of the bus as far as the gateway exposes it:
the exposed actions of live services, with their requests and replies, and
the exposed channels they listen to (``GET /api/asyncapi.json``, beside the
OpenAPI document of the same actions' HTTP calls).

The document itself is daebus's (:mod:`daebus.app.asyncapi`); the gateway
only chooses the names and says, once in a while, what the registry held
that the document had to leave out::

    doc = exposed(gateway.services(), gateway.exposure)
"""

from __future__ import annotations

import logging

from daebus.app.asyncapi import document, problems
from daebus.ops.ratelog import RateLimitedLog

from .expose import Exposure

# A page may fetch the document every few seconds: one line per problem a minute.
_complaints = RateLimitedLog(logging.getLogger("gateway"), interval=60.0)

DESCRIPTION = ("The messages on the bus behind this gateway, for the actions and channels it exposes: "
               "browsers reach them through POST /api/services/<service>/<action> (see "
               "/api/openapi.json) and GET /api/events.")


def exposed(services: list[dict], exposure: Exposure) -> dict:
    """The document of ``services`` limited to what ``exposure`` lets through;
    no server is named (the bus is not for browsers to reach)."""
    doc = document(services, action_allowed=exposure.action_allowed, channel_allowed=exposure.channel_allowed,
                   title="Daebus gateway: the bus", description=DESCRIPTION)
    for problem in problems(doc):
        _complaints.warning(problem, "asyncapi document: %s", problem)
    return doc
