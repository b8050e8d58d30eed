"""What the provider documents say, transcribed once into the repository, and the opt-in check
that the transcription still matches the documents.

The providers' documents (French, converted to text) are not part of the repository. What the
tests need from them — which status codes each one lists, in which table, with which words — is
kept in ``tests/docfacts/<slug>.json``, and the parser tests check the code tables
(``parsers/tables/<slug>.toml``) against those facts, with no document at hand.

The document checks (``tests/test_provider_docs.py``) read the documents from the folder named by
``HUB_PROVIDER_DOCS`` and check that the facts are exactly what the documents hold, and that each
``seed-*`` golden case is a sample of its document. Unset, they are skipped; set, a missing
document fails them. To run them::

    HUB_PROVIDER_DOCS=/path/to/provider/documents make test

``python -m tests.provider_docs`` (with the variable set) writes the facts files anew from the
documents, for a change to be read in ``git diff`` before it is committed.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.models import Provider

ENV = "HUB_PROVIDER_DOCS"
FACTS = Path(__file__).parent / "docfacts"

# each provider's document, as its file is named in the folder of documents
DOCUMENTS = {
    Provider.ECAMPAIGN: "000_ae6fdf2cfca40d7a.txt",  # eCampaign web services, PROSOLUCE
    Provider.DMC: "001_a49677c959c6f70c.txt",  # DMC API, SFR Business
    Provider.ISENDPRO: "002_00a384ccbf66724e.txt",  # iSendPro HTTP API
    Provider.ECALL: "003_39674dc9916ea025.txt",  # eCall HTTP interface, F24
    Provider.SMSMODE: "004_b5f748c5600f4958.txt",  # sMsmode HTTP API
}


def document(provider: Provider) -> str:
    """The provider's document as text: skips the test when ``HUB_PROVIDER_DOCS`` is unset."""
    folder = os.environ.get(ENV)
    if not folder:
        pytest.skip(f"document check: set {ENV} to the folder of the provider documents to run it")
    path = Path(folder) / DOCUMENTS[provider]
    if not path.is_file():
        pytest.fail(f"{ENV}={folder}: no {DOCUMENTS[provider]} ({provider.value}'s document)")
    return path.read_text(encoding="utf-8")


def facts(provider: Provider) -> dict[str, Any]:
    """The facts transcribed from the provider's document (``tests/docfacts/<slug>.json``)."""
    result: dict[str, Any] = orjson.loads((FACTS / f"{provider.value}.json").read_bytes())
    return result


def extract(provider: Provider, text: str) -> dict[str, Any]:
    """The facts, read from the document's text."""
    return _EXTRACTORS[provider](text)


# -- eCampaign: the annex "États de remise" -----------------------------------------------------

# a line of the annex: "8, 9 ou 10<TAB>Tous<TAB>Remise impossible", "2X<TAB>Appels<TAB>Choix n°X..."
_ECAMPAIGN_LINE = re.compile(r"^(\d+(?:(?:, | ou | et )\d+)*|2X)\t(\w+)\t(.+?)\s*$", re.MULTILINE)


def _ecampaign(text: str) -> dict[str, Any]:
    annex = text[text.rindex("États de remise") :]
    rows = []
    for first, channel, description in _ECAMPAIGN_LINE.findall(annex):
        codes = [str(n) for n in range(20, 30)] if first == "2X" else re.findall(r"\d+", first)
        rows.append({"codes": codes, "channel": channel, "fr": description})
    return {
        "state_annex": rows,
        # both callback samples (tracking, import report) were lost in the text extraction
        "has_tracking_sample": "<timestamp>" in text,
        "has_import_sample": "importFromXml" in text,
    }


# -- DMC: section 2.9 (the statuses of a push) and annex 5.4 (the codes of each medium) --------

_DMC_ANNEX_TABLES = {
    "5.4.1": "cra_sms",
    "5.4.2": "cra_mms",
    "5.4.3": "cra_vocal",
    "5.4.4": "cra_fax",
    "5.4.5": "cra_email",
    "5.4.6": "cra_notif",
    "5.4.7": "cra_all",
}


def _section(text: str, start: str, end: str) -> str:
    begin = text.index(start)
    return text[begin : text.index(end, begin)]


def _dmc(text: str) -> dict[str, Any]:
    annex = _section(text, "## 5.4 LISTE DES COMPTE-RENDUS", "## 5.5")
    parts = re.split(r"^#+ (5\.4\.\d) ", annex, flags=re.MULTILINE)
    codes = {
        _DMC_ANNEX_TABLES[number]: sorted(
            set(re.findall(r"^(CRA_[A-Z_]+(?:\{DETAIL\})?)\t", body, flags=re.MULTILINE))
        )
        for number, body in zip(parts[1::2], parts[2::2], strict=True)
    }
    section = _section(text, "## 2.9 RECEPTION DES CRA", "## 2.10")
    listed = {
        name
        for names in re.findall(r"^- \*\*([A-Z/]+)\*\* :", section, flags=re.MULTILINE)
        for name in names.split("/")
    }
    in_samples = set(re.findall(r'(?:type|status)="([A-Z]+)"', section))
    return {
        "annex_5_4": codes,
        "statuses_listed_2_9": sorted(listed),
        "statuses_in_samples_2_9": sorted(in_samples),
    }


