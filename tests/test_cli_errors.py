"""The command line where things go wrong: one line saying what, a nonzero exit, no traceback.

Every test runs the real entry point (``python -m hub``) in a process of its own, bounded by a
timeout: a command that would hang fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import orjson
import pytest

from core.models import Provider
from hub.secrets import SECRETS_FILE, resolve
from tests.harness.rabbitmq import RabbitNode, broker_required
from tests.support import SECRET, clean_env, event, run_hub, wait_until, write_journal


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path / "data")


def test_version_is_the_installed_package_s(env) -> None:
    proc = run_hub("--version", env=env)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"hub {metadata.version('callback-hub')}"


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("HUB_PORT", "abc", "HUB_PORT: Input should be a valid integer"),
        ("HUB_PORT", "70000", "HUB_PORT: Input should be less than or equal to 65535"),
        ("HUB_LOG_LEVEL", "LOUD", "HUB_LOG_LEVEL: Input should be"),
        ("HUB_SECRET_ISENDPRO", " , ", "HUB_SECRET_ISENDPRO is set but empty"),
    ],
)
def test_a_setting_the_hub_refuses_is_one_line_naming_it(env, variable, value, said) -> None:
    for command in (["serve"], ["urls", "--base", "https://h.example"], ["journal", "stats"]):
        proc = run_hub(*command, env={**env, variable: value})
        assert proc.returncode == 2, proc.stderr
        assert said in proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.splitlines()) == 1


def test_each_refused_setting_is_a_line_of_its_own(env) -> None:
    proc = run_hub("serve", env={**env, "HUB_FORWARD_BATCH": "0", "HUB_RETENTION": "-1"})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "hub: HUB_RETENTION: Input should be greater than 0 (got '-1')",
        "hub: HUB_FORWARD_BATCH: Input should be greater than 0 (got '0')",
    ]


def test_a_port_in_use_is_one_line_and_the_hub_stops(env) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_hub("serve", env={**env, "HUB_PORT": str(port)}, timeout=60)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "HUB_PORT" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_urls_where_the_hub_never_ran_says_so_and_makes_no_secret(env) -> None:
    proc = run_hub("urls", "--base", "https://h.example", env=env)
    assert proc.returncode == 1
    assert "has the hub run here?" in proc.stderr
    assert proc.stdout == ""
    assert not Path(env["HUB_DATA_DIR"]).exists()


def test_urls_reads_the_hub_s_secrets_without_writing(env) -> None:
    data_dir = Path(env["HUB_DATA_DIR"])
    made = resolve({}, data_dir)  # what the hub does at its first start
    before = (data_dir / SECRETS_FILE).stat()
    proc = run_hub("urls", "--base", "https://h.example", env=env)
    assert proc.returncode == 0
    assert f"https://h.example/callbacks/dmc/{made[Provider.DMC][0]}/cra" in proc.stdout
    assert (data_dir / SECRETS_FILE).stat().st_mtime_ns == before.st_mtime_ns

    # one provider missing from the file and not configured: said, not made up
    kept = orjson.loads((data_dir / SECRETS_FILE).read_bytes())
    del kept["ecall"]
    (data_dir / SECRETS_FILE).write_bytes(orjson.dumps(kept))
    proc = run_hub("urls", "--base", "https://h.example", env=env)
    assert proc.returncode == 1
    assert "no secret for ecall in" in proc.stderr
    assert "ecall" not in orjson.loads((data_dir / SECRETS_FILE).read_bytes())
    configured = run_hub(
        "urls", "--base", "https://h.example", env={**env, "HUB_SECRET_ECALL": SECRET}
    )
    assert configured.returncode == 0
    assert f"/callbacks/ecall/{SECRET}/notification" in configured.stdout


def test_urls_to_a_reader_gone_away_ends_quietly(env) -> None:
    """``hub urls | head -2``, the reader gone before the first line: no BrokenPipeError."""
    env = {**env, **{f"HUB_SECRET_{p.value.upper()}": SECRET for p in Provider}}
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hub", "urls", "--base", "https://h.example"],
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 0
    assert proc.stderr == ""


def test_quarantine_replay_of_an_unknown_number_says_so(env) -> None:
    write_journal(Path(env["HUB_DATA_DIR"]), [])
    for command in (["quarantine", "show", "999"], ["quarantine", "replay", "999"]):
        proc = run_hub(*command, env=env)
        assert proc.returncode == 1, command
        assert "no quarantined request #999" in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("url", ["notaurl", "http://127.0.0.1:5672/", "amqp:///", "amqp://h:x/"])
def test_a_broker_url_the_client_cannot_use_is_one_line(env, url) -> None:
    """The AMQP client would try such a URL again for ever (``hub tail``) or raise
    (``hub subscribe``): the settings refuse it, naming the variable, not repeating its value
    (it may hold a password)."""
    env = {**env, "HUB_RABBITMQ_URL": url}
    for command in (["tail", "--no-follow"], ["subscribe"], ["replay"], ["serve"]):
        proc = run_hub(*command, env=env)
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stderr.startswith("hub: HUB_RABBITMQ_URL: expected amqp://"), proc.stderr
        assert url not in proc.stderr
        assert "Traceback" not in proc.stderr


def test_subscribe_to_an_unreachable_broker_is_one_line(env) -> None:
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    proc = run_hub("subscribe", env={**env, "HUB_RABBITMQ_URL": f"amqp://127.0.0.1:{port}/"})
    assert proc.returncode == 1
    assert proc.stderr.startswith("hub subscribe: cannot reach the broker (AMQPConnectionError")
    assert "<" not in proc.stderr  # no repr of the exception
    assert len(proc.stderr.splitlines()) == 1


def test_urls_refuses_a_base_that_is_no_url(env) -> None:
    env = {**env, **{f"HUB_SECRET_{p.value.upper()}": SECRET for p in Provider}}
    proc = run_hub("urls", "--base", "hooks.example.com", env=env)
    assert proc.returncode == 2
    assert "expected http(s)://host" in proc.stderr
    assert proc.stdout == ""


def test_tail_following_the_journal_ends_when_its_reader_leaves(env) -> None:
    """``hub tail | head -1``: once head has its line, tail ends instead of waiting for an event
    that may never come (its next write would be the first to fail)."""
    write_journal(Path(env["HUB_DATA_DIR"]), [event(1)])
    tail = subprocess.Popen(
        [sys.executable, "-m", "hub", "tail"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stdout is not None
        assert "isendpro.sms.delivery.delivered" in tail.stdout.readline()  # now following
        tail.stdout.close()  # the reader leaves
        assert tail.wait(timeout=30) == 0
        assert tail.stderr is not None
        assert "Traceback" not in tail.stderr.read()
    finally:
        tail.kill()
        tail.communicate()


@pytest.fixture
def silent_broker() -> Iterator[int]:
    """A loopback port that takes connections and never answers (no AMQP behind it)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        yield listening.getsockname()[1]


