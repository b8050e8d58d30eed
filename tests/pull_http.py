"""The tests' way of sending a :class:`parsers.pull.base.Call` over loopback HTTP and reading the
answer as a pull module's reader takes it, for the tests of the providers' fakes (the hub's own
sources send them in ``hub/pull/``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

import aiohttp

from core.models import Provider, RawRequest
from parsers.pull.base import Call, Page


async def send(
    session: aiohttp.ClientSession,
    base: str,
    call: Call,
    provider: Provider,
    callback: str,
    *,
    timeout: float = 10.0,
    query: bytes | None = None,
) -> tuple[int, RawRequest]:
    """``call`` sent to ``base``; the HTTP status and the answer as a reader's ``RawRequest``
    (its ``query`` the request's without the secret fields, or ``query`` when given: a SOAP
    call's parameters are in its body)."""
    headers = dict(call.headers)
    data: bytes | None = None
    if call.form:
        data = urlencode(call.form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif call.body:
        data = call.body
        headers["Content-Type"] = call.content_type
    async with session.request(
        call.method,
        base + call.path,
        params=list(call.query),
        data=data,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as response:
        body = await response.read()
        status = response.status
        content_type = response.headers.get("Content-Type", "")
    public = [(k, v) for k, v in call.query if k not in call.secrets]
    return status, RawRequest(
        provider=provider,
        callback=callback,
        method=call.method,
        query=urlencode(public).encode() if query is None else query,
        body=body,
        content_type=content_type,
        received_at=datetime.now(UTC),
    )


def page_of(
    status: int,
    response: RawRequest,
    read_status: Callable[[int], Page | None],
    reader: Callable[[RawRequest], Page],
) -> Page:
    """What a source makes of an answer: its status's page, else its body's."""
    by_status = read_status(status)
    return by_status if by_status is not None else reader(response)
