"""What every fake of a provider's API shares: its record of the requests, being served, and
being held.

A fake is a :class:`Fake`: a dataclass of its own state with an ``app()`` (the aiohttp app
speaking the documented requests and answers), which records each request it receives in
:attr:`Fake.calls` (as its own ``Received``, or the query's fields), refused ones too. It is
served two ways:

- in the test's loop: ``async with FakeX() as fake: ... fake.url``;
- from a thread of its own, for a hub in a process of its own: ``with Running(FakeX()) as
  running: ... running.api_url``; the fake's state is then read or changed through
  :meth:`Running.call`, in the fake's loop.

A request a fake leaves unanswered (:meth:`Fake.hold`: the client's time-out, a deletion that
never completes) is answered when the fake stops, either way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.harness.ports import free_port

R = TypeVar("R")
F = TypeVar("F", bound="Fake[Any]")
T = TypeVar("T")


@dataclass
class Fake(Generic[R]):
    """A fake API; a subclass adds its state and :meth:`app`."""

    base_path: ClassVar[str] = ""
    """The API's path under the server's address (sMsmode's ``/http/1.6``): part of
    :attr:`url` and :attr:`Running.api_url`."""

    calls: list[R] = field(default_factory=list)
    """Every request received, first first, refused and held ones too."""
    url: str = ""
    """The API's base address once served (``http://127.0.0.1:PORT`` and :attr:`base_path`)."""
    _server: TestServer | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        raise NotImplementedError

    async def hold(self) -> None:
        """Waits until the fake stops: a request left unanswered until then."""
        await self._release.wait()

    def release(self) -> None:
        """Ends every :meth:`hold` (the fake stops)."""
        self._release.set()

    async def __aenter__(self) -> Self:
        self._server = TestServer(self.app(), host="127.0.0.1", port=0)
        await self._server.start_server()
        self.url = str(self._server.make_url(self.base_path)).rstrip("/")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()
        if self._server is not None:
            await self._server.close()


class Running(Generic[F]):
    """``fake`` served on a free loopback port from a thread of its own (``with Running(fake)
    as running: running.api_url``), stopped on leaving."""

    def __init__(self, fake: F) -> None:
        self.fake = fake
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(fake.app())
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def api_url(self) -> str:
        """What ``HUB_<PROVIDER>_API_URL`` is set to."""
        return f"http://127.0.0.1:{self.port}{self.fake.base_path}"

    def call(self, function: Callable[[], T]) -> T:
        """``function()`` run in the fake's loop, its result."""

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.fake.url = self.api_url
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        self.fake.release()
        await self._runner.cleanup()

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
