"""The Redis seam: connections (transport), the wire format (protocol), the
subscriber that reads channels, the registry of running services, kept
broadcasts, and the per-process bus object callers and services share.

Nothing here knows about apps or how a service runs (import contracts in
``.importlinter``)."""
