"""The parser registry: provider slug → parser module (see ``parsers.base.ParserModule``)."""

from __future__ import annotations

from collections.abc import Mapping

from core.models import Provider
from parsers import dmc, ecall, ecampaign, isendpro, smsmode
from parsers.base import ParserModule

REGISTRY: Mapping[Provider, ParserModule] = {
    Provider.ECAMPAIGN: ecampaign,
    Provider.DMC: dmc,
    Provider.ISENDPRO: isendpro,
    Provider.ECALL: ecall,
    Provider.SMSMODE: smsmode,
}
