"""A :class:`parsers.pull.base.Call` sent to a provider's API, and what came back.

The query is percent-encoded as the documents write their samples (``:`` left as is:
``startDate=01012014-00:00``), and sent as built (never re-quoted). What is kept of the
exchange, in the journal's quarantine and in logs, is the query without the fields that
``Call.secrets`` names. A response is read up to :data:`MAX_BYTES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from parsers.pull.base import Call

MAX_BYTES = 16 * 1024 * 1024
"""The largest answer read (a list of a day's replies is a few hundred kilobytes)."""
TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)


class Unreachable(Exception):
    """No answer: the connection refused or cut, a timeout, an answer too large. Its text is a
    short label for metrics and logs (``timeout``, ``connection``, ``too_large``)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    headers: dict[str, str]
    body: bytes


def query_of(pairs: tuple[tuple[str, str], ...], hidden: frozenset[str] = frozenset()) -> str:
    """The query string of ``pairs``, those named in ``hidden`` left out."""
    return "&".join(
        f"{quote(k, safe='')}={quote(v, safe=':')}" for k, v in pairs if k not in hidden
    )


def kept_query(call: Call) -> bytes:
    """What is kept of the request: its query without secrets (and a form's fields, without
    secrets, after it: a POST's parameters say what was asked)."""
    kept = query_of(call.query, call.secrets)
    form = query_of(call.form, call.secrets)
    return "&".join(part for part in (kept, form) if part).encode()


async def send(session: aiohttp.ClientSession, base_url: str, call: Call) -> Answer:
    """Sends ``call`` under ``base_url`` and reads the answer whole; :class:`Unreachable` when
    none comes."""
    query = query_of(call.query)
    url = URL(base_url.rstrip("/") + call.path + (f"?{query}" if query else ""), encoded=True)
    headers = dict(call.headers)
    data: bytes | None = None
    if call.form:
        data = urlencode(call.form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif call.body:
        data = call.body
        headers["Content-Type"] = call.content_type or "application/octet-stream"
    try:
        async with session.request(
            call.method, url, data=data, headers=headers, timeout=TIMEOUT, allow_redirects=False
        ) as response:
            chunks, size = [], 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > MAX_BYTES:
                    raise Unreachable("too_large")
                chunks.append(chunk)
            body = b"".join(chunks)
            return Answer(
                status=response.status,
                content_type=response.headers.get("Content-Type", ""),
                headers={str(k): v for k, v in response.headers.items()},
                body=body,
            )
    except TimeoutError:
        raise Unreachable("timeout") from None
    except aiohttp.ClientError:
        raise Unreachable("connection") from None
