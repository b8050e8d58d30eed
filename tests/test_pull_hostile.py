"""Whatever a provider answers, a pull reader gives a page or a PayloadError with a reason
label: never another exception (the source quarantines what it cannot read)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PayloadError
from core.models import Provider, RawRequest
from parsers.pull import dmc, ecall, ecampaign, smsmode
from parsers.pull.base import Outcome, Page

_texts = st.text(alphabet="0123456789 +-:.T/()Zabcxyzé€<&_STOPstop", max_size=25)
_names = st.sampled_from(
    [
        "code",
        "message",
        "number",
        "numero",
        "indicatif",
        "date",
        "date_heure",
        "email",
        "reason",
        "raison",
        "getResponses",
        "getBlacklist",
        "response",
        "member",
        "phone",
        "Result",
        "ResultCode",
        "ResultText",
        "MessageID",
        "SMS",
        "Message",
        "AddressTo",
        "AddressFrom",
        "TimeStamp",
        "list",
        "return",
        "broadcastId",
        "contactId",
        "callAdress",
        "callDate",
        "callResponse",
        "spaceId",
        "total",
        "Fault",
        "faultstring",
        "detail",
        "DmcException",
        "params",
    ]
)


@st.composite
def _elements(draw: st.DrawFn, depth: int = 0) -> str:
    name = draw(_names)
    attrs = draw(
        st.dictionaries(
            _names, _texts.map(lambda t: t.replace("<", "").replace("&", "")), max_size=2
        )
    )
    attributes = "".join(f' {k}="{v}"' for k, v in attrs.items())
    if depth >= 2 or draw(st.booleans()):
        text = draw(_texts).replace("<", "&lt;").replace("&", "&amp;").replace("&amp;lt;", "&lt;")
        return f"<{name}{attributes}>{text}</{name}>"
    children = draw(st.lists(_elements(depth + 1), max_size=3))
    return f"<{name}{attributes}>{''.join(children)}</{name}>"


_ROOTS = {
    "ecampaign": "<ecampaign>{}</ecampaign>",
    "ecall_next": "<IncomingSMS>{}</IncomingSMS>",
    "ecall_delete": "<DeleteMsg>{}</DeleteMsg>",
    "dmc": '<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>{}</S:Body></S:Envelope>',
}


@st.composite
def _documents(draw: st.DrawFn) -> bytes:
    root = _ROOTS[draw(st.sampled_from(sorted(_ROOTS)))]
    return root.format("".join(draw(st.lists(_elements(), max_size=4)))).encode()


_FIELD = st.text(max_size=12) | st.sampled_from(["01012013-12:22", "32", "r-1", "336", ""])
_LINES = st.lists(
    st.lists(_FIELD, min_size=1, max_size=8).map(" | ".join), min_size=1, max_size=3
).map(lambda lines: "\n".join(lines).encode())
"""sMsmode's answers: lines of ``|``-separated fields, some of them dates and codes."""


READERS = [
    (Provider.ECAMPAIGN, "sms/getResponses", ecampaign.read_get_responses),
    (Provider.ECAMPAIGN, "mail/getBlacklist", ecampaign.read_get_blacklist),
    (Provider.ECALL, "GetNextMessage", ecall.read_get_next_message),
    (Provider.ECALL, "DeleteMessage", ecall.read_delete_message),
    (Provider.DMC, "getResponsesSMS", dmc.read_get_responses_sms),
    (Provider.SMSMODE, "responseList", smsmode.read_response_list),
]


@settings(max_examples=300)
@given(st.binary(max_size=300) | _documents() | _LINES, st.sampled_from(READERS))
def test_any_answer_gives_a_page_or_a_payload_error(body: bytes, reader: tuple) -> None:
    provider, callback, read = reader
    response = RawRequest(
        provider=provider,
        callback=callback,
        method="POST",
        query=b"stopOnly=true",
        body=body,
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    try:
        page = read(response)
    except PayloadError as exc:
        reason = exc.reason
    else:
        reason = ""
    if reason:  # a label, never the provider's data
        assert reason.replace("_", "").isalpha()
        return
    assert isinstance(page, Page)
    assert page.reason == "" or page.reason.replace("_", "").isalnum()
    assert bool(page.items) == (page.outcome is Outcome.ITEMS)
    for item in page.items:
        for event in item.events:
            assert event.data.details["via"] == "poll"
            event.to_json()
