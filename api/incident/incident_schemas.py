"""Request and response bodies of the HTTP API.

Requests are validated here so that a malformed command never reaches the aggregate; the
aggregate still enforces the business rules (state transitions, priority matrix).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from domain.incident.commands import ACTIONS
from domain.incident.lifecycle import Channel, EscalationKind, HoldReason

# Strict: a JSON number only; "1" and true are refused, not coerced (docs/http.md).
Level = Annotated[int, Strict(), Field(ge=1, le=3, description="1 (high), 2 (medium) or 3 (low)")]
Satisfaction = Annotated[int, Strict(), Field(ge=1, le=5, description="Caller satisfaction 1..5")]
Text = Annotated[str, Field(max_length=4000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Request(BaseModel):
    # Unknown fields are refused: a misspelt field would otherwise be silently ignored.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class IncidentCreate(Request):
    title: Name
    description: Text = ""
    caller: Name
    channel: Channel = Channel.PORTAL
    service: str = Field("", max_length=200)
    category: str = Field("", max_length=200)
    subcategory: str = Field("", max_length=200)
    impact: Level
    urgency: Level


class AssignRequest(Request):
    group: Name = Field(description="The assignment group")
    agent: Name | None = Field(None, description="The assignee within the group")


class AcknowledgeRequest(Request):
    pass


class EscalateRequest(Request):
    kind: EscalationKind = Field(
        EscalationKind.FUNCTIONAL,
        description="functional: to the next support tier; hierarchical: to management "
        "(declares a major incident)",
    )
    group: Name | None = Field(None, description="Functional only; defaults to the current group")
    reason: Text = ""


class HoldRequest(Request):
    reason: HoldReason
    note: Text = ""


class ResumeRequest(Request):
    pass


class ResolveRequest(Request):
    code: Name = Field(description="The resolution code")
    notes: Text = ""


class ReopenRequest(Request):
    reason: Text = ""


class CloseRequest(Request):
    satisfaction: Satisfaction | None = None
    comment: Text = ""


class CancelRequest(Request):
    reason: Text = ""


class CommentRequest(Request):
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    public: Annotated[bool, Strict()] = Field(
        False, description="Public comments reach the caller; others are work notes"
    )


class ReprioritiseRequest(Request):
    impact: Level
    urgency: Level
    reason: Text = ""


class RecategoriseRequest(Request):
    category: Name
    subcategory: str = Field("", max_length=200)
    service: str | None = Field(None, max_length=200)


ACTION_REQUESTS: dict[str, type[Request]] = {
    "assign": AssignRequest,
    "acknowledge": AcknowledgeRequest,
    "escalate": EscalateRequest,
    "hold": HoldRequest,
    "resume": ResumeRequest,
    "resolve": ResolveRequest,
    "reopen": ReopenRequest,
    "close": CloseRequest,
    "cancel": CancelRequest,
    "comment": CommentRequest,
    "reprioritise": ReprioritiseRequest,
    "recategorise": RecategoriseRequest,
}
# A new command in the domain must get a request model here before it is reachable.
assert ACTION_REQUESTS.keys() == ACTIONS.keys(), set(ACTIONS) ^ set(ACTION_REQUESTS)

# One example per request body, shown in the OpenAPI document.
EXAMPLES: dict[type[Request], dict[str, Any]] = {
    IncidentCreate: {"title": "VPN down", "caller": "bob", "impact": 1, "urgency": 2},
    AssignRequest: {"group": "network", "agent": "alice"},
    AcknowledgeRequest: {},
    EscalateRequest: {"kind": "functional", "reason": "needs L2"},
    HoldRequest: {"reason": "awaiting_caller", "note": "asked for logs"},
    ResumeRequest: {},
    ResolveRequest: {"code": "solved_workaround", "notes": "restarted the gateway"},
    ReopenRequest: {"reason": "still failing"},
    CloseRequest: {"satisfaction": 5},
    CancelRequest: {"reason": "duplicate"},
    CommentRequest: {"text": "Called the user back", "public": True},
    ReprioritiseRequest: {"impact": 1, "urgency": 1, "reason": "whole site affected"},
    RecategoriseRequest: {"category": "network", "subcategory": "vpn"},
}
for _model, _example in EXAMPLES.items():
    _model.model_config["json_schema_extra"] = {"examples": [_example]}
    _model.model_rebuild(force=True)


class IncidentCreated(BaseModel):
    id: str
    number: str
    priority: str
    state: str
    version: int


class CommandResult(BaseModel):
    id: str
    number: str
    state: str
    priority: str
    version: int


class IncidentPublic(BaseModel):
    id: str
    number: str
    title: str
    description: str | None = None
    caller: str | None = None
    channel: str | None = None
    service: str | None = None
    category: str | None = None
    subcategory: str | None = None
    impact: int
    urgency: int
    priority: str
    state: str
    hold_reason: str | None = None
    assignment_group: str | None = None
    assignee: str | None = None
    tier: str
    major: bool
    reassignment_count: int
    reopen_count: int
    opened_at: str | None = None
    acknowledged_at: str | None = None
    resolved_at: str | None = None
    closed_at: str | None = None
    cancelled_at: str | None = None
    resolution_code: str | None = None
    satisfaction: int | None = None
    source: str | None = None  # the upstream system, for tickets that came from elsewhere
    external_ref: str | None = None  # the ticket's number there
    version: int
    updated_at: str | None = None


class IncidentPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[IncidentPublic]


class IncidentAsOf(IncidentPublic):
    """The incident replayed from the event store as it stood at `as_of`: the same
    document as now, folded from the events up to then."""

    as_of: str
