"""A real ``hub serve`` process for process-level tests (crash, SIGTERM, restarts).

Runs ``python -m hub serve`` with the interpreter running the tests, on a free loopback port,
every provider's callback secret being ``tests.support.SECRET``. Its output goes to
``hub.log`` in the data directory (appended across restarts) and is quoted in failures.

Usage (``start`` blocks until ``/health/ready`` answers 200; ``terminate`` and ``kill`` wait for
the exit, so from async code run them with ``asyncio.to_thread``)::

    with HubProcess(tmp_path / "data", {"HUB_FORWARD_BATCH": "32"}) as hub:
        ...  # requests to hub.url
        assert hub.terminate() == 0  # SIGTERM; hub.kill() is SIGKILL
        hub.start()  # same port, same data directory
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from core.models import Provider
from tests.harness.ports import free_port
from tests.support import SECRET

__all__ = ["HubProcess"]

_STOP_WAIT = 30.0
_LOG_TAIL_LINES = 40


class HubProcess:
    """``hub serve`` on ``data_dir``; ``env_overrides`` are set last (``HUB_*`` variables)."""

    def __init__(
        self,
        data_dir: Path,
        env_overrides: Mapping[str, str] | None = None,
        *,
        rabbitmq_url: str | None = None,
        log_file: Path | None = None,
        nofile: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.log_file = Path(log_file) if log_file is not None else self.data_dir / "hub.log"
        """``hub.log`` in the data directory unless given (outside a file system the test fills
        or freezes)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update({f"HUB_SECRET_{p.value.upper()}": SECRET for p in Provider})
        env.update(HUB_PORT=str(free_port()), HUB_DATA_DIR=str(self.data_dir))
        if rabbitmq_url is not None:
            env["HUB_RABBITMQ_URL"] = rabbitmq_url
        env.update(env_overrides or {})
        self.env: dict[str, str] = env
        """The process's environment (also right for ``hub tail``, ``hub journal stats``...)."""
        self.port = int(env["HUB_PORT"])
        """A free port, or ``HUB_PORT`` of ``env_overrides``; kept across restarts."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._prefix = ["prlimit", f"--nofile={nofile}", "--"] if nofile is not None else []
        """``nofile``: the process's limit of file descriptors (soft and hard), set by
        util-linux's ``prlimit``."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def children(self) -> list[int]:
        """PIDs of the hub's child processes (its pipeline worker, `hub forward`)."""
        if self.pid is None:
            return []
        found: list[int] = []
        for task in Path(f"/proc/{self.pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found += [int(pid) for pid in task.read_text().split()]
        return found

    def start(self, timeout: float = 30) -> None:
        """Starts the process and waits until ``/health/ready`` answers 200."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self._proc = subprocess.Popen(
                [*self._prefix, sys.executable, "-m", "hub", "serve"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None:
                code = self._proc.returncode
                raise RuntimeError(f"hub exited with code {code} at start\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"hub not ready within {timeout} s\n{self.log_tail()}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def terminate(self, timeout: float = _STOP_WAIT) -> int:
        """SIGTERM (a graceful stop); returns the exit code. SIGKILL if it outlasts ``timeout``."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL (a crash); returns the exit code (``-9``)."""
        return self._signal(signal.SIGKILL, _STOP_WAIT)

    def _signal(self, sig: signal.Signals, timeout: float) -> int:
        proc = self._proc
        if proc is None:
            raise RuntimeError("hub not started")
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=_STOP_WAIT)
        return proc.returncode

    def stop(self) -> None:
        """Teardown: SIGTERM if still running, SIGKILL if that does not end it. Idempotent."""
        if self.running:
            self.terminate(timeout=10)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of the process's output, for failure messages."""
        try:
            text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no output at {self.log_file})"
        return f"--- {self.log_file} (last {len(text)} lines) ---\n" + "\n".join(text)

    def __enter__(self) -> HubProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
