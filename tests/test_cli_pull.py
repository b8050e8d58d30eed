"""``hub pull status`` and ``hub pull once`` through the real entry point, and a real ``hub
serve`` polling sMsmode's fake (``tests.fakes.smsmode``, in a thread) across a restart: each
reply in ``hub tail`` once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from core.models import Provider
from tests.fakes.base import Running
from tests.fakes.smsmode import TOKEN, FakeSmsmode, Reply
from tests.harness.hubproc import HubProcess
from tests.support import SECRET, run_hub, wait_until


def _reply(n: int, minutes: int = 2) -> Reply:
    return Reply(f"resp-{n}", datetime.now(UTC) - timedelta(minutes=minutes), text=f"oui {n}")


@pytest.fixture
def fake() -> Iterator[tuple[FakeSmsmode, Running[FakeSmsmode]]]:
    server = FakeSmsmode()
    with Running(server) as running:
        yield server, running


def _env(data_dir: Path, api_url: str, token: str | None = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update({f"HUB_SECRET_{p.value.upper()}": SECRET for p in Provider})
    env.update(HUB_DATA_DIR=str(data_dir), HUB_SMSMODE_API_URL=api_url)
    if token is not None:
        env["HUB_SMSMODE_ACCESS_TOKEN"] = token
    return env


def _status(env: dict[str, str]) -> dict[str, object]:
    done = run_hub("pull", "status", "--json", env=env, check=True)
    found: list[dict[str, object]] = orjson.loads(done.stdout)
    return next(s for s in found if s["provider"] == "smsmode")


def test_once_prints_what_arrived_and_status_says_where_the_source_is(fake, tmp_path) -> None:
    server, running = fake
    server.add(_reply(1), _reply(2))
    env = _env(tmp_path / "data", running.api_url)
    never = run_hub("pull", "status", env=env, check=True).stdout
    assert "smsmode: on" in never and "never polled" in never

    first = run_hub("pull", "once", "smsmode", env=env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert sum("smsmode.sms.inbound.received" in line for line in lines) == 2
    assert "oui 1" in first.stdout and "oui 2" in first.stdout
    assert lines[-1] == "smsmode: items: 2 new events journaled"

    again = run_hub("pull", "once", "smsmode", "--json", env=env, check=True)
    assert again.stdout.splitlines() == ["smsmode: items: 0 new events journaled"]
    status = _status(env)
    assert status["configured"] is True and status["outcome"] == "items"
    assert status["items"] == 2 and status["failures"] == 0
    assert "replies read up to" in str(status["cursor"])
    text = run_hub("pull", "status", env=env, check=True).stdout
    assert "2 journaled" in text and TOKEN not in text
    assert all(TOKEN not in str(q) for q in (first.stdout, first.stderr))


def test_once_with_a_refused_token_fails_in_one_line(fake, tmp_path) -> None:
    _, running = fake
    env = _env(tmp_path / "data", running.api_url, token="wrong-token-0123456789")
    done = run_hub("pull", "once", "smsmode", env=env)
    assert done.returncode == 1
    assert "smsmode: credentials_refused (authentication_error): 0 new events" in done.stderr
    assert "Traceback" not in done.stderr and "wrong-token-0123456789" not in done.stderr
    assert _status(env)["failures"] == 1


def test_once_on_a_source_that_is_off_says_how_to_turn_it_on(tmp_path) -> None:
    env = _env(tmp_path / "data", "http://127.0.0.1:9/http/1.6", token=None)
    done = run_hub("pull", "once", "smsmode", env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == "the smsmode source is off: set HUB_SMSMODE_ACCESS_TOKEN"
    assert "off (set HUB_SMSMODE_ACCESS_TOKEN)" in run_hub("pull", "status", env=env).stdout
    empty = run_hub("serve", env={**env, "HUB_SMSMODE_ACCESS_TOKEN": " "}, timeout=30)
    assert empty.returncode == 2
    assert "HUB_SMSMODE_ACCESS_TOKEN is set but empty" in empty.stderr


def _tail(env: dict[str, str]) -> list[str]:
    done = run_hub("tail", "--no-follow", "-n", "100", "--json", env=env, check=True)
    return [orjson.loads(line)["data"]["message_id"] for line in done.stdout.splitlines()]


def test_the_running_hub_polls_and_a_restart_repeats_nothing(fake, tmp_path) -> None:
    server, running = fake
    server.add(_reply(1), _reply(2))
    data_dir = tmp_path / "data"
    # The interval for the command line's poll too: it saves the next poll's time, which the
    # restarted hub waits for (at the default 60 s, longer than the wait below, whenever the
    # hub's own next poll had not come between that poll and the hub's stop: a flake under load)
    env = {**_env(data_dir, running.api_url), "HUB_SMSMODE_PULL_INTERVAL": "0.2"}
    overrides = {k: v for k, v in env.items() if k.startswith("HUB_SMSMODE_")}
    hub = HubProcess(data_dir, overrides)
    with hub:
        hub.start()
        wait_until(lambda: sorted(_tail(env)) == ["resp-1", "resp-2"], failure=hub.log_tail)
        # beside the hub's own polls, one from the command line: nothing new, nothing twice
        once = run_hub("pull", "once", "smsmode", env=env, check=True)
        assert once.stdout.splitlines()[-1] == "smsmode: items: 0 new events journaled"
        assert hub.terminate() == 0
        server.add(_reply(3, minutes=0))
        polled = len(server.calls)
        hub.start()
        wait_until(lambda: len(server.calls) > polled + 3, failure=hub.log_tail)
        wait_until(lambda: len(_tail(env)) == 3, failure=hub.log_tail)
        assert sorted(_tail(env)) == ["resp-1", "resp-2", "resp-3"]
        assert TOKEN not in hub.log_file.read_text()
        assert hub.terminate() == 0


def test_a_source_s_credentials_half_set_stop_the_hub_in_one_line(tmp_path) -> None:
    """DMC's three credentials, two given: refused at start, the password not echoed."""
    env = _env(tmp_path / "data", "http://127.0.0.1:9/http/1.6", token=None)
    env.update(HUB_DMC_SERVICE_ID="123456", HUB_DMC_SERVICE_PASSWORD="hidden-dmc-password")
    done = run_hub("serve", env=env, timeout=30)
    assert done.returncode == 2
    assert "HUB_DMC_SERVICE_ID, HUB_DMC_SERVICE_PASSWORD, HUB_DMC_SPACE_ID: set all" in done.stderr
    assert "Traceback" not in done.stderr and "hidden-dmc-password" not in done.stderr
    low = run_hub("serve", env={**env, "HUB_DMC_SPACE_ID": "69", "HUB_DMC_PULL_INTERVAL": "10"})
    assert low.returncode == 2 and "HUB_DMC_PULL_INTERVAL" in low.stderr
