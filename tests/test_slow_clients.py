"""Slow and hostile clients cannot lock providers out (issue 13, finding 4).

Real ``hub serve`` processes: the first one limited to 1,024 file descriptors, as a service
usually is, under 2,000 connections that send their headers a byte a second; the others with
small deadlines and caps set by their ``HUB_*`` variables. Every connection the tests open is on
loopback, bounded in time, and closed in a ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.harness.hubproc import HubProcess
from tests.support import DLR, SECRET, dlr_query, eventually, hub_env, metric

FD_LIMIT = 1024
SLOW_CLIENTS = 2000
ATTACK_SECONDS = 15.0
CALLBACKS = 20


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def descriptors_for_clients(needed: int) -> Iterator[None]:
    """This process needs ``needed`` descriptors for its clients: raises its soft limit for
    the test, and puts it back afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        message = f"the test needs {needed} file descriptors, the hard limit is {hard}"
        if _ci():
            pytest.fail(message)
        pytest.skip(message + " (set CI=true to make this a failure)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def hubs(tmp_path: Path) -> Iterator[list[HubProcess]]:
    """Hubs the test starts; stopped by PID at teardown."""
    made: list[HubProcess] = []
    try:
        yield made
    finally:
        for hub in made:
            hub.stop()


def start(
    hubs: list[HubProcess],
    data_dir: Path,
    env: dict[str, object] | None = None,
    nofile: int | None = None,
) -> HubProcess:
    variables = {**hub_env(), **{k: str(v) for k, v in (env or {}).items()}}
    hub = HubProcess(data_dir, variables, nofile=nofile)
    hubs.append(hub)
    hub.start()
    return hub


async def scrape(hub: HubProcess, name: str, **labels: str) -> float | None:
    async with aiohttp.ClientSession() as http, http.get(f"{hub.url}/metrics") as resp:
        return metric(await resp.text(), name, **labels)


async def closed_by_hub(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the hub closes the connection within ``within`` seconds (reading whatever it
    sends first), False when it is still open then."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


Connected = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def unread_bytes(port: int, clients: list[Connected]) -> int | None:
    """Bytes the clients sent that the hub on ``port`` has not read yet: the receive queues of
    its ends of their connections (``/proc/net/tcp``); None while some end is not listed."""
    ends = {f"0100007F:{w.get_extra_info('sockname')[1]:04X}" for _, w in clients}
    unread, found = 0, set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if local == f"0100007F:{port:04X}" and remote in ends:
            unread += int(queues.split(":")[1], 16)
            found.add(remote)
    return unread if found == ends else None


async def read_by_hub(hub: HubProcess, clients: list[Connected]) -> None:
    """Waits until the hub has read everything the clients sent."""

    async def read() -> bool:
        return unread_bytes(hub.port, clients) == 0

    await eventually(read, timeout=10)


@contextlib.asynccontextmanager
async def connection(
    hub: HubProcess,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        yield reader, writer
    finally:
        writer.close()


# -- 2,000 slow clients against 1,024 descriptors ------------------------------------------------


class Attack:
    """``SLOW_CLIENTS`` connections sending a callback's request line a byte a second (behind
    the right secret); each one the hub closes comes back a second later, until ``stop``."""

    def __init__(self, hub: HubProcess) -> None:
        self.hub = hub
        self.stop = asyncio.Event()
        self.opened = 0
        self.holding = 0
        self.most_held = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def client(self, n: int) -> None:
        line = f"GET {DLR}?{dlr_query(n)} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.hub.port)
            except OSError:
                await self._pause()
                continue
            self.writers.add(writer)
            self.opened += 1
            self.holding += 1
            self.most_held = max(self.most_held, self.holding)
            try:
                for i in range(len(line)):
                    writer.write(line[i : i + 1])
                    await writer.drain()
                    if await closed_by_hub(reader, 1.0) or self.stop.is_set():
                        break
            except ConnectionError:
                pass
            finally:
                self.holding -= 1
                self.writers.discard(writer)
                writer.close()
            await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self.stop.wait()

    def close_all(self) -> None:
        self.stop.set()
        for writer in list(self.writers):
            writer.transport.abort()


async def well_behaved_provider(
    hub: HubProcess, count: int, first: int = 0, *, keepalive: bool = False
) -> list[str]:
    """``count`` distinct callbacks and as many liveness checks, one after the other, each on a
    new connection (a provider's usual way), or all on one kept alive; returns what went
    wrong."""
    failures: list[str] = []
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(force_close=not keepalive, limit=1)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        for n in range(count):
            for path in (f"{DLR}?{dlr_query(10_000_000 + first + n)}", "/health/live"):
                try:
                    async with http.get(hub.url + path) as resp:
                        body = await resp.text()
                        if resp.status != 200:
                            failures.append(f"{path.split('?')[0]}: {resp.status} {body!r}")
                        elif path.startswith(DLR) and body != "validation":
                            failures.append(f"callback answered {body!r}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failures.append(f"{path.split('?')[0].replace(SECRET, '<secret>')}: {exc!r}")
            await asyncio.sleep(0.25)  # a provider's pace, not a wait for a condition
    return failures


async def test_2000_slow_clients_do_not_lock_out_a_provider(
    hubs: list[HubProcess], tmp_path: Path
) -> None:
    hub = start(hubs, tmp_path / "data", nofile=FD_LIMIT)
    pid = hub.pid
    assert pid is not None
    assert not await well_behaved_provider(hub, 5, first=1000)  # warm: first requests allocate
    baseline_fds, baseline_rss = open_fds(pid), rss_mib(pid)
    most_fds = baseline_fds
    with descriptors_for_clients(SLOW_CLIENTS + 256):
        attack = Attack(hub)
        clients = [asyncio.create_task(attack.client(n)) for n in range(SLOW_CLIENTS)]
        try:
            async with asyncio.timeout(ATTACK_SECONDS + 60):

                async def held() -> bool:  # the slow clients hold as many as the hub takes
                    return open_fds(pid) >= FD_LIMIT * 3 // 4

                try:
                    await eventually(held, timeout=30)
                except TimeoutError:
                    pytest.fail(f"the slow clients never held 3/4 of {FD_LIMIT} descriptors")
                stop_at = time.monotonic() + ATTACK_SECONDS

                async def sample() -> None:
                    nonlocal most_fds
                    while True:
                        most_fds = max(most_fds, open_fds(pid))
                        await asyncio.sleep(0.1)  # a sampling pace, not a wait for a condition

                sampler = asyncio.create_task(sample())
                try:
                    found = await asyncio.gather(
                        well_behaved_provider(hub, CALLBACKS),
                        well_behaved_provider(hub, CALLBACKS, first=CALLBACKS, keepalive=True),
                    )
                    # the attack lasts ATTACK_SECONDS at least: its length, not a wait
                    await asyncio.sleep(max(stop_at - time.monotonic(), 0.0))
                finally:
                    sampler.cancel()
                failures = [f for failed in found for f in failed]
                peak_rss = rss_mib(pid)
        finally:
            attack.close_all()
            await asyncio.gather(*clients, return_exceptions=True)

    assert attack.most_held >= FD_LIMIT * 3 // 4, (
        f"the slow clients never held many connections ({attack.most_held})"
    )
    assert not failures, (
        f"{len(failures)} of {4 * CALLBACKS} provider requests failed under "
        f"{SLOW_CLIENTS} slow clients ({attack.opened} connections), e.g. {failures[:3]}"
    )
    assert most_fds < FD_LIMIT
    assert hub.running
    assert await scrape(hub, "hub_http_connections_closed_total", reason="evicted")
    accepted = await scrape(
        hub, "hub_callbacks_total", provider="isendpro", endpoint="delivery", outcome="accepted"
    )
    assert accepted == 5 + 2 * CALLBACKS

    async def back_to_baseline() -> bool:
        assert hub.pid is not None
        return open_fds(hub.pid) <= baseline_fds + 8 and rss_mib(hub.pid) <= baseline_rss + 24

    try:
        await eventually(back_to_baseline, timeout=30)
    except TimeoutError:
        pytest.fail(
            f"descriptors {baseline_fds} -> {open_fds(hub.pid)}, RSS {baseline_rss:.0f} -> "
            f"{peak_rss:.0f} -> {rss_mib(hub.pid):.0f} MiB after the slow clients left"
        )
    assert not await well_behaved_provider(hub, 2, first=2000)


# -- deadlines -----------------------------------------------------------------------------------


def get_and_post_head(message_id: int) -> tuple[bytes, bytes, bytes]:
    """A whole iSendPro GET; a DMC POST's body, and its head alone (line and headers)."""
    request = f"GET {DLR}?{dlr_query(message_id)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    body = b"status_report=" + b"x" * 100
    post = (
        f"POST /callbacks/dmc/{SECRET}/cra HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return request, body, post


async def test_slow_headers_slow_bodies_and_idle_connections_are_closed(
    hubs: list[HubProcess], tmp_path: Path
) -> None:
    hub = start(
        hubs,
        tmp_path / "data",
        env={"HUB_HEADER_TIMEOUT": 1, "HUB_BODY_TIMEOUT": 2, "HUB_KEEPALIVE_TIMEOUT": 6},
    )
    request, body, post = get_and_post_head(1)

    async def slow_headers() -> bool:
        async with connection(hub) as (reader, writer):
            writer.write(request[:20])
            return await closed_by_hub(reader, 10)

    async def slow_body() -> bool:
        async with connection(hub) as (reader, writer):
            writer.write(post + body[:10])
            return await closed_by_hub(reader, 15)

    async def idle_keepalive() -> tuple[bytes, bool, bool]:
        async with connection(hub) as (reader, writer):
            writer.write(request)
            answer = await reader.readuntil(b"validation")
            # still open past the header and body deadlines: idle is keep-alive's business
            early = await closed_by_hub(reader, 2.5)
            return answer, early, await closed_by_hub(reader, 15)

    async def slow_second_headers() -> tuple[bytes, bool]:
        async with connection(hub) as (reader, writer):
            writer.write(request)
            answer = await reader.readuntil(b"validation")
            writer.write(request[:20])  # its headers' deadline, before keep-alive's
            return answer, await closed_by_hub(reader, 4)

    async def headers_in_pieces() -> bytes:
        async with connection(hub) as (reader, writer):
            for piece in (request[:10], request[10:30], request[30:]):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.2)  # a client's pace, within the deadline
            return await reader.readuntil(b"validation")

    async with asyncio.timeout(60):
        headers, bodies, idle, second, pieces = await asyncio.gather(
            slow_headers(),
            slow_body(),
            idle_keepalive(),
            slow_second_headers(),
            headers_in_pieces(),
        )
    assert headers, "a connection that never finished its headers was kept open"
    assert bodies, "a body that never finished was waited for"
    assert idle[0].startswith(b"HTTP/1.1 200") and not idle[1]
    assert idle[2], "an idle keep-alive connection was kept open"
    assert second[0].startswith(b"HTTP/1.1 200") and second[1]
    assert pieces.startswith(b"HTTP/1.1 200")
    for reason in ("header_timeout", "body_timeout"):
        assert await scrape(hub, "hub_http_connections_closed_total", reason=reason)


# -- the cap -------------------------------------------------------------------------------------


async def test_at_the_cap_the_slowest_connection_makes_room(
    hubs: list[HubProcess], tmp_path: Path
) -> None:
    """With 8 connections at most: the oldest sending part of a request goes first, then the
    oldest that sent nothing, then answered ones; never one whose request is under way."""
    hub = start(hubs, tmp_path / "data", env={"HUB_MAX_CONNECTIONS": 8})
    request, body, post = get_and_post_head(2)
    async with contextlib.AsyncExitStack() as stack:
        established = await stack.enter_async_context(connection(hub))
        established[1].write(request)
        await established[0].readuntil(b"validation")
        # a 404 whose body comes a byte a second: aiohttp reads the rest ("lingering")
        lingering = await stack.enter_async_context(connection(hub))
        lingering[1].write(post.replace(SECRET.encode(), b"wrong") + body[:10])
        await lingering[0].readuntil(b"\r\n\r\n")
        busy = await stack.enter_async_context(connection(hub))
        busy[1].write(post + body[:10])  # a body under way
        silent = await stack.enter_async_context(connection(hub))  # connected, sends nothing
        slow = []
        for _ in range(4):
            conn = await stack.enter_async_context(connection(hub))
            conn[1].write(request[:20])
            await conn[1].drain()
            slow.append(conn)
        await read_by_hub(hub, [busy, *slow])
        # 8 open: each newcomer closes the oldest slow one, and is served (and stays open)
        async with asyncio.timeout(30):
            for n in range(4):
                reader, writer = await stack.enter_async_context(connection(hub))
                writer.write(request)
                assert (await reader.readuntil(b"validation")).startswith(b"HTTP/1.1 200")
                assert await closed_by_hub(slow[n][0], 5), f"slow connection {n} kept"
                for later in [*slow[n + 1 :], silent]:
                    assert not await closed_by_hub(later[0], 0.01)
            # no slow one left: the silent one goes, then the answered connections, the one
            # used the longest ago first (before the newcomers, idle too), never the busy one
            for answered in (silent, established, lingering):
                reader, writer = await stack.enter_async_context(connection(hub))
                writer.write(request)
                assert (await reader.readuntil(b"validation")).startswith(b"HTTP/1.1 200")
                assert await closed_by_hub(answered[0], 5)
            assert not await closed_by_hub(busy[0], 0.5)
            busy[1].write(body[10:])
            assert (await busy[0].readuntil(b"\r\n")).startswith(b"HTTP/1.1 400")  # not DMC's
    evicted = await scrape(hub, "hub_http_connections_closed_total", reason="evicted")
    assert evicted is not None and evicted >= 7


async def test_at_the_cap_slow_bodies_make_room_too(hubs: list[HubProcess], tmp_path: Path) -> None:
    """Every connection in a request whose body comes a byte a second (behind the right
    secret): a newcomer is still served, and the oldest slow body goes."""
    hub = start(hubs, tmp_path / "data", env={"HUB_MAX_CONNECTIONS": 4})
    body = b"status_report=" + b"x" * 100
    post = (
        f"POST /callbacks/dmc/{SECRET}/cra HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    request = f"GET {DLR}?{dlr_query(3)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    async with contextlib.AsyncExitStack() as stack, asyncio.timeout(30):
        bodies = []
        for _ in range(4):
            conn = await stack.enter_async_context(connection(hub))
            conn[1].write(post + body[:10])
            await conn[1].drain()
            bodies.append(conn)
        await read_by_hub(hub, bodies)  # their headers are in: requests under way
        reader, writer = await stack.enter_async_context(connection(hub))
        writer.write(request)
        assert (await reader.readuntil(b"validation")).startswith(b"HTTP/1.1 200")
        assert await closed_by_hub(bodies[0][0], 5)
        for later in bodies[1:]:
            assert not await closed_by_hub(later[0], 0.01)
