"""The PostgreSQL harness (``tests/harness/postgres.py``): a real server on loopback, data kept
across a restart and a crash, nothing left once closed."""

from __future__ import annotations

import socket

import pytest

from tests.harness.postgres import (
    PostgresError,
    PostgresServer,
    alive,
    postgres_bin,
    postgres_required,
)


@pytest.fixture
def server():
    if postgres_bin() is None and not postgres_required():
        pytest.skip("PostgreSQL is not installed (make system-packages installs it)")
    with PostgresServer() as server:
        yield server


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_throwaway_server_keeps_its_data_across_a_restart_and_a_crash(server) -> None:
    server.psql("CREATE TABLE t (n integer); INSERT INTO t VALUES (1), (2)")
    server.restart()
    assert server.psql("SELECT sum(n) FROM t").strip() == "3"
    server.kill()
    assert not _listening(server.port)
    server.start()  # crash recovery from the WAL
    assert server.psql("SELECT count(*) FROM t").strip() == "2"
    assert server.url == f"postgresql://hub@127.0.0.1:{server.port}/hub"


def test_closing_stops_the_server_by_pid_and_removes_its_directory() -> None:
    if postgres_bin() is None and not postgres_required():
        pytest.skip("PostgreSQL is not installed (make system-packages installs it)")
    server = PostgresServer()
    server.start()
    pid, port, base = server.pid, server.port, server.base_dir
    assert pid is not None and _listening(port)
    server.close()
    assert not _listening(port)
    assert not base.exists()
    assert not alive(pid)


def test_an_error_says_which_tool_failed() -> None:
    if postgres_bin() is None and not postgres_required():
        pytest.skip("PostgreSQL is not installed (make system-packages installs it)")
    with PostgresServer() as server, pytest.raises(PostgresError, match="psql"):
        server.psql("SELECT * FROM no_such_table")
