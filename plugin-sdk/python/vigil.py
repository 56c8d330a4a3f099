"""Vigil rule SDK for Python.

Typed helpers over the componentize-py bindings of the ``vigil:rule@0.2.0``
world, with the same names as the Rust SDK (``vigil-sdk``): a rule is a
class with ``metadata()`` and ``on_event(host, event)``; ``export_rule``
turns it into the component's exports.

The event is an :class:`Event`: its fields (``event.kind``,
``event.client_ip``, ``event.actor``, ...) are read from the host when first
used, once each, so a rule pays only for what it reads. It is valid for the
one ``on_event`` call it is passed to.

.. code-block:: python

    import vigil
    from vigil import ActionKind, PartitionKey, Severity

    class MyRule(vigil.Rule):
        def metadata(self):
            return vigil.metadata("my-rule", "0.1.0", "What it detects",
                                  subscribes=["user.mfa.factor.activate"],
                                  actions=[ActionKind.ESCALATE],
                                  partition=PartitionKey.SUBJECT_USER)

        def on_event(self, host, event):
            user = vigil.subject_user(event)
            ...
            return [vigil.finding(Severity.HIGH, "title", user.id, ip=event.client_ip)]

    WitWorld = vigil.export_rule(MyRule)

Build with ``vigil build DIR`` (or ``componentize-py -d wit -w rule
componentize -p plugin-sdk/python -p DIR app -o rule.wasm``). An exception
other than :class:`RuleError` escaping ``on_event`` traps the call; Vigil
audits it as a rule fault and the next event still runs.
"""

import json
from functools import cached_property
from typing import Dict, Iterable, List, Optional, Tuple, Union

from componentize_py_types import Err

import wit_world
from wit_world.imports import actions, config, log, state, types
from wit_world.imports.log import Level
from wit_world.imports.types import (
    Action,
    ActionKind,
    Decision,
    Denial,
    DenialReason,
    EventClass,
    Finding,
    Geo,
    Metadata,
    Outcome,
    PartitionKey,
    Principal,
    Receipt,
    Severity,
)

__all__ = [
    "WIT_VERSION", "Rule", "Host", "RuleError", "export_rule", "metadata", "finding",
    "subject_user", "attribute", "suspend_user", "revoke_sessions", "reset_factors",
    "activate_policy", "add_to_group", "block_ip", "notify", "escalate", "describe",
    "Action", "ActionKind", "Decision", "Denial", "DenialReason", "Event", "EventClass",
    "Finding", "Geo", "Level", "Metadata", "Outcome", "PartitionKey", "Principal", "Receipt",
    "Severity",
]

#: The WIT contract version these helpers were written against.
WIT_VERSION = "0.2.0"

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


class RuleError(Exception):
    """Raise from ``on_event`` to report an error value (audited as a rule fault)."""


