"""The Event printer, shared by core/v1 events and events.k8s.io/v1 events.

Upstream prints both from the internal core Event; the events.k8s.io fields are read here under
the names the conversion gives them (printEvent in pkg/printers/internalversion/printers.go).
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Tuple

from megaplane.apiserver.printers.base import Obj, Printer, _col, _d, _i, _name, _name_col, _s
from megaplane.apiserver.printers.format import age, parse_timestamp

# kubectl's event table leads with "Last Seen", not "Name": the one upstream
# table whose Name column is neither first nor shown by default.
_EVENT_COLUMNS = [
    _col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    _col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    _col(
        "Reason",
        "string",
        "This should be a short, machine understandable string that gives the reason for the transition "
        "into the object's current status.",
    ),
    _col("Object", "string", "The object that this event is about."),
    _col(
        "Subobject",
        "string",
        "If referring to a piece of an object instead of an entire object, this string should contain a "
        "valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, "
        "if the object reference is to a container within a pod, this would take on a value like: "
        '"spec.containers{name}" (where "name" refers to the name of the container that triggered the '
        'event) or if no container name is specified "spec.containers[2]" (container with index 2 in this '
        "pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
        1,
    ),
    _col(
        "Source",
        "string",
        "The component reporting this event. Should be a short machine understandable string.",
        1,
    ),
    _col("Message", "string", "A human-readable description of the status of this operation."),
    _col(
        "First Seen",
        "string",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        1,
    ),
    _col("Count", "string", "The number of times this event has occurred.", 1),
    _name_col(priority=1),
]


def _core_event_fields(event: Obj) -> Obj:
    """A core/v1 Event's fields the printer reads, as the internal Event has them."""
    return {
        "involvedObject": _d(event.get("involvedObject")),
        "message": _s(event.get("message")),
        "source": _d(event.get("source")),
        "firstTimestamp": event.get("firstTimestamp"),
        "lastTimestamp": event.get("lastTimestamp"),
        "count": _i(event.get("count")),
        "reportingController": _s(event.get("reportingComponent")),
        "reportingInstance": _s(event.get("reportingInstance")),
    }


def _events_v1_fields(event: Obj) -> Obj:
    """The same for an events.k8s.io/v1 Event, whose conversion to the internal
    (core) Event renames regarding, note and the deprecated* fields."""
    return {
        "involvedObject": _d(event.get("regarding")),
        "message": _s(event.get("note")),
        "source": _d(event.get("deprecatedSource")),
        "firstTimestamp": event.get("deprecatedFirstTimestamp"),
        "lastTimestamp": event.get("deprecatedLastTimestamp"),
        "count": _i(event.get("deprecatedCount")),
        "reportingController": _s(event.get("reportingController")),
        "reportingInstance": _s(event.get("reportingInstance")),
    }


def _print_event_fields(event: Obj, fields: Obj, now: datetime.datetime) -> List[Any]:
    # First Seen falls back to eventTime (new-style events set only that),
    # Last Seen to First Seen, and a series overrides both Last Seen and Count.
    first_seen = age(fields["firstTimestamp"], now)
    if parse_timestamp(fields["firstTimestamp"]) is None:
        first_seen = age(event.get("eventTime"), now)
    last_seen = age(fields["lastTimestamp"], now)
    if parse_timestamp(fields["lastTimestamp"]) is None:
        last_seen = first_seen
    count = fields["count"]
    series = event.get("series")
    if isinstance(series, dict):
        last_seen = age(series.get("lastObservedTime"), now)
        count = _i(series.get("count"))
    elif count == 0:
        count = 1  # singleton events carry no count in the new API
    involved = fields["involvedObject"]
    kind = _s(involved.get("kind")).lower()
    target = f"{kind}/{_s(involved.get('name'))}" if _s(involved.get("name")) else kind
    component = _s(fields["source"].get("component")) or fields["reportingController"]
    instance = _s(fields["source"].get("host")) or fields["reportingInstance"]
    source = f"{component}, {instance}" if instance else component
    return [
        last_seen,
        _s(event.get("type")),
        _s(event.get("reason")),
        target,
        _s(involved.get("fieldPath")),
        source,
        fields["message"].strip(),
        first_seen,
        count,
        _name(event),
    ]


def _print_event(event: Obj, now: datetime.datetime) -> List[Any]:
    return _print_event_fields(event, _core_event_fields(event), now)


def _print_events_v1_event(event: Obj, now: datetime.datetime) -> List[Any]:
    return _print_event_fields(event, _events_v1_fields(event), now)


# What this module prints, by (API group, resource).
TABLES: Dict[Tuple[str, str], Tuple[List[Obj], Printer]] = {
    ("", "events"): (_EVENT_COLUMNS, _print_event),
    ("events.k8s.io", "events"): (_EVENT_COLUMNS, _print_events_v1_event),
}
