"""The top floor: the web side (app, handlers, middleware, SSE), the forwarder process, the
subscriber client and the quarantine replay; the command line (``hub.cli``) stands on them.

See docs/architecture.md for the floors and one callback's path through these modules.
"""
