"""Test guest: reports every field of every event as the SDK's ``Event``
reads it, so tests/languages.rs can compare them with ``vigil normalize``.

Subscribes to successes only (``outcomes``), so the test also sees the
host route by the metadata's filter. Keeps the previous call's event, which
a rule must not do, to show that reading it afterwards is a clean
``RuleError`` rather than a use of a dead handle."""

from enum import Enum

import vigil
from vigil import Outcome, PartitionKey, Severity

_previous = None


def text(value):
    """A field as text; Python and JavaScript guests render alike."""
    if value is None:
        return "-"
    if isinstance(value, Enum):
        return value.name.lower().replace("_", "-")
    return str(value)


def principal(p):
    if p is None:
        return "-"
    return f"{p.id}|{p.kind}|{text(p.login)}|{text(p.display_name)}"


def raw(event, pointer):
    try:
        return text(event.raw(pointer))
    except vigil.RuleError as e:
        return f"error: {e}"


class PythonEvent(vigil.Rule):
    def metadata(self):
        return vigil.metadata("python-event", "0.0.1", "test guest: reports what it reads",
                              subscribes=["*"], actions=[], outcomes=[Outcome.SUCCESS],
                              # One instance: the previous event is kept across calls.
                              partition=PartitionKey.GLOBAL)

    def on_event(self, host, event):
        global _previous
        stale = "-"
        if _previous is not None:
            try:
                stale = text(_previous.raw("/never/read"))
            except vigil.RuleError as e:
                stale = f"error: {e}"
        _previous = event

        # One attribute before all of them: the host's `attribute` getter.
        is_proxy = text(vigil.attribute(event, "is-proxy"))
        geo = event.geo
        user = vigil.subject_user(event)
        details = {
            "id": text(event.id),
            "source": text(event.source),
            "kind": text(event.kind),
            "class": text(event.class_),
            "time": text(event.time),
            "actor": principal(event.actor),
            "targets": ";".join(principal(t) for t in event.targets),
            "outcome": text(event.outcome),
            "outcome-reason": text(event.outcome_reason),
            "client-ip": text(event.client_ip),
            "geo": "-" if geo is None else f"{text(geo.country)}|{text(geo.city)}",
            "user-agent": text(event.user_agent),
            "factor": text(event.factor),
            "is-proxy": is_proxy,
            "attributes": ";".join(f"{k}={v}" for k, v in event.attributes),
            "subject-user": "-" if user is None else user.id,
            "raw-uuid": raw(event, "/uuid"),
            "raw-missing": raw(event, "/no/such/field"),
            "raw-malformed": raw(event, "no-leading-slash"),
            "stale": stale,
        }
        return [vigil.finding(Severity.INFO, "fields", event.id, **details)]


WitWorld = vigil.export_rule(PythonEvent)
