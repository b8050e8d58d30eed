"""The connection pools of the shared index (the worker's, ``writer``; the lookups',
``reading``), made alike: each wait bounded by the same timeout, a statement too, the pool's
own reconnection attempts too; and a driver's error said in one line, never the URL."""

from __future__ import annotations

from typing import Any

from psycopg_pool import ConnectionPool


def pool(
    url: str,
    *,
    name: str,
    timeout: float,
    min_size: int,
    max_size: int,
    options: str = "",
    **kwargs: Any,
) -> ConnectionPool:
    """A pool, not opened yet, whose every wait is bounded by ``timeout`` seconds: a
    connection, the connection's own attempt, a statement (``options`` adds to the server's),
    and the pool's attempts to reconnect. Those back off (1, 2, 4... s), for 5 minutes by
    default: the next one could come minutes after the database is back. Given up after
    ``timeout``, the next use starts a fresh one at once (the caller's retry is the one that
    lasts). ``kwargs`` go to each connection."""
    return ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        timeout=timeout,
        reconnect_timeout=timeout,
        max_idle=300,
        check=ConnectionPool.check_connection,
        name=name,
        kwargs={
            "connect_timeout": max(1, int(timeout)),
            "options": f"{options} -c statement_timeout={int(timeout * 1000)}".strip(),
            **kwargs,
        },
    )


def short(exc: BaseException) -> str:
    """The first line of a driver's error (never the URL: libpq's messages name the host and
    port only)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
