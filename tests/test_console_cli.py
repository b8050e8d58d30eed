"""The console's address, as a new user gets it: ``hub serve`` prints it once it listens (one
line on standard output, the token in it, as Jupyter does), ``hub console-url`` prints it
again; the token is in no other line the hub writes."""

from __future__ import annotations

import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from hub import operator
from hub.cli.console import announce
from tests.harness.hubproc import HubProcess
from tests.support import CONSOLE_TOKEN, clean_env, make_settings, run_hub


def test_hub_serve_prints_the_console_s_address_and_console_url_again(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "data")  # no HUB_CONSOLE_TOKEN: the hub makes one
    hub.start()
    try:
        token = operator.stored(hub.data_dir)
        assert token is not None
        expected = f"http://127.0.0.1:{hub.port}/console/?token={token}"
        lines = hub.log_file.read_text().splitlines()
        assert [line for line in lines if token in line] == [f"console: {expected}"]
        proc = run_hub("console-url", env=hub.env, check=True)
        assert proc.stdout == expected + "\n"
        proc = run_hub("console-url", "--base", "https://hub.example.com/", env=hub.env)
        assert proc.stdout == f"https://hub.example.com/console/?token={token}\n"
        # the address logs in: the session cookie comes back, the token leaves the address
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(expected, timeout=10) as answer:
            assert answer.status == 200
            assert answer.url == f"http://127.0.0.1:{hub.port}/console/overview"
        assert [c.name for c in jar] == [operator.COOKIE]
    finally:
        assert hub.terminate() == 0, hub.log_tail()
    assert [line for line in hub.log_file.read_text().splitlines() if token in line] == [
        f"console: {expected}"
    ]


def test_console_url_where_no_hub_ran_says_so(tmp_path: Path) -> None:
    proc = run_hub("console-url", env=clean_env(tmp_path / "nothing"))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "HUB_CONSOLE_TOKEN" in proc.stderr
    configured = {**clean_env(tmp_path / "nothing"), "HUB_CONSOLE_TOKEN": "set-by-the-operator"}
    proc = run_hub("console-url", env=configured, check=True)
    assert proc.stdout == "http://127.0.0.1:8080/console/?token=set-by-the-operator\n"
    assert not (tmp_path / "nothing").exists(), "console-url writes nothing"


def test_a_token_the_operator_set_is_not_printed_at_start(tmp_path: Path, capsys) -> None:
    announce(make_settings(tmp_path, host="0.0.0.0"), CONSOLE_TOKEN, 8123)  # noqa: S104
    out = capsys.readouterr().out
    assert out.startswith("console: http://127.0.0.1:8123/console/ ")
    assert CONSOLE_TOKEN not in out and "HUB_CONSOLE_TOKEN" in out
    announce(make_settings(tmp_path, console_token=None), "made-by-the-hub-0123", 8123)
    assert capsys.readouterr().out == (
        "console: http://127.0.0.1:8123/console/?token=made-by-the-hub-0123\n"
    )
