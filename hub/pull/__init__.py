"""Pull sources (issue 18): what providers never push, polled from their APIs into the same
events as their callbacks.

- ``source``: what a source is (:class:`hub.pull.source.Source`): how it asks, which items are
  new, what it does once they are durable, how its cursor moves; one module per provider beside
  it (``smsmode``...), on the pure readers of ``parsers.pull``;
- ``state``: a source's state on disk (its cursor, its last poll), written atomically once the
  events are durable, and the lock that keeps two pollers of one source apart;
- ``http``: a :class:`parsers.pull.base.Call` sent, and its answer as a ``RawRequest``;
- ``poller``: one poll (ask, read, journal or quarantine, settle, advance) and the loop of polls
  (intervals, back-off with jitter), with its metrics;
- ``sources``: the sources the settings configure, and ``hub pull status``'s view of them.

The hub's serve process runs one task per configured source (``hub.app``); ``hub pull once``
runs one poll from the command line, through a journal of its own.
"""
