"""iSendPro (seed 002, sections 9 and 10): GET delivery reports and replies.

Acknowledgement contract: the body is exactly ``validation`` (text/plain, no HTML) once the event
is safe, and ``probleme`` otherwise. On ``probleme`` or no answer iSendPro tries only three more
times, one day apart, at 02:00.

- Delivery report: ``tel libelle statut code_erreur date heure id operateur tracker``; ``statut``
  0 is ok and 2 an error detailed by ``code_erreur`` in the table of the ``operateur``
  (annexes 5 to 7, ``tables/isendpro.toml``); ``date`` + ``heure`` are French local time.
- Reply (inbound SMS): ``tel id_retour msg_sms tracker``; ``id_retour`` is the id of the last SMS
  we sent to that person.

Values are percent-encoded ISO-8859-15 (UTF-8 is accepted too); a value with invalid percent
sequences, like the seed's own sample, is kept literally.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import HubError, PayloadError
from core.models import (
    Channel,
    Event,
    EventData,
    Kind,
    Provider,
    RawRequest,
    Reply,
    State,
)
from parsers.base import Callback
from parsers.phones import to_e164
from parsers.tables import UNKNOWN, TableEntry, code_of, load_tables
from parsers.text import decode_query, optional, required
from parsers.times import PARIS, local_time

PROVIDER = Provider.ISENDPRO
CALLBACKS: Sequence[Callback] = (
    Callback("delivery", ("GET",), "delivery reports (section 9)"),
    Callback("reply", ("GET",), "SMS sent back by recipients (section 10)"),
)

VALIDATION = Reply(status=200, body=b"validation")
PROBLEME = Reply(status=200, body=b"probleme")

_ERROR_TABLES: dict[str, tuple[str, ...]] = {
    "ORAN": ("error_sfr_orange",),
    "SFR": ("error_sfr_orange",),
    "BOUY": ("error_bouygues",),
    "FREE": ("error_free",),
}
_OTHER_OPERATORS = ("error_sfr_orange", "error_bouygues")


def parse(request: RawRequest) -> list[Event]:
    fields = decode_query(request.query)
    if "msg_sms" in fields or "id_retour" in fields:
        return [_reply(fields, request)]
    if "statut" in fields:
        return [_delivery(fields, request)]
    raise PayloadError("neither a delivery report nor a reply", reason="unknown_callback")


def ack(events: list[Event]) -> Reply:
    return VALIDATION


def nack(error: HubError) -> Reply:
    return PROBLEME


def retry(error: HubError) -> Reply:
    return PROBLEME


def error_entry(operator: str | None, code: str) -> TableEntry | None:
    """The meaning of ``code_erreur`` for a report from ``operator`` (annexes 5 to 7)."""
    tables = load_tables(PROVIDER)
    for name in _ERROR_TABLES.get((operator or "").upper(), _OTHER_OPERATORS):
        key = (code.lstrip("0") or "0") if name == "error_free" else code
        entry = tables[name].get(key)
        if entry is not None:
            return entry
    return None


def _delivery(fields: dict[str, str], request: RawRequest) -> Event:
    statut = required(fields, "statut").strip()
    when = local_time(
        f"{required(fields, 'date')} {required(fields, 'heure')}",
        ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"),
        PARIS,
    )
    operator = optional(fields, "operateur")
    code = optional(fields, "code_erreur")
    status = load_tables(PROVIDER)["statut"].get(statut)
    entry = status
    error = None
    if status is not None and status.state is State.FAILED and code is not None:
        detail = error_entry(operator, code)
        entry = detail or status
        error = code_of(code, detail)
    known = entry or UNKNOWN
    data = EventData(
        provider=PROVIDER,
        channel=Channel.SMS,
        kind=Kind.DELIVERY,
        state=known.state,
        final=known.final,
        failure=known.failure,
        message_id=optional(fields, "id"),
        reference=optional(fields, "tracker"),
        recipient=to_e164(fields.get("tel")),
        status=code_of(statut, status),
        error=error,
        operator=operator,
        details={"label": fields["libelle"]} if "libelle" in fields else {},
        raw=dict(fields),
        received_at=request.received_at,
    )
    return Event.of(data, when)


def _reply(fields: dict[str, str], request: RawRequest) -> Event:
    data = EventData(
        provider=PROVIDER,
        channel=Channel.SMS,
        kind=Kind.INBOUND,
        state=State.RECEIVED,
        final=True,
        reference=optional(fields, "tracker"),
        related_message_id=optional(fields, "id_retour"),
        sender=to_e164(required(fields, "tel")),
        text=fields.get("msg_sms", ""),
        raw=dict(fields),
        received_at=request.received_at,
    )
    return Event.of(data)
