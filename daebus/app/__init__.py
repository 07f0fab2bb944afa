"""What a service declares: the app and its blueprints, payload contracts,
and the context (``request``, ``response``, ``broadcast``...) its handlers see.

Nothing here runs anything; :mod:`daebus.service` does.
"""
