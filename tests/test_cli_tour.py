"""Every command of the README's command table, run as a new user runs it: no traceback, an exit
status the docs give, never a hang.

The commands come from the table in README.md ("Command line"), so the tour follows the docs: a
command added there without a way to try it here fails the tour. Each runs through the real
entry point (``python -m hub``) in a process of its own, bounded by a timeout, against a real
``hub serve`` on a throwaway data directory and the harness's RabbitMQ; then once more against a
data directory where no hub ever ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.hubproc import HubProcess
from tests.harness.ports import free_port
from tests.harness.rabbitmq import RabbitNode
from tests.support import clean_env, run_hub

README = Path(__file__).resolve().parent.parent / "README.md"
TIMEOUT = 60
"""Seconds any one command may take (a loaded machine starts Python slowly)."""


def documented_commands() -> list[str]:
    """The command forms of the README's command table, optional parts dropped: ``hub tail``,
    ``hub quarantine show N``, ``hub send --list``... (a cell's forms after the first that do
    not start with ``hub`` are subcommands of the first's family: ``show N`` of ``hub
    quarantine``)."""
    section = README.read_text().split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    forms = []
    for row in section.splitlines():
        if not row.startswith("| `hub"):
            continue
        cell = row.split(" | ", 1)[0].removeprefix("| ")
        snippets = re.findall(r"`([^`]+)`", cell)
        family = " ".join(snippets[0].split()[:2])
        for snippet in snippets:
            form = snippet if snippet.startswith("hub ") else f"{family} {snippet}"
            forms.append(" ".join(re.sub(r"\[[^\]]*\]", " ", form).split()))
    return forms


@dataclass(frozen=True)
class Step:
    args: tuple[str, ...]
    codes: frozenset[int]
    """Exit statuses the docs give for these arguments."""


def step(*args: str, codes: tuple[int, ...] = (0,)) -> Step:
    return Step(args, frozenset(codes))


QUARANTINED = "{quarantined}"
"""Stands for the number of the request the tour's refused sample left in the quarantine."""

TOUR: dict[str, list[Step]] = {
    # hub serve is the HubProcess the tour runs against (python -m hub serve, stopped by SIGTERM)
    "hub serve": [],
    "hub send --list": [step("send", "--list")],
    "hub send PROVIDER": [step("send", "isendpro")],
    "hub send PROVIDER CALLBACK": [
        step("send", "isendpro", "delivery"),
        step("send", "dmc", "cra", "--sample", "seed-mms-sent", "--json"),
        step("send", "dmc", "cra", "--sample", "own-dtd-refused", codes=(1,)),  # a refusal
        step("send", "ecall", "notification", codes=(1,)),  # this machine not in the allowlist
    ],
    "hub urls --base URL": [step("urls", "--base", "https://hooks.example.com")],
    "hub console-url": [step("console-url"), step("console-url", "--base", "https://hub.example")],
    "hub tail": [
        step("tail", "--no-follow"),
        step("tail", "--no-follow", "-n", "1", "--pattern", "dmc.#", "--json"),
    ],
    "hub journal stats": [step("journal", "stats"), step("journal", "stats", "--json")],
    "hub replay": [
        step("replay", "--since", "1h", "--dry-run"),
        step("replay", "--since", "yesterday", "--provider", "dmc", "--kind", "delivery"),
    ],
    "hub subscribe": [
        step("subscribe", "*.*.delivery.#", "--from", "first", "--count", "1"),
        step("subscribe", "--from", "1h", "--count", "2", "--json"),
    ],
    "hub check": [step("check", codes=(0, 1))],  # 1: a check failed (the broker not yet joined)
    "hub quarantine list": [step("quarantine", "list"), step("quarantine", "list", "--all")],
    "hub quarantine show N": [step("quarantine", "show", QUARANTINED)],
    "hub quarantine replay": [step("quarantine", "replay", QUARANTINED, codes=(3,))],  # refused
    "hub quarantine drop N...": [step("quarantine", "drop", QUARANTINED)],
    "hub quarantine purge": [step("quarantine", "purge")],
    "hub pull status": [step("pull", "status"), step("pull", "status", "--json")],
    "hub pull once PROVIDER": [step("pull", "once", "smsmode", codes=(2,))],  # off: no token
    # once the hub has stopped (its forwarder holds the data directory): it stops at once, its
    # --parent (PID 1) not being its parent
    "hub forward": [step("forward", "--parent", "1")],
}


def test_the_tour_covers_the_readme_s_table() -> None:
    documented = documented_commands()
    assert "hub quarantine show N" in documented  # the table was read
    assert set(documented) == set(TOUR), "a command of the README without a step here, or gone"


def _run(step_: Step, env: dict[str, str], quarantined: str = "1") -> tuple[int, str, str]:
    args = [quarantined if a == QUARANTINED else a for a in step_.args]
    proc = run_hub(*args, env=env, timeout=TIMEOUT)
    assert "Traceback" not in proc.stderr, (args, proc.stderr)
    assert proc.returncode in step_.codes, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc.returncode, proc.stdout, proc.stderr


def test_every_command_against_a_running_hub_and_its_broker(
    tmp_path: Path, rabbit: RabbitNode, exchange_name: str
) -> None:
    hub = HubProcess(tmp_path / "data", {"HUB_EXCHANGE": exchange_name}, rabbitmq_url=rabbit.url)
    hub.start()
    try:
        env = hub.env
        order = [form for form in TOUR if form.startswith("hub send")]  # first: events to see
        order += [form for form in TOUR if form not in order and form != "hub forward"]
        quarantined = ""
        for form in order:
            for step_ in TOUR[form]:
                _, out, _ = _run(step_, env, quarantined)
                if step_.args == ("quarantine", "list"):
                    rows = out.split()
                    assert rows, "the refused sample is in the quarantine"
                    quarantined = rows[0]
        # the journal's side of hub tail, the same data without the broker
        journal_env = {k: v for k, v in env.items() if k != "HUB_RABBITMQ_URL"}
        for step_ in TOUR["hub tail"]:
            _run(step_, journal_env)
    finally:
        code = hub.terminate()
    assert code == 0, hub.log_tail()
    assert "Traceback" not in hub.log_tail(10_000)
    for step_ in TOUR["hub forward"]:  # once the hub's forwarder has let the data directory go
        _run(step_, env)


@pytest.mark.parametrize("form", [f for f in TOUR if f != "hub serve"])
def test_every_command_where_no_hub_ever_ran(tmp_path: Path, form: str) -> None:
    """No journal, no secrets, no hub on the port, no broker: each command says so in a line
    (exit 1), or needs none of it (exit 0), or is refused its arguments (exit 2)."""
    env = {**clean_env(tmp_path / "nothing-here"), "HUB_PORT": str(free_port())}
    for step_ in TOUR[form]:
        _run(Step(step_.args, frozenset({0, 1, 2})), env)