# -- iSendPro: annexes 5, 6 and 7 (operators' error codes) --------------------------------------


def _isendpro(text: str) -> dict[str, Any]:
    def section(start: str, end: str) -> str:
        return text[text.rindex(start) : text.rindex(end)]

    annex = "Liste des codes erreurs présent"
    sfr_orange = section(f"5 - {annex}", "6 - Liste des codes erreurs")
    bouygues = section(f"6 - {annex}", "7 - Liste des codes erreurs")
    free = section(f"7 - {annex}", "8 - Support technique")
    bouygues_code = r"^(\d{4,5}|[A-Z0-9]+(?:-[A-Z0-9]+)+|PT03PushSMS\d+)\t"
    return {
        "error_sfr_orange": re.findall(r"^.+\t(\d{3})$", sfr_orange, flags=re.MULTILINE),
        "error_bouygues": re.findall(bouygues_code, bouygues, flags=re.MULTILINE),
        "error_free": re.findall(r"^[A-Z]+\t(\d)\t", free, flags=re.MULTILINE),
    }


# -- eCall: the notification, status and result code tables -------------------------------------

# table in the TOML → (the section heading in the document, the caption that closes the table)
_ECALL_TABLES = {
    "notification": ("3.8.1 Tableau de notification", "Tableau : Codes de résultat de la notif"),
    "sms": ("3.5.3.1 Codes d'état messages textuels", "Tableau : Codes d'état SMS / Pager"),
    "voice": ("3.5.3.2 Codes d'état messages vocaux", "Tableau : Codes d'état messages vocaux"),
    "fax": ("3.5.3.3 Codes d'état messages fax", "Tableau : Codes d'état messages fax"),
    "mms": ("3.5.3.4 Codes d'état messages multimédias", "Tableau : Codes d'état messages multi"),
    "result": ("4.2 eCall ResultCodes", "Tableau : Codes de résultat eCall"),
}
_ECALL_ROW = re.compile(r"^(-?\d+)\t([^\t\n]*)\t([^\t\n]*)$", re.MULTILINE)


def _ecall(text: str) -> dict[str, Any]:
    tables = {}
    for table, (heading, caption) in _ECALL_TABLES.items():
        end = text.index(caption)  # the first caption closes the table (the last is the index)
        start = text.rindex(heading, 0, end)  # the heading nearest above it (not the contents)
        tables[table] = {
            m[1]: {"status": m[2].strip(), "fr": m[3].strip()}
            for m in _ECALL_ROW.finditer(text, start, end)
        }
    return tables


# -- sMsmode: the status tables of items 4 and 11, and the annex --------------------------------

_SMSMODE_STATUS_HEADER = "| CODE STATUT | DESCRIPTION |"


def _rows(block: str) -> list[list[str]]:
    """``[code, description]`` of every numeric row of the markdown tables in ``block``."""
    found = re.findall(r"^\|\s*(\d+)\s*\|\s*(.*?)\s*\|\s*$", block, flags=re.MULTILINE)
    return [[code, description] for code, description in found]


def _table_after(text: str, start: int) -> str:
    """The markdown table that begins at ``start``: its consecutive ``|`` lines."""
    lines = []
    for line in text[start:].splitlines():
        if not line.startswith("|"):
            break
        lines.append(line)
    return "\n".join(lines)


def _smsmode(text: str) -> dict[str, Any]:
    end = text.index("L'interface HTTP permet de recevoir une notification")
    return {
        "status_tables": text.count(_SMSMODE_STATUS_HEADER),
        # item 4 (compteRendu.do): the statuses of a delivery report
        "delivery_report_statuses": _rows(_table_after(text, text.index(_SMSMODE_STATUS_HEADER))),
        # item 11 (smsStatus.do): the statuses of a message, and the request's own errors
        "sms_status_rows": _rows(text[text.index("smsStatus.do?") : end]),
        # the annex "Liste récapitulative des statuts des SMS retournés": the last table
        "annex": _rows(_table_after(text, text.rindex(_SMSMODE_STATUS_HEADER))),
    }


_EXTRACTORS = {
    Provider.ECAMPAIGN: _ecampaign,
    Provider.DMC: _dmc,
    Provider.ISENDPRO: _isendpro,
    Provider.ECALL: _ecall,
    Provider.SMSMODE: _smsmode,
}


def _write_all() -> None:
    folder = os.environ.get(ENV)
    if not folder:
        sys.exit(f"set {ENV} to the folder of the provider documents")
    FACTS.mkdir(exist_ok=True)
    for provider, name in DOCUMENTS.items():
        text = (Path(folder) / name).read_text(encoding="utf-8")
        out = orjson.dumps(extract(provider, text), option=orjson.OPT_INDENT_2) + b"\n"
        (FACTS / f"{provider.value}.json").write_bytes(out)
        print(f"{FACTS / provider.value}.json")


if __name__ == "__main__":
    _write_all()
