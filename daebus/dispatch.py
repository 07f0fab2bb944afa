"""Running one action or listener call: context, reply rules, errors.

Shared by the runtime and :mod:`daebus.testing`, so a handler behaves the
same under test as in production.
"""

from __future__ import annotations

import logging

from . import protocol
from .context import app_context, handler_context
from .errors import BadRequest, DaebusError
from .pubsub import Publish, PubSubRequest, PubSubResponse
from .schemas import DropLog, describe

log = logging.getLogger("daebus.runtime")
_drops = DropLog(log)


def run_action(app, message: protocol.Request, publish: Publish) -> None:
    """Call the action's handler and make sure the request gets a final reply.

    A returned value without a reply is sent as success (None as null); an
    exception becomes an error reply (the traceback goes to the log only).
    """
    req = PubSubRequest(message)
    resp = PubSubResponse(req, publish, app.logger)
    handler = app.actions.get(message.action)
    if handler is None:
        log.warning("no handler for action %r", message.action)
        resp.error(f"service {app.service!r} has no action {message.action!r}", protocol.ACTION_NOT_FOUND)
        return
    contract = app.contracts.get(message.action)
    if contract is not None:
        problems = contract.problems(req.payload)
        if problems:
            log.debug("action %r refused an invalid payload: %s", message.action, describe(problems))
            resp.error(BadRequest(f"invalid payload for {message.action!r}: {describe(problems)}",
                                  details=problems))
            return
    with handler_context(app, req, resp):
        try:
            result = handler()
        except DaebusError as exc:
            log.info("action %r answered %s: %s", message.action, exc.code, exc)
            if not resp.finished:
                resp.error(exc)
        except Exception as exc:  # noqa: BLE001 - every request must end with a reply
            log.exception("action %r failed", message.action)
            if not resp.finished:
                resp.error(exc, protocol.HANDLER_ERROR)
        else:
            if not resp.finished:
                resp.success(result)


def run_listener(app, handler, channel: str, payload: dict) -> None:
    contract = app.listen_contracts.get((channel, handler))
    if contract is not None:
        problems = contract.problems(payload)
        if problems:
            _drops.dropped(channel, getattr(handler, "__qualname__", repr(handler)), problems)
            return
    with app_context(app):
        try:
            handler(payload)
        except Exception:  # noqa: BLE001 - a listener bug must not stop the others
            log.exception("listener %s for %r failed", getattr(handler, "__qualname__", handler), channel)
