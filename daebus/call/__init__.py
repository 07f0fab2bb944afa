"""Calling services: :class:`DaebusCaller`, :class:`AsyncCaller`, the reply
subscription they share, and how a request reaches an owner or a group.

Never imports :mod:`daebus.service`: a caller needs nothing of the run side."""
