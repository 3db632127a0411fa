"""orjson transcoding of events and snapshots, with exact round trips.

orjson writes datetimes and dataclasses natively but reads them back as strings and dicts,
which would silently change an event's meaning. Those types are passed through to a tagger
instead, and the tags are turned back into objects on decoding.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import Transcoder

from domain.shared_kernel.actor import Actor

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _tag(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return {"$dt": obj.isoformat()}
    if isinstance(obj, Actor):
        return {"$actor": [obj.id, str(obj.kind)]}
    raise TypeError(f"cannot store a {type(obj).__name__} in an event: {obj!r}")


def _untag(obj: Any) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1:
            if "$dt" in obj:
                return datetime.fromisoformat(obj["$dt"])
            if "$actor" in obj:
                ident, kind = obj["$actor"]
                return Actor.from_dict({"id": ident, "kind": kind})
        return {key: _untag(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_untag(item) for item in obj]
    return obj


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_tag, option=_OPTIONS)


def loads(data: bytes) -> Any:
    return _untag(orjson.loads(data))


class OrjsonTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return dumps(obj)

    def decode(self, data: bytes) -> Any:
        return loads(data)
