"""Processes of the benchmark: servers started and stopped by PID, CPU pinning, RSS, metrics."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from core.models import Provider

SECRET = "bench-secret-0123456789"  # noqa: S105 - a throwaway hub's, on loopback
"""Every provider's callback secret in the benchmark's hub."""


def pin(pid: int, cpu: int | None) -> None:
    """Pins every thread of ``pid`` to one CPU (no-op when ``cpu`` is None)."""
    if cpu is not None:
        subprocess.run(  # noqa: S603 - taskset from util-linux, our own PID
            ["taskset", "-a", "-p", "-c", str(cpu), str(pid)],  # noqa: S607 - on PATH
            check=True,
            stdout=subprocess.DEVNULL,
        )


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    """The PIDs of ``pid``'s child processes."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def child(pid: int, timeout: float = 30.0) -> int:
    """The one child process of ``pid`` (a hub's forwarder), once it has started."""
    deadline = time.monotonic() + timeout
    while not (found := children(pid)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} started no child in {timeout}s")
        time.sleep(0.05)
    return found[0]


def fsync_latency(directory: Path, seconds: float) -> dict[str, float]:
    """Milliseconds an ``fsync`` of a 4 KiB append takes in ``directory`` (percentiles, max)."""
    path = directory / "fsync-probe"
    took: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            os.write(fd, b"\0" * 4096)
            started = time.perf_counter()
            os.fsync(fd)
            took.append((time.perf_counter() - started) * 1e3)
    finally:
        os.close(fd)
        path.unlink()
    took.sort()
    n = len(took)
    return {
        "syncs": n,
        **{f"p{q}_ms": round(took[min(int(n * q / 100), n - 1)], 3) for q in (50, 99, 99.9)},
        "max_ms": round(took[-1], 3),
    }


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) ``pid`` has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy() -> float:
    """CPU-seconds the whole machine has been busy (all CPUs, anyone's processes), per
    ``/proc/stat``: everything but idle and iowait."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited ({proc.returncode}) before listening") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listening on {port} after {timeout}s") from None
            time.sleep(0.05)


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Waits until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=2) as answer,  # noqa: S310 - loopback
        ):
            if answer.status == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready after {timeout}s")
        time.sleep(0.1)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
        return str(answer.read().decode())


@contextlib.contextmanager
def server(
    argv: list[str],
    port: int,
    *,
    cpu: int | None,
    env: Mapping[str, str] | None = None,
    log: Path,
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process listening on ``port``, pinned to ``cpu``; stopped by PID at exit."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            argv,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        pin(proc.pid, cpu)
        wait_port(port, proc)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def hub_env(port: int, data_dir: Path, rabbitmq_url: str | None) -> dict[str, str]:
    """``hub serve``'s environment: loopback port, throwaway data dir, every provider's secret."""
    env = {
        "HUB_HOST": "127.0.0.1",
        "HUB_PORT": str(port),
        "HUB_DATA_DIR": str(data_dir),
        "HUB_LOG_LEVEL": "WARNING",
        **{f"HUB_SECRET_{p.value.upper()}": SECRET for p in Provider},
    }
    if rabbitmq_url:
        env["HUB_RABBITMQ_URL"] = rabbitmq_url
    return env
