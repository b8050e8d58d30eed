"""Pure readers of what providers answer when the hub asks them (issue 18: pull sources).

Beside the callback parsers (``parsers/<slug>.py``), which read what a provider pushes, each
module here reads the answers of one provider's polling methods: the provider's response bytes
in, a :class:`parsers.pull.base.Page` out, no I/O and no clock. It also says how to ask
(:class:`parsers.pull.base.Call`), so that the hub's sources (``hub/pull/``) only send.
The contract is in :mod:`parsers.pull.base`.
"""
