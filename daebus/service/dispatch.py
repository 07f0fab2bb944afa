"""Running one action or listener call: context, reply rules, errors.

Shared by the runtime and :mod:`daebus.testing`, so a handler behaves the
same under test as in production; :mod:`daebus.service.aio` has the versions for
``async def`` handlers.
"""

from __future__ import annotations

import logging

from daebus.bus import protocol
from daebus.app.context import app_context, handler_context
from daebus.app.retry import Retry, wanted
from daebus.errors import BadRequest, DaebusError, RetryExhausted
from daebus.app.pubsub import Publish, PubSubRequest, PubSubResponse
from daebus.ops.ratelog import RateLimitedLog
from daebus.app.schemas import DropLog, describe

log = logging.getLogger("daebus.runtime")
_drops = DropLog(log)
# A caller looping over a misspelt action must not fill the journal.
_unknown = RateLimitedLog(log)


def run_action(app, message: protocol.Request, publish: Publish, cancelled=None) -> str | None:
    """Call the action's handler and make sure the request gets a final reply.

    A returned value without a reply is sent as success (None as null); an
    exception becomes an error reply (the traceback goes to the log only),
    unless it asks for a retry: then :class:`~daebus.Retry` is raised, the
    request unanswered (see :func:`answer_failure`). Returns the code of the
    error reply, None after a success. ``cancelled`` is the request's
    :class:`~daebus.app.cancellation.Cancellation` (a handler's replies after
    it is set are dropped).
    """
    handler, req, resp = begin_action(app, message, publish, cancelled)
    if handler is None:
        return resp.error_code  # refused before the handler: counted as an error
    with handler_context(app, req, resp):
        try:
            result = handler()
        except Exception as exc:  # noqa: BLE001 - every request must end with a reply
            fail_action(resp, message.action, exc, app.retries.get(message.action))
        else:
            finish_action(resp, result)
    return resp.error_code


# The pieces below are shared with the async versions in daebus.service.aio.
def begin_action(app, message: protocol.Request, publish: Publish, cancelled=None):
    """The handler, request and response of one call; the handler is None
    when the request was answered already (no such action, invalid payload)."""
    req = PubSubRequest(message, cancelled)
    resp = PubSubResponse(req, publish, app.logger)
    handler = app.actions.get(message.action)
    if handler is None:
        _unknown.warning(("action", message.action), "no handler for action %r", message.action)
        resp.error(f"service {app.service!r} has no action {message.action!r}", protocol.ACTION_NOT_FOUND)
        return None, req, resp
    contract = app.contracts.get(message.action)
    if contract is not None:
        problems = contract.problems(req.payload)
        if problems:
            log.debug("action %r refused an invalid payload: %s", message.action, describe(problems))
            resp.error(BadRequest(f"invalid payload for {message.action!r}: {describe(problems)}",
                                  details=problems))
            return None, req, resp
    return handler, req, resp


def fail_action(resp: PubSubResponse, action: str, exc: Exception, policy=None) -> None:
    """Answer ``exc``; raise the :class:`~daebus.Retry` it asks for instead
    (with ``policy``, the action's RetryPolicy), unless a reply went out."""
    retry = None if resp.finished else wanted(exc, policy)
    if retry is not None:
        raise retry
    if isinstance(exc, DaebusError):
        log.info("action %r answered %s: %s", action, exc.code, exc)
        if not resp.finished:
            resp.error(exc)
        return
    log.exception("action %r failed", action)
    if not resp.finished:
        resp.error(exc, protocol.HANDLER_ERROR)


def finish_action(resp: PubSubResponse, result) -> None:
    if not resp.finished:
        resp.success(result)


def answer_failure(app, message: protocol.Request, publish: Publish, retry: Retry) -> str | None:
    """The final reply to a request whose handler asked for a ``retry``
    that will not come: what the exception behind it would have answered,
    else ``retry_exhausted``. Called while ``retry`` is being handled."""
    req = PubSubRequest(message)
    resp = PubSubResponse(req, publish, app.logger)
    cause = retry.__cause__
    with handler_context(app, req, resp):
        if isinstance(cause, Exception) and not isinstance(cause, Retry):
            fail_action(resp, message.action, cause)
        else:
            log.info("action %r asked for a retry after attempt %d, and none is left", message.action,
                     message.delivery)
            resp.error(RetryExhausted(str(retry) or f"{message.action!r} asked to be retried "
                                      f"after attempt {message.delivery}, and no retry was left"))
    return resp.error_code


def run_listener(app, handler, channel: str, payload: dict) -> bool:
    """Call one listener; False when it raised (logged, never propagated)
    or the payload broke its contract. A :class:`~daebus.Retry` it asks for
    is raised."""
    if not listener_accepts(app, handler, channel, payload):
        return False
    with app_context(app):
        try:
            handler(payload)
        except Exception as exc:  # noqa: BLE001 - a listener bug must not stop the others
            fail_listener(app, handler, channel, exc)
            return False
    return True


def fail_listener(app, handler, channel: str, exc: Exception) -> None:
    retry = wanted(exc, app.listen_retries.get((channel, handler)))
    if retry is not None:
        raise retry
    log.exception("listener %s for %r failed", handler_name(handler), channel)


def listener_accepts(app, handler, channel: str, payload) -> bool:
    contract = app.listen_contracts.get((channel, handler))
    if contract is not None:
        problems = contract.problems(payload)
        if problems:
            _drops.dropped(channel, handler_name(handler), problems)
            return False
    return True


def handler_name(handler) -> str:
    return getattr(handler, "__qualname__", repr(handler))
