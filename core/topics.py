"""Routing patterns: ``<provider>.<channel>.<kind>.<state>`` keys, and the broker's topic match."""

from __future__ import annotations

DEFAULT_EXCHANGE = "callback-hub"
"""The topic exchange events are published to, unless ``HUB_EXCHANGE`` names another."""


def matches(pattern: str, routing_key: str) -> bool:
    """The broker's topic match: ``*`` is one word, ``#`` zero or more."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    return bool(words) and head in ("*", words[0]) and _match(rest, words[1:])


def check_pattern(pattern: str) -> str:
    """``pattern`` if it is a routing pattern (dot-separated non-empty words), else ValueError."""
    if not all(pattern.split(".")):
        raise ValueError(f"not a routing pattern: {pattern!r} (e.g. isendpro.# or *.*.inbound.#)")
    return pattern
