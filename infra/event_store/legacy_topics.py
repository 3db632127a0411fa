"""Topics of events stored before the aggregates moved into practice folders.

The store records each event's class as `module:qualname`. Events written before the move
name the old modules; registering those names lets them load. Never remove an entry while a
store may hold such events.
"""

from __future__ import annotations

from eventsourcing.utils import register_topic

from domain.inbound.alert_fingerprint import AlertFingerprint
from domain.inbound.inbound_receipt import InboundReceipt
from domain.inbound.source_ticket import SourceTicket
from domain.incident.incident import Incident
from domain.sla.sla_policy import SlaPolicy

LEGACY_TOPICS = {
    "domain.incident:Incident": Incident,
    "domain.sla_policy:SlaPolicy": SlaPolicy,
    "domain.source_ticket:SourceTicket": SourceTicket,
    "domain.alert_fingerprint:AlertFingerprint": AlertFingerprint,
    "domain.inbound_receipt:InboundReceipt": InboundReceipt,
}


def register_legacy_topics() -> None:
    """Idempotent: the same class for the same topic is accepted again."""
    for topic, aggregate in LEGACY_TOPICS.items():
        register_topic(topic, aggregate)