class Event:
    """One normalized identity event, held by the host and read on demand.

    The fields keep the names of the WIT getters in snake_case (``id``,
    ``source``, ``kind``, ``class_``, ``time``, ``actor``, ``targets``,
    ``outcome``, ``outcome_reason``, ``client_ip``, ``geo``, ``user_agent``,
    ``factor``, ``attributes``) and are read like attributes. Each is asked
    of the host the first time it is read and kept, so reading
    ``event.client_ip`` twice costs one host call and a field never read
    costs none.

    An event is valid only during the ``on_event`` call it is passed to:
    reading a field not read before after that raises :class:`RuleError`, so
    keep the values a rule needs, not the event.
    """

    def __init__(self, handle: types.Event) -> None:
        self._handle: Optional[types.Event] = handle
        self._attribute: Dict[str, Optional[str]] = {}
        self._raw: Dict[str, Optional[str]] = {}

    def _host(self) -> types.Event:
        if self._handle is None:
            raise RuleError("event read after its on_event call returned: "
                            "keep the values the rule needs, not the event")
        return self._handle

    def _release(self) -> None:
        # The host's borrow ends when on_event returns.
        self._handle = None

    @cached_property
    def id(self) -> str:
        """The source's unique id for the event (Okta ``uuid``, Entra ``id``)."""
        return self._host().id()

    @cached_property
    def source(self) -> str:
        """``okta`` or ``entra``."""
        return self._host().source()

    @cached_property
    def kind(self) -> str:
        """The source's event type (``user.mfa.okta_verify.deny_push``, ...)."""
        return self._host().kind()

    @cached_property
    def class_(self) -> EventClass:
        """Coarse category of the event."""
        return self._host().class_()

    @cached_property
    def time(self) -> int:
        """Event time, unix milliseconds. Rule state windows use this clock."""
        return self._host().time()

    @cached_property
    def actor(self) -> Optional[Principal]:
        return self._host().actor()

    @cached_property
    def targets(self) -> List[Principal]:
        return self._host().targets()

    @cached_property
    def outcome(self) -> Outcome:
        return self._host().outcome()

    @cached_property
    def outcome_reason(self) -> Optional[str]:
        return self._host().outcome_reason()

    @cached_property
    def client_ip(self) -> Optional[str]:
        return self._host().client_ip()

    @cached_property
    def geo(self) -> Optional[Geo]:
        return self._host().geo()

    @cached_property
    def user_agent(self) -> Optional[str]:
        return self._host().user_agent()

    @cached_property
    def factor(self) -> Optional[str]:
        """The factor involved (``OKTA_VERIFY_PUSH``, ``sms``, ``fido2``, ...)."""
        return self._host().factor()

    @cached_property
    def attributes(self) -> List[Tuple[str, str]]:
        """All source fields the event does not name, as ``(name, value)``
        pairs in the host's order. To read one, :meth:`attribute` is cheaper."""
        return self._host().attributes()

    def attribute(self, name: str) -> Optional[str]:
        """One source field the event does not name (``is-proxy``,
        ``client-app``, ``authentication-requirement``, ...), or ``None``."""
        if "attributes" in self.__dict__:
            for key, value in self.attributes:
                if key == name:
                    return value
            return None
        if name not in self._attribute:
            self._attribute[name] = self._host().attribute(name)
        return self._attribute[name]

    def raw(self, pointer: str) -> Optional[str]:
        """Any field of the source record by JSON pointer (RFC 6901,
        ``/debugContext/debugData/risk``) as JSON text (``'"HIGH"'``, ``'3'``,
        ``'{"a":1}'``; ``json.loads`` it), or ``None`` when the record has no
        such field. A malformed pointer or a value longer than the host's
        ``max_raw_bytes`` raises :class:`RuleError` with the host's reason."""
        if pointer not in self._raw:
            try:
                self._raw[pointer] = self._host().raw(pointer)
            except Err as e:
                raise RuleError(f"event.raw({json.dumps(pointer)}): {e.value}")
        return self._raw[pointer]


class Host:
    """Everything a rule can ask of Vigil, scoped to the calling rule."""

    def request(self, action: Action) -> Union[Receipt, Denial]:
        """Ask for an action. Returns the receipt, or the denial as a value."""
        try:
            return actions.request(action)
        except Err as denied:
            return denied.value

    def counter_add(self, key: str, window_ms: int, delta: int = 1) -> int:
        """Add to a counter; returns the largest total of any ``window_ms``
        window around the current event (in time order: the last ``window_ms``),
        whatever order events arrive in."""
        return state.counter_add(key, window_ms, delta)

    def counter_get(self, key: str, window_ms: int) -> int:
        """A counter's largest total of any ``window_ms`` window around the current event."""
        return state.counter_get(key, window_ms)

    def distinct_add(self, key: str, member: str, window_ms: int) -> int:
        """Record a member; returns the most distinct members of any
        ``window_ms`` window around the current event."""
        return state.distinct_add(key, member, window_ms)

    def distinct_count(self, key: str, window_ms: int) -> int:
        return state.distinct_count(key, window_ms)

    def get(self, key: str) -> Optional[str]:
        """The value in effect at the current event's time (set at or before
        it, not expired, not deleted); a later event's value is invisible."""
        return state.get(key)

    def set(self, key: str, value: str, ttl_ms: Optional[int] = None) -> None:
        """Store a value from the current event's time on, optionally expiring
        ``ttl_ms`` after it."""
        state.set(key, value, ttl_ms)

    def delete(self, key: str) -> None:
        state.delete(key)

    def log(self, level: Level, message: str) -> None:
        log.log(level, message)

    def config(self, key: str) -> Optional[str]:
        return config.get(key)

    def config_int(self, key: str, default: int) -> int:
        """A whole-number setting, or ``default``; a non-number is an error naming the key."""
        value = config.get(key)
        if value is None:
            return default
        try:
            return int(value.strip())
        except ValueError:
            raise RuleError(f"config `{key}` must be a whole number, got {value!r}")


