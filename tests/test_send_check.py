"""`hub send` and `hub check` through the real entry point, against a real `hub serve`."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from core.models import Provider
from hub.app import endpoints
from sinks import journal as store
from tests.golden import Case, all_cases
from tests.harness.hubproc import HubProcess
from tests.harness.ports import free_port
from tests.support import LOOPBACK, SECRET, dlr_query, run_hub

CASES = all_cases()


def hub(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_hub(*args, env=env, timeout=timeout)


def client_env(server: HubProcess, **overrides: str) -> dict[str, str]:
    """What an operator's shell beside the hub has: the hub's own HUB_* variables."""
    env = dict(server.env)
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def counts(server: HubProcess) -> tuple[int, int]:
    stats = store.stats(server.data_dir / store.JOURNAL_FILE)
    return stats.events, stats.quarantined


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """`hub serve`, embedded journal, eCall's callbacks allowed from loopback (a test host)."""
    server = HubProcess(tmp_path_factory.mktemp("send") / "data", {"HUB_ALLOW_ECALL": LOOPBACK})
    server.start()
    try:
        yield server
    finally:
        code = server.terminate()
    assert code == 0, server.log_tail()


def _one_per_callback() -> list[Case]:
    """For each provider callback: a documented sample giving events if it has one, else one of
    the hub's own giving events."""
    chosen = []
    for endpoint in endpoints():
        mine = [
            c
            for c in CASES
            if c.provider is endpoint.provider
            and c.spec["callback"] == endpoint.callback.name
            and c.spec.get("events")
        ]
        mine.sort(key=lambda c: not c.name.startswith(("seed-", "pdf-")))
        chosen.append(mine[0])
    return chosen


@pytest.mark.parametrize("case", _one_per_callback(), ids=lambda c: f"{c.id}")
def test_send_gives_the_samples_answer_and_events(served: HubProcess, case: Case) -> None:
    result = hub(
        "send",
        case.provider.value,
        case.spec["callback"],
        "--sample",
        case.name,
        "--json",
        env=client_env(served),
    )
    assert result.returncode == 0, result.stderr + served.log_tail()
    got = orjson.loads(result.stdout)
    assert {"status": got["status"], "body": got["body"]} == case.spec["reply"]
    expected = case.spec["events"]
    assert [e["id"] for e in got["events"]] == [e["id"] for e in expected]
    assert [e["data"]["raw"] for e in got["events"]] == [e["data"]["raw"] for e in expected]


def test_send_a_form_post_to_ecall_and_a_refused_sample(served: HubProcess) -> None:
    env = client_env(served)
    form = hub("send", "ecall", "notification", "--sample", "notification-post-form", env=env)
    assert form.returncode == 0, form.stderr
    assert "answer  200 OK" in form.stdout
    assert "ecall.sms.delivery" in form.stdout

    events, quarantined = counts(served)
    refused = hub("send", "dmc", "cra", "--sample", "own-dtd-refused", env=env)
    assert refused.returncode == 1  # a negative answer
    assert "answer  400 rejected: forbidden_xml" in refused.stdout
    assert "none new" in refused.stdout
    assert counts(served) == (events, quarantined + 1)


def test_send_default_sample_then_its_retry(tmp_path: Path) -> None:
    """On a hub of its own: the module's hub has had every default sample already."""
    with HubProcess(tmp_path / "data") as server:
        env = client_env(server)
        first = hub("send", "smsmode", "reply", env=env)
        assert first.returncode == 0, first.stderr
        assert "(sample seed-reply," in first.stdout
        assert "/callbacks/smsmode/***/reply" in first.stdout and SECRET not in first.stdout
        assert "smsmode.sms.inbound.received" in first.stdout
        again = hub("send", "smsmode", "reply", env=env)
        assert "answer  200 OK" in again.stdout
        assert "events  none new" in again.stdout  # the retry is recognized, no second event


def test_send_a_file(served: HubProcess, tmp_path: Path) -> None:
    query = tmp_path / "dlr.txt"
    query.write_text(dlr_query(424242) + "\n")  # as an editor saves it
    result = hub("send", "isendpro", "delivery", "--file", str(query), env=client_env(served))
    assert result.returncode == 0, result.stderr
    assert "answer  200 validation" in result.stdout
    assert "424242" in result.stdout.split("event ")[-1]


