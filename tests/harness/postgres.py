"""Throwaway PostgreSQL server for integration tests (issue 19's shared index).

Runs Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``): ``initdb`` a
cluster in a directory of its own, run ``postgres`` on a free port of 127.0.0.1 (TCP only, no
Unix socket) as a child of the test process, stop it by its postmaster's PID. ``initdb`` and
``postgres`` refuse to run as root: as root, the cluster's directory belongs to the
``postgres`` user and both run through ``runuser -u postgres --``. The directory is made under
the system's temporary directory, not in pytest's ``tmp_path`` (which only root may enter),
and removed by :meth:`PostgresServer.close`.

Authentication is ``trust`` for the cluster's one role, ``hub``: the server listens on loopback
only and lives as long as a test. Usage (start/stop/restart block for a second or so: from
async code use ``await asyncio.to_thread(server.restart)``)::

    with PostgresServer() as server:
        dsn = server.url          # postgresql://hub@127.0.0.1:PORT/hub
        ...
        server.kill()             # SIGKILL of the postmaster: a crash
        server.start()            # same port, same data: recovery
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from .ports import free_port

__all__ = ["PostgresServer", "alive", "postgres_bin", "postgres_required"]

ROLE = "hub"
DATABASE = "hub"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0
_LOG_TAIL_LINES = 40


def postgres_required() -> bool:
    """True when tests must fail (not skip) if the server cannot start (CI, or
    ``HUB_REQUIRE_BROKER=1``, which ``make test`` sets for every real component)."""
    ci = os.environ.get("CI", "").strip().lower() in {"true", "1"}
    return ci or os.environ.get("HUB_REQUIRE_BROKER", "").strip() == "1"


def postgres_bin() -> Path | None:
    """The newest installed server's ``bin`` directory, if any."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


class PostgresError(RuntimeError):
    """The server could not be made, started or stopped (the log's tail in the message)."""


class PostgresServer:
    """One cluster, one role and database (``hub``), from :meth:`start` to :meth:`close`."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or postgres_bin()
        if found is None:
            raise PostgresError("PostgreSQL is not installed (Debian package postgresql)")
        self.bin = found
        self.port = free_port()
        self.base_dir = Path(tempfile.mkdtemp(prefix="hub-postgres-"))
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "server.log"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.base_dir, "postgres", "postgres")
        self._made = False
        self._process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        """The postmaster's PID while it runs."""
        atexit.register(self.close)

    @property
    def url(self) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    # -- life --------------------------------------------------------------------------------

    def start(self) -> None:
        """Makes the cluster (the first time), starts it, waits until it takes connections.

        The postmaster runs as this process's child (through ``runuser`` as root), so that its
        end is reaped here and its PID never outlives it (a zombie's PID would make the next
        start refuse: another postmaster seems to run)."""
        if not self._made:
            self._initdb()
        log = self.log_file.open("ab")
        try:
            self._process = subprocess.Popen(  # the installed server, on loopback only
                [
                    *self._as_postgres,
                    str(self.bin / "postgres"),
                    "-D", str(self.data_dir),
                    "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1",
                    "-c", "unix_socket_directories=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
            )  # fmt: skip
        finally:
            log.close()
        self._wait_ready()
        if not self._made:
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE, DATABASE)
            self._made = True

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster, by its PID); SIGKILL if it is not over
        within the timeout."""
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        if not self._ended(_STOP_TIMEOUT):
            self._kill(pid)
        self.pid = None

    def kill(self) -> None:
        """SIGKILL of the postmaster and its children (a crash)."""
        if self.pid is not None:
            self._kill(self.pid)
            self.pid = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stops the server and removes its directory."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------------

    def psql(self, sql: str) -> str:
        """Runs ``sql`` with ``psql`` (no driver needed); its unaligned, tuples-only output."""
        return self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE, "-d", DATABASE,
            "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql,
        )  # fmt: skip

    def _initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", ROLE, "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip

    def _run(self, tool: str, *args: str) -> str:
        command = [*self._as_postgres, str(self.bin / tool), *args]
        done = subprocess.run(  # the installed server's own tools
            command,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT + 10,
            cwd=self.base_dir,
            check=False,
        )
        if done.returncode != 0:
            raise PostgresError(
                f"{tool} {args[0] if args else ''} failed ({done.returncode}): "
                f"{done.stderr.strip()[-2000:]}\n{self._log_tail()}"
            )
        return done.stdout

    def _wait_ready(self) -> None:
        """Until ``pg_isready`` says the server takes connections (and its PID is known)."""
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise PostgresError(
                    f"postgres exited ({self._process.returncode})\n{self._log_tail()}"
                )
            ready = subprocess.run(  # the installed server's own tool
                [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
                timeout=10,
            )
            if ready.returncode == 0:
                self.pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
                return
            time.sleep(0.1)  # polling the server's readiness, the condition itself
        raise PostgresError(f"postgres not ready within {_START_TIMEOUT} s\n{self._log_tail()}")

    def _ended(self, timeout: float) -> bool:
        """The postmaster's process (our child, or ``runuser``'s) has ended and is reaped."""
        if self._process is None:
            return True
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        self._process = None
        return True

    def _kill(self, pid: int) -> None:
        """SIGKILL of the postmaster and its children (a crash of the machine ends them all; a
        child left alive would keep the shared memory that the next start must have)."""
        doomed = [pid, *_children(pid)]
        for each in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        self._ended(_STOP_TIMEOUT)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while any(alive(each) for each in doomed) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling processes we killed until the kernel has ended them

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-_LOG_TAIL_LINES:])


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (ended, not reaped yet: gone for us)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found