def test_a_broker_that_never_answers_is_one_line_not_a_hang(env, silent_broker) -> None:
    """The connection attempt times out (10 s; the subscription's, 30 s): aio-pika's
    reconnection task would then try again for ever (tail, replay), the subscription wait for
    ever, and the command never end."""
    env = {**env, "HUB_RABBITMQ_URL": f"amqp://127.0.0.1:{silent_broker}/"}
    write_journal(Path(env["HUB_DATA_DIR"]), [event(1)])
    for command, said in (
        (["tail", "--no-follow"], "hub tail: cannot reach the broker (TimeoutError)"),
        (["replay"], "hub replay: cannot reach the broker (TimeoutError): nothing replayed"),
        (["subscribe"], "hub subscribe: cannot reach the broker (TimeoutError)"),  # after 30 s
    ):
        proc = run_hub(*command, env=env, timeout=90)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.strip() == said


def test_forward_where_the_hub_never_ran_says_so(env) -> None:
    proc = run_hub("forward", env={**env, "HUB_RABBITMQ_URL": "amqp://127.0.0.1:1/"})
    assert proc.returncode == 1
    assert "has the hub run here?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_forward_stops_on_sigterm_while_the_broker_is_away(env) -> None:
    """Its connection attempt is cancelled as it stops: nothing may keep trying after it."""
    write_journal(Path(env["HUB_DATA_DIR"]), [event(1)])
    forward = subprocess.Popen(
        [sys.executable, "-m", "hub", "forward"],
        env={**env, "HUB_RABBITMQ_URL": "amqp://127.0.0.1:1/"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert forward.stderr is not None
        for line in forward.stderr:  # trying the broker: it is running, not starting
            if "broker not usable" in line:
                break
        forward.send_signal(signal.SIGTERM)
        assert forward.wait(timeout=30) == 0
    finally:
        forward.kill()
        forward.communicate()


@pytest.mark.parametrize("count", ["0", "-1", "x"])
def test_subscribe_refuses_a_count_it_would_never_reach(env, count) -> None:
    env = {**env, "HUB_RABBITMQ_URL": "amqp://127.0.0.1:1/"}
    proc = run_hub("subscribe", "--count", count, env=env)
    assert proc.returncode == 2
    assert f"argument --count: '{count}': expected a number of events, 1 or more" in proc.stderr


def _loaded(pid: int, library: str) -> bool:
    """The process has mapped a shared library whose path contains ``library``."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("entry", ["python -m hub", "hub"])
def test_ctrl_c_while_hub_serve_starts_is_one_line(env, entry: str) -> None:
    """Ctrl-C while ``hub serve`` imports its command line (pydantic's core is loaded: the
    import is under way, a second before the hub serves): one line, exit code 130."""
    script = Path(sys.executable).parent / "hub"
    command = [sys.executable, "-m", "hub"] if entry != "hub" else [str(script)]
    if entry == "hub" and not script.exists():
        pytest.fail(f"{script} missing: the package is not installed in this environment")
    serve = subprocess.Popen(
        [*command, "serve"],
        env={**env, "HUB_PORT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: _loaded(serve.pid, "_pydantic_core"), 30, failure=lambda: "not loaded")
        serve.send_signal(signal.SIGINT)
        out, err = serve.communicate(timeout=30)
    finally:
        serve.kill()
        serve.communicate()
    assert (serve.returncode, out, err) == (130, "", "hub: interrupted\n")


class ClosingPort:
    """A port that takes connections and closes them at once (a broker not usable): counts the
    client's tries, one each."""

    def __init__(self, port: int) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.tries = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # closed: the test is done with it
            while True:
                conn, _ = self.server.accept()
                conn.close()
                self.tries += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self._thread.join(timeout=10)


@pytest.mark.broker
def test_forward_says_once_that_the_broker_is_away_and_once_that_it_is_back(
    env, tmp_path: Path
) -> None:
    """``hub forward`` tries the broker every second while it is away: one line says so, one
    says it is connected when it is back; the client libraries say nothing at each try."""
    node = RabbitNode(tmp_path / "rabbitmq")
    away = ClosingPort(node.port)
    write_journal(Path(env["HUB_DATA_DIR"]), [event(1)])
    forward = subprocess.Popen(
        [sys.executable, "-m", "hub", "forward"],
        env={**env, "HUB_RABBITMQ_URL": node.url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert forward.stderr is not None
    reading = threading.Thread(target=lambda: lines.extend(forward.stderr), daemon=True)
    reading.start()
    try:
        wait_until(lambda: away.tries >= 3, failure=lambda: "\n".join(lines))
        away.close()
        try:
            node.start()
        except (RuntimeError, OSError) as exc:
            if broker_required():
                pytest.fail(f"RabbitMQ could not start: {exc}")
            pytest.skip(f"RabbitMQ could not start: {exc}")
        wait_until(
            lambda: any("connected to the broker" in line for line in lines),
            60,
            failure=lambda: "\n".join(lines),
        )
        forward.send_signal(signal.SIGTERM)
        assert forward.wait(timeout=30) == 0
    finally:
        forward.kill()
        forward.wait(timeout=10)
        reading.join(timeout=10)
        forward.stderr.close()
        away.close()
        node.stop()
    said = "".join(lines)
    assert said.count("broker not usable") == 1, said
    assert said.count("connected to the broker") == 1, said
    assert not [line for line in lines if " aiormq" in line or " aio_pika" in line], said
