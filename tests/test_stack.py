"""``make stack`` (``python -m stack``): RabbitMQ, Prometheus and the hub start, say where they
are and answer there; ``make stack-down`` (``python -m stack down``) or Ctrl-C (SIGINT) stops
them all, and nothing is left running."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness.ports import free_port
from tests.harness.prometheus import prometheus_available
from tests.harness.rabbitmq import broker_required, rabbitmq_available
from tests.support import DLR, SEED_DLR, eventually, hub_env, metric

ROOT = Path(__file__).resolve().parent.parent
_STOP_WAIT = 120.0

pytestmark = pytest.mark.broker


@dataclass
class Running:
    """A ``python -m stack`` process, its output read as it comes."""

    proc: subprocess.Popen[str]
    base: Path
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)

    def place(self, name: str) -> str:
        """The line of the summary naming ``name`` (hub, rabbitmq, prometheus...)."""
        [line] = [x for x in self.lines if x.startswith(f"  {name} ")]
        return line

    def pid(self, name: str) -> int:
        return int(re.search(r"PID (\d+)", self.place(name)).group(1))  # type: ignore[union-attr]

    def url(self, name: str) -> str:
        return re.search(r"(https?|amqp)://\S+", self.place(name)).group(0)  # type: ignore[union-attr]

    def ready(self) -> bool:
        return any(line.startswith("callback hub stack: ready") for line in self.lines)


def _read(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:  # ends when the runner and the hub (its output too) are gone
        lines.append(line)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :][:1] not in ("Z", "X")


def _marked(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker`` (the RabbitMQ node's name)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "environ").read_bytes().split(b"\0") and _alive(
                int(entry.name)
            ):
                found.append(int(entry.name))
    return found


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in task.read_text().split()]
    return found


def _get(url: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as resp:
        return resp.status, resp.read()


def _require_packages() -> None:
    if not (rabbitmq_available() and prometheus_available()):
        if broker_required():
            pytest.fail("rabbitmq-server and prometheus must be installed (make test does)")
        pytest.skip("rabbitmq-server or prometheus not installed")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Running]:
    _require_packages()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(hub_env(), HUB_PORT=str(free_port()), HUB_DATA_DIR=str(tmp_path / "hub"))
    base = tmp_path / "stack"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stack", "--dir", str(base)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Running(proc, base)
    reader = threading.Thread(target=_read, args=(proc, running.lines), daemon=True)
    reader.start()
    try:
        yield running
    finally:  # whatever the test did: nothing of ours left behind
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        reader.join(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
        if running.ready():
            node = re.search(r"node (\S+)", running.place("rabbitmq")).group(1)  # type: ignore[union-attr]
            ours = _marked(f"RABBITMQ_NODENAME={node}")
            for pid in [running.pid("hub"), running.pid("prometheus"), *ours]:
                with contextlib.suppress(ProcessLookupError):
                    if _alive(pid):
                        os.kill(pid, signal.SIGKILL)


async def _started(stack: Running) -> dict[str, list[int]]:
    """Waits for the summary, checks each part answers where it says; the PIDs of each part."""

    async def ready() -> bool:
        assert stack.proc.poll() is None, stack.output()
        return stack.ready()

    await eventually(ready, timeout=180)
    hub = stack.url("hub")
    assert (await asyncio.to_thread(_get, f"{hub}/health/ready"))[0] == 200
    answer = await asyncio.to_thread(_get, f"{hub}{DLR}?{SEED_DLR.decode()}")
    assert answer == (200, b"validation")

    async def forwarded() -> bool:  # the broker confirmed the event: RabbitMQ takes messages
        _, body = await asyncio.to_thread(_get, f"{hub}/metrics")
        return metric(body.decode(), "hub_forwarded_events_total", provider="isendpro") == 1

    await eventually(forwarded, timeout=60)
    management = stack.url("management")
    auth = "Basic YWRtaW46YWRtaW4="  # admin:admin, the definitions' administrator
    status, body = await asyncio.to_thread(_get, f"{management}api/overview", Authorization=auth)
    assert status == 200 and b"rabbitmq_version" in body
    prometheus = stack.url("prometheus")
    assert (await asyncio.to_thread(_get, f"{prometheus}/-/ready"))[0] == 200

    async def scraped() -> bool:
        _, body = await asyncio.to_thread(_get, f"{prometheus}/api/v1/targets")
        health = re.findall(rb'"health":"(\w+)"', body)
        return len(health) == 2 and set(health) == {b"up"}

    await eventually(scraped, timeout=60)
    assert (stack.base / "stack.pid").read_text().strip() == str(stack.proc.pid)
    node = re.search(r"node (\S+)", stack.place("rabbitmq")).group(1)  # type: ignore[union-attr]
    pids = {
        "hub": [stack.pid("hub"), *_children(stack.pid("hub"))],  # its forwarder too
        "prometheus": [stack.pid("prometheus")],
        "rabbitmq": _marked(f"RABBITMQ_NODENAME={node}"),
    }
    assert len(pids["hub"]) == 2 and stack.pid("rabbitmq") in pids["rabbitmq"], pids
    return pids


def _stopped(stack: Running, pids: dict[str, list[int]]) -> None:
    code = stack.proc.wait(timeout=_STOP_WAIT)
    assert code == 0, stack.output()
    left = {name: [p for p in group if _alive(p)] for name, group in pids.items()}
    assert left == {name: [] for name in pids}, stack.output()
    assert not (stack.base / "stack.pid").exists()
    assert "stack stopped" in stack.output()
    assert "Traceback" not in stack.output()
    with pytest.raises(urllib.error.URLError, match="Connection refused"):  # nothing listens
        _get(f"{stack.url('hub')}/health/live")


async def test_stack_down_stops_everything(stack: Running) -> None:
    pids = await _started(stack)
    twice = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stack", "--dir", str(stack.base)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert twice.returncode == 1
    assert (
        twice.stdout
        == f"a stack is running already (PID {stack.proc.pid}): `make stack-down` stops it\n"
    )
    down = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stack", "down", "--dir", str(stack.base)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=_STOP_WAIT + 30,
        check=False,
    )
    assert (down.returncode, down.stdout.splitlines()[-1]) == (0, "stack stopped"), down
    _stopped(stack, pids)
    again = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stack", "down", "--dir", str(stack.base)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert again.returncode == 0 and "no stack running" in again.stdout


async def test_ctrl_c_stops_everything(stack: Running) -> None:
    """Ctrl-C in a terminal is SIGINT to the foreground process group: here, to the runner
    (the parts run in sessions of their own, so that the runner stops them in order)."""
    pids = await _started(stack)
    stack.proc.send_signal(signal.SIGINT)
    await asyncio.to_thread(_stopped, stack, pids)
    assert "SIGINT: stopping" in stack.output()


def test_a_taken_port_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    _require_packages()  # the stack looks for them first
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(HUB_PORT=str(port), HUB_DATA_DIR=str(tmp_path / "hub"))
        done = subprocess.run(
            [sys.executable, "-m", "stack", "--dir", str(tmp_path / "stack")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert (done.returncode, done.stderr) == (1, "")
    assert done.stdout == f"port {port} is taken (a `make run`?): stop it, or set HUB_PORT\n"
    assert not (tmp_path / "stack").exists()
