"""eCampaign (PROSOLUCE, seed 000): message tracking and contact-import reports, POST form ``xml``.

Acknowledgement contract: the provider specifies none; any HTTP 200 is success. We answer
``200 OK`` once the events are safe, ``400`` to what we cannot read (the request is quarantined)
and ``503`` when the events could not be made safe, so that the provider tries again.

Both callbacks are a form body ``xml=<url-encoded XML>`` in UTF-8. The XML says which one it is,
whatever the URL segment it came to.

- ``tracking`` ("Réponse asynchrone (suivi des envois)", p.18): an URL that PROSOLUCE sets on the
  account is called at each state change of a message sent through the web services::

      <ecampaign><msgid>ID_MESSAGE</msgid><state>CODE_ETAT</state><timestamp>DATE_HEURE</timestamp></ecampaign>

  ``msgid`` is the id of the synchronous send response, ``state`` a code of the annex "États de
  remise" (``tables/ecampaign.toml``). The code also tells the channel (calls: voice, mail, fax)
  and whether the recipient did something (call answered, key X pressed for ``2X``, complaint,
  click...): an interaction. Codes common to all channels (1 to 10) do not say which one: they
  are reported as ``sms``. ``timestamp`` is French local time, ``AAAA-MM-JJ HH:MM:SS`` or
  ``AAAA:MM:JJ HH:MM:SS`` (the format is not specified and the doc writes dates both ways);
  without one the reception time is used, an unreadable one is refused.

  Several messages in one document (the doc shows one): repeated ``msgid``/``state``/``timestamp``
  groups in sequence (a group ends where one of its names comes again), and repeated wrapper
  elements of any name holding one group each, anywhere under the root
  (``<ecampaign><message><msgid>…</msgid>…</message><message>…</message></ecampaign>``).
- ``import`` (p.30): the report of ``manageGroup/ID/importMembers``, POSTed to the ``callbackUrl``
  given in the import request::

      <ecampaign><importFromXml><state>…</state><imported>…</imported>
      <errors><error>…</error>…</errors></importFromXml></ecampaign>

  One event of kind ``report``: ``completed``, or ``failed`` when ``state`` says so (its values
  are not documented: ``KO`` as in the send response, ``error``, ``failed``...). ``details`` hold
  ``imported`` (a number, or null) and ``errors`` (their texts). An import is about a group, not a
  channel: reported as ``sms``, the hub's main channel.

Element names are matched without namespace and case; ``raw`` keeps them as received, with
attributes and child elements side by side (repeated names as lists, ``#text`` for the text of
an element that also has attributes). A DTD (hence any entity) is refused. The document is
read in one pass (``parsers/ecampaign_xml.py``) into the reports and messages made into events
here.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import PayloadError
from core.models import Channel, Code, Event, EventData, Kind, Provider, RawRequest, State
from parsers.base import Callback, bad_request, ok, unavailable
from parsers.ecampaign_xml import Group, Report, read
from parsers.tables import UNKNOWN, code_of, load_tables
from parsers.text import count, decode_query, required
from parsers.times import PARIS, local_time

PROVIDER = Provider.ECAMPAIGN
CALLBACKS: Sequence[Callback] = (
    Callback("tracking", ("POST",), "state changes of messages sent (p.18, annex p.55-56)"),
    Callback("import", ("POST",), "report of a contact import into a group (p.30)"),
)

TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M:%S")
_FAILED_IMPORT = frozenset(
    {"ko", "nok", "error", "erreur", "failed", "failure", "fail", "echec", "échec"}
)


def parse(request: RawRequest) -> list[Event]:
    reports, groups = read(required(decode_query(request.body), "xml"))
    events = [_report(report, request) for report in reports]
    events += [_tracking(group, request) for group in groups]
    if not events:
        raise PayloadError(
            "neither a tracking callback nor an import report", reason="unknown_callback"
        )
    return events


# The acknowledgement contract: 200 once safe, 400 for input we cannot read, 503 to be retried.
ack, nack, retry = ok, bad_request, unavailable


def _too_deep() -> PayloadError:
    return PayloadError("XML nested too deep", reason="invalid_xml")


def _tracking(group: Group, request: RawRequest) -> Event:
    fields, raw = group
    code = required(fields, "state")
    if not code:
        raise PayloadError("empty state", reason="missing_field")
    entry = load_tables(PROVIDER)["state"].get(code)
    known = entry or UNKNOWN
    message_id = required(fields, "msgid") or None
    if raw is None:
        raise _too_deep()
    data = EventData(
        provider=PROVIDER,
        channel=known.channel or Channel.SMS,
        kind=known.kind or Kind.DELIVERY,
        state=known.state,
        final=known.final,
        failure=known.failure,
        message_id=message_id,
        status=code_of(code, entry),
        details={"key": code[-1]} if known.state is State.KEY_PRESSED else {},
        raw=raw,
        received_at=request.received_at,
    )
    timestamp = fields.get("timestamp")
    return Event.of(data, local_time(timestamp, TIMESTAMP_FORMATS, PARIS) if timestamp else None)


def _report(report: Report, request: RawRequest) -> Event:
    fields, errors, raw = report
    if raw is None:
        raise _too_deep()
    outcome = fields.get("state", "")
    data = EventData(
        provider=PROVIDER,
        channel=Channel.SMS,
        kind=Kind.REPORT,
        state=State.FAILED if outcome.casefold() in _FAILED_IMPORT else State.COMPLETED,
        final=True,
        status=Code(code=outcome) if outcome else None,
        details={
            "imported": count(fields.get("imported", "")),
            "errors": errors,
        },
        raw=raw,
        received_at=request.received_at,
    )
    return Event.of(data)