class Rule:
    """Base class of a rule. Keep no state on ``self``: use the host's state."""

    def metadata(self) -> Metadata:
        raise NotImplementedError

    def on_event(self, host: Host, event: Event) -> List[Finding]:
        raise NotImplementedError


def export_rule(rule_class):
    """Returns the class componentize-py exports; assign it to ``WitWorld``."""
    rule = rule_class()
    host = Host()

    class Exported(wit_world.WitWorld):
        def metadata(self) -> Metadata:
            return rule.metadata()

        def on_event(self, event: types.Event) -> List[Finding]:
            view = Event(event)
            try:
                return rule.on_event(host, view)
            except RuleError as e:
                raise Err(str(e))
            finally:
                view._release()

    return Exported


def metadata(id: str, version: str, description: str, subscribes: Iterable[str],
             actions: Iterable[ActionKind], *, outcomes: Iterable[Outcome] = (),
             classes: Iterable[EventClass] = (),
             partition: PartitionKey = PartitionKey.GLOBAL) -> Metadata:
    """What the rule says about itself.

    ``subscribes``: event kinds, exact or a prefix ending in ``*`` (``*``
    alone: every event). ``actions``: the action kinds the rule may request.
    ``outcomes`` and ``classes`` narrow the subscription to events with one
    of those outcomes / of one of those classes (empty, the default: any).
    ``partition`` names what the rule's state is keyed by: with ``ACTOR``,
    ``SUBJECT_USER`` or ``CLIENT_IP`` the host may judge events of different
    keys in parallel on separate instances with separate state, so every
    state key the rule uses must belong to that one entity (``deny:{user.id}``
    with ``SUBJECT_USER``, where ``user`` is :func:`subject_user`). The
    default, ``GLOBAL``, is always correct: every event on one instance.
    """
    return Metadata(id=id, version=version, description=description,
                    subscribes=list(subscribes), outcomes=list(outcomes),
                    classes=list(classes), actions=list(actions), partition=partition)


def finding(severity: Severity, title: str, subject: str, **details) -> Finding:
    """A finding; keyword arguments become details (values as strings, ``None`` skipped)."""
    pairs: List[Tuple[str, str]] = [(k, str(v)) for k, v in details.items() if v is not None]
    return Finding(severity=severity, title=title, subject=subject, details=pairs)


def subject_user(event: Event) -> Optional[Principal]:
    """The user an event is about: the first ``User`` target, else the actor."""
    for target in event.targets:
        if target.kind == "User":
            return target
    return event.actor


def attribute(event: Event, name: str) -> Optional[str]:
    """An extra attribute by name (``is-proxy``, ``client-app``, ...); the
    same as ``event.attribute(name)``."""
    return event.attribute(name)


def suspend_user(user: str, duration_secs: Optional[int] = None) -> Action:
    return types.Action_SuspendUser(types.SuspendUser(user=user, duration_secs=duration_secs))


def revoke_sessions(user: str) -> Action:
    return types.Action_RevokeSessions(user)


def reset_factors(user: str) -> Action:
    return types.Action_ResetFactors(user)


def activate_policy(policy: str) -> Action:
    return types.Action_ActivatePolicy(policy)


def add_to_group(user: str, group: str) -> Action:
    return types.Action_AddToGroup(types.GroupMembership(user=user, group=group))


def block_ip(ip: str, duration_secs: Optional[int] = None) -> Action:
    return types.Action_BlockIp(types.BlockIp(ip=ip, duration_secs=duration_secs))


def _message(severity: Severity, summary: str, details) -> types.Message:
    return types.Message(severity=severity, summary=summary,
                         details=[(k, str(v)) for k, v in dict(details).items()])


def notify(severity: Severity, summary: str, details=()) -> Action:
    return types.Action_Notify(_message(severity, summary, details))


def escalate(severity: Severity, summary: str, details=()) -> Action:
    return types.Action_Escalate(_message(severity, summary, details))


def describe(answer: Union[Receipt, Denial]) -> str:
    """What became of a request, for a finding's details."""
    if isinstance(answer, Denial):
        return f"denied ({_DENIAL_NAMES[answer.reason]}): {answer.message}"
    return f"{answer.decision.name.lower().replace('_', '-')} ({answer.action_id})"


# The names the audit log and the Rust SDK use.
_DENIAL_NAMES = {
    DenialReason.NOT_GRANTED: "not-granted",
    DenialReason.PROTECTED_TARGET: "protected",
    DenialReason.BUDGET_EXCEEDED: "budget",
    DenialReason.INVALID: "invalid",
}
