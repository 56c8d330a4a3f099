"""{{name}}: a user denies `threshold` (default 3) Okta Verify pushes within
5 minutes -> a finding and an escalation."""

import vigil
from vigil import ActionKind, PartitionKey, Severity

WINDOW_MS = 5 * vigil.MINUTE_MS


class MyRule(vigil.Rule):
    def metadata(self):
        return vigil.metadata(
            "{{name}}", "0.1.0",
            "Escalates when a user denies several MFA pushes in 5 minutes",
            subscribes=["user.mfa.okta_verify.deny_push"],
            actions=[ActionKind.ESCALATE],
            # State is keyed by the user the event is about (`deny:{user.id}`).
            partition=PartitionKey.SUBJECT_USER,
        )

    def on_event(self, host, event):
        user = vigil.subject_user(event)
        if user is None:
            return []
        threshold = host.config_int("threshold", 3)
        denials = host.counter_add(f"deny:{user.id}", WINDOW_MS)
        if denials != threshold:
            return []
        login = user.login or user.id
        answer = host.request(vigil.escalate(
            Severity.HIGH, f"{login} denied {denials} MFA pushes in 5 minutes", {"user": user.id}))
        return [vigil.finding(Severity.HIGH, f"Denied pushes for {login}", user.id,
                              denials=denials, escalate=vigil.describe(answer))]


WitWorld = vigil.export_rule(MyRule)
