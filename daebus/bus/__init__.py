"""The Redis seam: connections (transport, clients), the wire format
(protocol), the subscriber that reads channels, the registry of running
services and its typed records, kept broadcasts, and the per-process bus
object per URL that callers and services share and every client is made by.

Nothing here knows about apps or how a service runs (import contracts in
``.importlinter``)."""