def test_send_lists_what_can_be_sent(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(tmp_path / "nowhere")
    listing = hub("send", "--list", env=env)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert len(lines) == len(CASES)
    defaults = {tuple(line.split()[:2]) for line in lines if line.endswith("(default)")}
    assert defaults == {(e.provider.value, e.callback.name) for e in endpoints()}
    one = hub("send", "isendpro", env=env)
    assert one.returncode == 0
    names = {line.split()[2] for line in one.stdout.splitlines()[:-1]}
    assert names == {c.name for c in CASES if c.provider is Provider.ISENDPRO}
    wrong = hub("send", "isendpro", "nope", env=env)
    assert wrong.returncode == 2 and "delivery, reply" in wrong.stderr
    assert not (tmp_path / "nowhere").exists()  # listing reads no secret, creates nothing


def test_send_without_secrets_here_says_so_and_writes_none(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(tmp_path / "data"), HUB_PORT=str(free_port()))
    result = hub("send", "isendpro", "delivery", env=env)
    assert result.returncode == 1
    assert "no secret for" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_check_passes_and_keeps_nothing(served: HubProcess) -> None:
    before = counts(served)
    result = hub("check", env=client_env(served))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("ok") for line in lines), result.stdout
    for endpoint in endpoints():
        assert any(
            f"{endpoint.provider.value} {endpoint.callback.name}: answers" in line for line in lines
        )
    assert "broker: none" in result.stdout
    assert counts(served) == before  # the probes are journaled nowhere, quarantined neither


def test_check_fails_on_a_wrong_secret(served: HubProcess) -> None:
    result = hub("check", env=client_env(served, HUB_SECRET_DMC="not-the-hubs"))
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert failed == ["FAIL  dmc cra: 404, the hub has another secret than HUB_SECRET_DMC's"]


def test_check_fails_on_an_allowlist_the_hub_does_not_have(served: HubProcess) -> None:
    """The hub takes eCall's callbacks from loopback; this shell's configuration says it should
    not (eCall's own addresses, the default)."""
    env = client_env(served)
    del env["HUB_ALLOW_ECALL"]
    result = hub("check", env=env)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 2 and all("HUB_ALLOW_ECALL here refuses" in f for f in failed)


def test_check_an_unreachable_hub_fails_at_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(tmp_path), HUB_PORT=str(free_port()))  # nothing listens there
    result = hub("check", env=env, timeout=30)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"FAIL  hub: no answer at http://127.0.0.1:{env['HUB_PORT']}: Connection refused"
    ]
    assert "Traceback" not in result.stderr


def test_ecall_from_behind_a_trusted_proxy(tmp_path: Path) -> None:
    """eCall's default allowlist (its own addresses) and loopback a trusted proxy: `hub send`
    sends as one of eCall's addresses; without the proxy setting here it says why it is
    refused, and the hub answers 403."""
    server = HubProcess(tmp_path / "data", {"HUB_TRUSTED_PROXIES": "127.0.0.1"})
    server.start()
    try:
        env = client_env(server)
        through = hub("send", "ecall", "answer", env=env)
        assert through.returncode == 0, through.stderr
        assert "as 193.93.208.200" in through.stdout and "answer  200 OK" in through.stdout
        checked = hub("check", env=env)
        assert checked.returncode == 0, checked.stdout

        del env["HUB_TRUSTED_PROXIES"]
        direct = hub("send", "ecall", "notification", env=env)
        assert direct.returncode == 1
        assert "HUB_ALLOW_ECALL" in direct.stderr and "answer  403" in direct.stdout
        # refused before any parser read it: nothing is kept, and hub send does not say it is
        assert "events  none: refused for its source before being read" in direct.stdout
        assert "quarantine" not in direct.stdout
        checked = hub("check", env=env)  # refused as configured here: not a failure
        assert checked.returncode == 0, checked.stdout
        assert "127.0.0.1 refused, as HUB_ALLOW_ECALL says" in checked.stdout
    finally:
        code = server.terminate()
    assert code == 0, server.log_tail()


def test_check_sees_the_broker(rabbit, tmp_path: Path) -> None:
    server = HubProcess(tmp_path / "data", rabbitmq_url=rabbit.url)
    server.start()
    try:
        env = client_env(server)
        deadline = time.monotonic() + 30
        while True:  # the forwarder connects by itself soon after the start
            result = hub("check", env=env)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
        assert result.returncode == 0, result.stdout + server.log_tail()
        assert "ok    broker: connected" in result.stdout
        without = client_env(server)
        without.pop("HUB_RABBITMQ_URL")
        assert hub("check", env=without).returncode == 0  # a broker there, none asked: fine
    finally:
        code = server.terminate()
    assert code == 0, server.log_tail()
