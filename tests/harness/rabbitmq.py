"""Throwaway RabbitMQ node for integration tests.

Runs the Debian ``rabbitmq-server`` package (3.10) from
``/usr/lib/rabbitmq/bin`` as the current user (root in CI, no systemd), fully
isolated under one directory: private ``HOME`` (Erlang cookie), data, logs,
config, ports and a private ``epmd`` on its own port.

Usage (start/stop/restart block for seconds: from async code use
``await asyncio.to_thread(node.restart)``)::

    with RabbitNode(tmp_path / "rabbit") as node:
        conn = await aio_pika.connect_robust(node.url)
        ...
        node.restart()  # same ports, node name and data dir: durable queues survive
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import signal
import socket
import string
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from .ports import free_port

__all__ = ["RABBITMQ_BIN", "RabbitNode", "broker_required", "rabbitmq_available"]

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
"""Unwrapped scripts; the ``/usr/sbin`` wrappers switch user and break the cookie."""

_EPMD = "epmd"
_SHUTDOWN_TIMEOUT = 30.0
_KILL_WAIT = 10.0
_LOG_TAIL_LINES = 40

# Environment variables the rabbitmq scripts / rabbit_env read that we must
# not inherit from the caller (e.g. NOTIFY_SOCKET switches to systemd mode).
_STRIP_PREFIXES = ("RABBITMQ_", "ERL_")
_STRIP_NAMES = frozenset(
    {"CONF_ENV_FILE", "NOTIFY_SOCKET", "NODENAME", "NODE_PORT", "NODE_IP_ADDRESS", "ERLANG_COOKIE"}
)

# HTTP listeners of plugins that default to 0.0.0.0: pinned to loopback and a
# free port when the plugin is enabled.
_HTTP_PLUGINS = {"rabbitmq_prometheus": "prometheus", "rabbitmq_management": "management"}


def broker_required() -> bool:
    """True when tests must fail (not skip) if the broker cannot start."""
    ci = os.environ.get("CI", "").strip().lower() in {"true", "1"}
    return ci or os.environ.get("HUB_REQUIRE_BROKER", "").strip() == "1"


def rabbitmq_available() -> bool:
    """True when the rabbitmq-server scripts are installed on this machine."""
    return (RABBITMQ_BIN / "rabbitmq-server").exists() and (RABBITMQ_BIN / "rabbitmqctl").exists()


class RabbitNode:
    """A single RabbitMQ node living entirely under ``base_dir``."""

    def __init__(self, base_dir: Path, plugins: Sequence[str] = ()) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.plugins: tuple[str, ...] = tuple(plugins)
        self.nodename = f"hubtest-{secrets.token_hex(4)}@localhost"
        self._pick_ports()
        self._started_once = False
        self.home = self.base_dir / "home"
        self.mnesia_base = self.base_dir / "mnesia"
        self.log_base = self.base_dir / "log"
        self.pid_file = self.base_dir / "rabbitmq.pid"
        self.config_file = self.base_dir / "rabbitmq.conf"
        self.plugins_file = self.base_dir / "enabled_plugins"
        self.stdout_log = self.base_dir / "node-stdout.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] = self._build_env()

    def _pick_ports(self) -> None:
        ports = _distinct_free_ports(3 + len(_HTTP_PLUGINS))
        self._port, self.dist_port, self.epmd_port = ports[:3]
        # e.g. {"rabbitmq_prometheus": 40123}; only for enabled plugins.
        self.plugin_ports: dict[str, int] = {
            plugin: port
            for plugin, port in zip(_HTTP_PLUGINS, ports[3:], strict=True)
            if plugin in self.plugins
        }

    # -- properties ---------------------------------------------------------

    @property
    def port(self) -> int:
        """AMQP port (127.0.0.1)."""
        return self._port

    @property
    def url(self) -> str:
        """AMQP URL for the default guest user and vhost."""
        return f"amqp://guest:guest@127.0.0.1:{self._port}/"

    @property
    def running(self) -> bool:
        """True while the node's OS process (started by us) is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def env(self) -> Mapping[str, str]:
        """Environment used for the node and its ctl commands."""
        return self._env

    # -- lifecycle ----------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start the node and block until it accepts AMQP connections.

        A port taken by someone else between choosing it and binding it (``eaddrinuse``) makes
        a first start try again on fresh ports; a restart keeps its ports (clients know them).
        """
        for attempt in range(3):
            try:
                self._start(timeout)
            except RuntimeError as exc:
                if self._started_once or "eaddrinuse" not in str(exc) or attempt == 2:
                    raise
                self._pick_ports()
                self._env = self._build_env()
            else:
                self._started_once = True
                return

    def _start(self, timeout: float) -> None:
        if self.running:
            return
        deadline = time.monotonic() + timeout
        self._prepare_files()
        with open(self.stdout_log, "ab") as out:
            self._proc = subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                env=self._env,
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # no Ctrl-C from the terminal; atexit stops it
            )
        atexit.register(self.stop)
        try:
            self._wait_ready(deadline)
        except BaseException as exc:
            detail = self.log_tail()
            self._stop(graceful=False)
            if isinstance(exc, RuntimeError):
                raise RuntimeError(f"{exc}\n{detail}") from None
            raise

    def stop(self) -> None:
        """Stop the node and our private epmd. Idempotent; safe after a failed start."""
        self._stop(graceful=True)

    def _stop(self, *, graceful: bool) -> None:
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            if graceful:
                with contextlib.suppress(RuntimeError, OSError):
                    self._ctl_run(["shutdown"], timeout=_SHUTDOWN_TIMEOUT)
            try:
                proc.wait(timeout=_KILL_WAIT if graceful else 0)
            except subprocess.TimeoutExpired:
                _kill_pids([proc.pid, *self._pids(epmd=False)])
                proc.wait(timeout=_KILL_WAIT)
        # erl_child_setup, inet_gethost, the disk monitor's sh... run in their
        # own sessions; they exit on EOF from beam, else we kill them.
        _wait_gone(lambda: self._pids(epmd=False), _KILL_WAIT)
        _kill_pids(self._pids(epmd=False))
        self._stop_epmd()

    def restart(self, timeout: float = 60) -> None:
        """Stop and start again on the same ports, node name and data dir."""
        self.stop()
        self.start(timeout=timeout)

    def __enter__(self) -> RabbitNode:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inspection ---------------------------------------------------------

    def rabbitmqctl(self, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n <node> ARGS`` and return stdout; RuntimeError on failure."""
        return self._ctl_run(list(args), timeout=timeout)

    def pids(self) -> list[int]:
        """Live (non-zombie) PIDs we started for this node, epmd and ctl included.

        Found by our unique ``RABBITMQ_NODENAME`` in ``/proc/<pid>/environ``:
        beam's port programs run in their own sessions, epmd is a daemon.
        """
        return self._pids()

    def beam_pid(self) -> int | None:
        """PID of the Erlang VM from the pid file, if present."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Last lines of the node's stdout and log files, for error messages."""
        parts = []
        files = [self.stdout_log, *sorted(self.log_base.glob("*.log"))]
        for path in files:
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts.append(f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text))
        crash = self.base_dir / "erl_crash.dump"
        if crash.exists():
            parts.append(f"--- crash dump: {crash} ---")
        return "\n".join(parts) or f"(no logs under {self.base_dir})"

    # -- internals ----------------------------------------------------------

    def _build_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_STRIP_PREFIXES) and k not in _STRIP_NAMES
        }
        loopback = "-kernel inet_dist_use_interface {127,0,0,1}"
        env.update(
            HOME=str(self.home),
            RABBITMQ_CONF_ENV_FILE=str(self.base_dir / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(self.config_file),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base_dir / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.plugins_file),
            RABBITMQ_MNESIA_BASE=str(self.mnesia_base),
            RABBITMQ_LOG_BASE=str(self.log_base),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self._port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            # Distribution listeners on loopback only (node and CLI).
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=loopback,
            RABBITMQ_CTL_ERL_ARGS=loopback,
            # CLI dist port: ephemeral instead of the shared 35672-35682 range.
            RABBITMQ_CTL_DIST_PORT_MIN="0",
            RABBITMQ_CTL_DIST_PORT_MAX="0",
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_CRASH_DUMP=str(self.base_dir / "erl_crash.dump"),
        )
        if "LC_ALL" not in env and "LANG" not in env:
            env["LANG"] = "C.UTF-8"  # avoids the CLI's latin1 encoding warning
        return env

    def _prepare_files(self) -> None:
        for d in (self.base_dir, self.home, self.mnesia_base, self.log_base):
            d.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            # Pre-create it: node and CLI start concurrently and would otherwise
            # race to create two different cookies ("Invalid challenge reply").
            alphabet = string.ascii_uppercase + string.digits
            cookie.write_text("".join(secrets.choice(alphabet) for _ in range(20)))
            cookie.chmod(0o400)
        # Stale pid file would make `rabbitmqctl wait` watch a dead PID.
        self.pid_file.unlink(missing_ok=True)
        (self.base_dir / "rabbitmq-env.conf").write_text("")  # ignore /etc/rabbitmq's
        plugins = ",".join(self.plugins)
        self.plugins_file.write_text(f"[{plugins}].\n")
        conf = [
            "loopback_users.guest = true",
            "listeners.ssl = none",
            "log.console = false",
            "log.file.level = info",
            # CI disks can be small; don't block publishers on free space.
            "disk_free_limit.absolute = 1MB",
        ]
        for plugin, port in self.plugin_ports.items():
            prefix = _HTTP_PLUGINS[plugin]
            conf += [f"{prefix}.tcp.ip = 127.0.0.1", f"{prefix}.tcp.port = {port}"]
        self.config_file.write_text("\n".join(conf) + "\n")

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        remaining = max(1, int(deadline - time.monotonic()))
        ctl = self._ctl_popen(["wait", str(self.pid_file), "--timeout", str(remaining)])
        try:
            while ctl.poll() is None:
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"rabbitmq node {self.nodename} exited with code {self._proc.returncode}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rabbitmq node {self.nodename} not ready in time")
                time.sleep(0.1)
        finally:
            ctl_out = _finish(ctl)
        if ctl.returncode != 0:
            raise RuntimeError(
                f"`rabbitmqctl wait` failed ({ctl.returncode}) for {self.nodename}:\n{ctl_out}"
            )
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self._port), timeout=1):
                    return
            except OSError as exc:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"AMQP port {self._port} of {self.nodename} not accepting: {exc}"
                    ) from None
                time.sleep(0.1)

    def _ctl_popen(self, args: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.nodename, *args],
            env=self._env,
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _ctl_run(self, args: list[str], timeout: float) -> str:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        ctl = self._ctl_popen(args)
        try:
            out, _ = ctl.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _finish(ctl)
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} timed out after {timeout}s") from None
        text = out.decode(errors="replace")
        if ctl.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({ctl.returncode}):\n{text}")
        return text

    def _pids(self, *, epmd: bool = True) -> list[int]:
        marker = f"RABBITMQ_NODENAME={self.nodename}".encode()
        return [pid for pid, comm in _marked_pids(marker) if epmd or comm != "epmd"]

    def _stop_epmd(self) -> None:
        if not self._pids():
            return
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [_EPMD, "-kill"],  # reaches only ours: ERL_EPMD_PORT is in env
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        _wait_gone(self._pids, 5.0)
        _kill_pids(self._pids())


# -- process helpers (Linux /proc) -------------------------------------------


def _distinct_free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rindex(")") + 2 :][:1] not in ("Z", "X")


def _marked_pids(marker: bytes) -> list[tuple[int, str]]:
    """(pid, comm) of live processes whose environment contains ``marker``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if marker in environ and _alive(pid):
            out.append((pid, comm))
    return out


def _wait_gone(get_pids: Callable[[], list[int]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while get_pids() and time.monotonic() < deadline:
        time.sleep(0.05)


def _kill_pids(pids: Sequence[int]) -> None:
    """SIGKILL the given PIDs (all ours) and wait until they are gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_gone(lambda: [p for p in pids if _alive(p)], _KILL_WAIT)


def _finish(proc: subprocess.Popen[bytes]) -> str:
    """Make sure ``proc`` (and its process group) is dead and return its output."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    try:
        out, _ = proc.communicate(timeout=_KILL_WAIT)
    except subprocess.TimeoutExpired:
        return ""
    return (out or b"").decode(errors="replace")
