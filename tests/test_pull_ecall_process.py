"""eCall's buffer through real processes: a ``hub serve`` polling the fake (``tests.fakes.ecall``,
in a thread), SIGKILLed after ``GetNextMessage`` was answered and the event journaled but
before its ``DeleteMessage`` completed (issue 18: nothing lost, shown once); ``hub pull once``
and ``hub pull status`` through the real entry point."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from sinks import journal as store
from tests.fakes.base import Running
from tests.fakes.ecall import PASSWORD, USERNAME, BufferedSms, FakeEcall
from tests.harness.hubproc import HubProcess
from tests.support import clean_env, hub_env, run_hub, wait_until


@pytest.fixture
def fake() -> Iterator[tuple[FakeEcall, Running[FakeEcall]]]:
    served = FakeEcall()
    with Running(served) as running:
        yield served, running


def _sms(text: str) -> BufferedSms:
    return BufferedSms("0041766012999", "0041791234567", text, "11.12.2025 10:37:00")


def _overrides(running: Running[FakeEcall], password: str = PASSWORD) -> dict[str, str]:
    return {
        "HUB_ECALL_USERNAME": USERNAME,
        "HUB_ECALL_PASSWORD": password,
        "HUB_ECALL_API_URL": running.api_url,
        "HUB_ECALL_PULL_INTERVAL": "0.2",
    }


def _tail(env: dict[str, str]) -> list[str]:
    """The message ids ``hub tail`` shows (duplicates left out)."""
    done = run_hub("tail", "--no-follow", "-n", "100", "--json", env=env, check=True)
    return [orjson.loads(line)["data"]["message_id"] for line in done.stdout.splitlines()]


def _journaled(data_dir: Path) -> list[str]:
    """The raw journal's message ids, duplicates included."""
    path = data_dir / store.JOURNAL_FILE
    if not path.exists():
        return []
    return [str(r.event().data.message_id) for r in store.select(path, limit=1000)]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError):  # a zombie of ours is gone too
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    return True


def test_a_hub_killed_before_its_deletion_completes_loses_nothing(fake, tmp_path) -> None:
    server, running = fake
    server.hold_deletes = True  # every DeleteMessage left unanswered, and undone
    first = running.call(lambda: server.queue(_sms("Oui")))
    data_dir = tmp_path / "data"
    hub = HubProcess(data_dir, _overrides(running))
    with hub:
        hub.start()
        wait_until(lambda: bool(running.call(server.deletes)), failure=hub.log_tail)
        # the deletion was sent: the event was durable by then
        assert _journaled(data_dir) == [first.message_id]
        workers = hub.children()
        assert hub.kill() == -9
        for pid in workers:  # killed with it, or it noticed and stopped
            wait_until(lambda pid=pid: _gone(pid), failure=hub.log_tail)
        assert running.call(lambda: list(server.buffer)) == [first]  # still in the buffer

        server.hold_deletes = False
        hub.start()
        wait_until(lambda: not running.call(lambda: list(server.buffer)), failure=hub.log_tail)
        second = running.call(lambda: server.queue(_sms("Non")))
        # the second shown: the worker is past the first's copy, which it marked duplicate
        wait_until(lambda: second.message_id in _tail(hub.env), failure=hub.log_tail)
        assert _tail(hub.env) == [first.message_id, second.message_id]  # once each
        raw = _journaled(data_dir)
        assert raw == [first.message_id, first.message_id, second.message_id]  # at most twice
        deleted = [c.query["messageid"] for c in running.call(server.deletes)]
        assert deleted == [first.message_id, first.message_id, second.message_id]
        assert hub.terminate() == 0
    log = hub.log_file.read_text()
    assert PASSWORD not in log and USERNAME not in log and "Oui" not in log


def test_once_prints_what_arrived_and_status_says_where_the_source_is(fake, tmp_path) -> None:
    server, running = fake
    queued = [running.call(lambda n=n: server.queue(_sms(f"oui {n}"))) for n in range(2)]
    env = {**clean_env(tmp_path / "data"), **hub_env(), **_overrides(running)}
    never = run_hub("pull", "status", env=env, check=True).stdout
    assert "ecall: on" in never

    first = run_hub("pull", "once", "ecall", env=env)
    assert first.returncode == 0, first.stderr
    assert sum("ecall.sms.inbound.received" in line for line in first.stdout.splitlines()) == 1
    assert first.stdout.splitlines()[-1] == "ecall: items: 1 new events journaled"
    assert running.call(lambda: [s.message_id for s in server.buffer]) == [queued[1].message_id]
    run_hub("pull", "once", "ecall", env=env, check=True)
    empty = run_hub("pull", "once", "ecall", env=env, check=True)
    assert empty.stdout.splitlines() == ["ecall: nothing_new (code_11204): 0 new events journaled"]
    status = next(
        s
        for s in orjson.loads(run_hub("pull", "status", "--json", env=env, check=True).stdout)
        if s["provider"] == "ecall"
    )
    assert (status["configured"], status["items"], status["failures"]) == (True, 2, 0)
    assert queued[1].message_id in str(status["cursor"])
    for said in (first.stdout, first.stderr, never):
        assert PASSWORD not in said


def test_a_source_that_is_off_or_half_configured_says_so(tmp_path) -> None:
    env = {**clean_env(tmp_path / "data"), **hub_env()}
    done = run_hub("pull", "once", "ecall", env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "the ecall source is off: set HUB_ECALL_USERNAME and HUB_ECALL_PASSWORD"
    )
    half = run_hub("serve", env={**env, "HUB_ECALL_PASSWORD": "pass-0123456789"}, timeout=30)
    assert half.returncode == 2
    assert "HUB_ECALL_USERNAME and HUB_ECALL_PASSWORD go together" in half.stderr
    assert "pass-0123456789" not in half.stderr and "Traceback" not in half.stderr
    empty = run_hub("serve", env={**env, "HUB_ECALL_USERNAME": "u", "HUB_ECALL_PASSWORD": " "})
    assert empty.returncode == 2 and "HUB_ECALL_PASSWORD is set but empty" in empty.stderr
