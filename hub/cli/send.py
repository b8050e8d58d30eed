"""``hub send``: a provider's sample (or a file) sent to a running hub as the provider sends it,
and what the provider hears back, with the events the hub journaled for it."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

from core.display import describe
from core.models import Event, Provider
from hub import journaled, samples
from hub.cli import remote
from hub.endpoints import Endpoint, endpoints
from hub.samples import Sample
from hub.settings import Settings
from parsers.base import Callback
from sinks import journal as journal_store


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser(
        "send",
        help="send a provider's sample (or a file) to the running hub, show the answer",
        description="Without CALLBACK (or with --list): what can be sent.",
    )
    send.add_argument("provider", nargs="?", choices=[p.value for p in Provider])
    send.add_argument("callback", nargs="?", help="the callback (as `hub urls` names it)")
    what = send.add_mutually_exclusive_group()
    what.add_argument("--sample", help="a sample's name (see --list); default: a documented one")
    what.add_argument(
        "--file", type=Path, help="send this file: the query string of a GET, else the body"
    )
    send.add_argument("--list", action="store_true", help="list the samples, send nothing")
    send.add_argument("--method", type=str.upper, help="with --file: the HTTP method")
    send.add_argument("--content-type", help="with --file: the Content-Type of a body")
    send.add_argument("--url", help="the hub's base URL (default: HUB_HOST and HUB_PORT's)")
    send.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the answer")
    send.add_argument("--json", action="store_true", help="answer and events as one JSON document")
    send.set_defaults(run=send_command)


def send_command(args: argparse.Namespace) -> int:
    provider = Provider(args.provider) if args.provider else None
    if args.list or provider is None or args.callback is None:
        return _list(provider)
    endpoint = next(
        (e for e in endpoints() if e.provider is provider and e.callback.name == args.callback),
        None,
    )
    if endpoint is None:
        names = ", ".join(c.name for c in _callbacks(provider))
        print(
            f"{provider.value} has no callback {args.callback!r} (it has: {names})", file=sys.stderr
        )
        return 2
    try:
        outgoing = _what(endpoint, args)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    settings = Settings()
    try:
        secret = remote.read_secrets(settings)[provider][0]
        base = remote.base_url(settings, args.url)
        return _send(settings, base, endpoint, secret, outgoing, args)
    except (remote.NoSecrets, remote.Unreachable) as exc:
        print(exc, file=sys.stderr)
        return 1


def _callbacks(provider: Provider) -> list[Callback]:
    return [e.callback for e in endpoints() if e.provider is provider]


@dataclass(frozen=True)
class Outgoing:
    """What is sent: method, content type, the query string or the body, and what it is."""

    method: str
    content_type: str
    data: bytes
    in_query: bool
    label: str


def _list(provider: Provider | None) -> int:
    """One line per sample: provider, callback, name, where it comes from, what it gives."""
    defaults = {
        (e.provider, e.callback.name): samples.default(e.provider, e.callback.name)
        for e in endpoints()
    }
    for sample in samples.catalog(provider):
        origin = "documented" if sample.documented else "hub's own"
        usual = " (default)" if defaults.get((sample.provider, sample.callback)) == sample else ""
        print(
            f"{sample.provider.value:<10} {sample.callback:<13} {sample.name:<36} {origin:<10}"
            f" {sample.method:<4} {sample.outcome()}{usual}"
        )
    if provider is not None:
        print(f"send one: hub send {provider.value} CALLBACK [--sample NAME | --file F]")
    return 0


def _what(endpoint: Endpoint, args: argparse.Namespace) -> Outgoing:
    """The sample, or the file, to send to this endpoint."""
    provider, callback = endpoint.provider, endpoint.callback.name
    if args.file is None:
        if args.method or args.content_type:
            raise ValueError("--method and --content-type go with --file (a sample has its own)")
        sample = _sample(provider, callback, args.sample)
        return Outgoing(
            sample.method,
            sample.content_type,
            sample.input,
            sample.in_query,
            f"sample {sample.name}",
        )
    usual = samples.default(provider, callback)
    method = args.method or (usual.method if usual else endpoint.callback.methods[0])
    if method not in endpoint.callback.methods:
        raise ValueError(
            f"{provider.value} {callback} takes {', '.join(endpoint.callback.methods)}"
        )
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    content_type = args.content_type
    if content_type is None:
        same = usual is not None and usual.method == method
        content_type = usual.content_type if same and usual else ""
    if method == "GET":  # the file holds the query string: one line, without the '?'
        data = data.rstrip(b"\r\n").removeprefix(b"?")
        if b"\n" in data or b"\r" in data:
            raise ValueError(f"{args.file}: a query string is one line")
    return Outgoing(method, content_type, data, method == "GET", f"file {args.file}")


def _sample(provider: Provider, callback: str, name: str | None) -> Sample:
    if name is None:
        sample = samples.default(provider, callback)
        if sample is None:
            raise ValueError(f"no sample of {provider.value} {callback}: use --file")
        return sample
    for sample in samples.catalog(provider):
        if sample.name == name.removesuffix(".json"):
            if sample.callback != callback:
                raise ValueError(f"{name} is a sample of {provider.value} {sample.callback}")
            return sample
    raise ValueError(
        f"no sample {name!r} of {provider.value} (hub send {provider.value} lists them)"
    )


def _send(
    settings: Settings,
    base: str,
    endpoint: Endpoint,
    secret: str,
    outgoing: Outgoing,
    args: argparse.Namespace,
) -> int:
    journal = settings.data_dir / journal_store.JOURNAL_FILE
    before = journal_store.last_seq(journal) if journal.exists() else None
    path = endpoint.path(secret)
    data, in_query = outgoing.data, outgoing.in_query
    target = path.encode() + (b"?" + data if in_query and data else b"")
    with remote.Connection(base, args.timeout) as conn:
        headers, note = remote.allowed_source(
            settings.access_policy(), endpoint.provider, conn.source
        )
        if note:
            print(f"note: {note}", file=sys.stderr)
        if outgoing.content_type:
            headers["Content-Type"] = outgoing.content_type
        answer = conn.request(outgoing.method, target, headers, b"" if in_query else data)
    events = None
    if before is not None:  # once the pipeline worker is past them: a retry is no new event
        journaled.caught_up(settings.data_dir)
        found = journaled.pages(settings.data_dir, after=before, provider=endpoint.provider.value)
        events = [s.envelope.body for page in found for s in page.events]
    if args.json:
        doc = {
            "status": answer.status,
            "body": answer.body.decode("utf-8", "replace"),
            "events": None if events is None else [orjson.loads(e) for e in events],
        }
        sys.stdout.buffer.write(orjson.dumps(doc) + b"\n")
    else:
        source = f", as {headers['X-Forwarded-For']}" if "X-Forwarded-For" in headers else ""
        print(
            f"sent    {outgoing.method} {base}{remote.masked(path)}"
            f" ({outgoing.label}, {len(data)} bytes{source})"
        )
        print(f"answer  {answer.status} {answer.body.decode('utf-8', 'replace')}")
        _show_events(events, journal, answer.status)
    return 0 if 200 <= answer.status < 300 else 1


NOT_READ = {403: "its source", 404: "its secret", 405: "its method", 413: "its size"}
"""Answers the hub gives before a parser reads the request: nothing is kept of it."""


def _show_events(events: list[bytes] | None, journal: Path, status: int) -> None:
    if events is None:
        print(f"events  not seen: no journal at {journal} (HUB_DATA_DIR of the hub?)")
    elif not events and status in NOT_READ:
        print(f"events  none: refused for {NOT_READ[status]} before being read, nothing kept")
    elif not events:
        print(
            "events  none new: a refused request is kept in the quarantine (hub quarantine list);"
            " an acknowledged one was a retry (journaled, marked duplicate), or carries no event"
        )
    for body in events or ():
        print(f"event   {describe(Event.from_json(body))}")
