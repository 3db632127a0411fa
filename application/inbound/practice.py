"""Inbound integration's own records: the tickets it mirrors, alert fingerprints, receipts."""

from __future__ import annotations

from application.desk.practice import Practice
from domain.inbound.alert_fingerprint import AlertFingerprint
from domain.inbound.inbound_receipt import InboundReceipt
from domain.inbound.source_ticket import PERSONAL_DATA, SourceTicket

INBOUND = Practice(
    name="inbound",
    aggregates=(SourceTicket, AlertFingerprint, InboundReceipt),
    personal_data={SourceTicket: PERSONAL_DATA},
)
