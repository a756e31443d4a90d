"""esgf-nodemgr agent: the ESGF node manager's federation core, simulator, node agent and CLI.

Layers (each imports only the ones below it):

- ``core``    the protocol as a pure state machine (no IO, no clock, no randomness)
- ``sim``     a deterministic simulator driving many cores (seeded, virtual clock)
- ``store``   durable state (SQLite WAL) and atomic file writes
- ``runtime`` the IO shell: mTLS HTTP server/client, scheduler, admin socket, metrics
- ``cli``     the ``esgf-nm`` command
"""

__version__ = "0.1.0"
