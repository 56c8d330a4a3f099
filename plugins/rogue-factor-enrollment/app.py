"""rogue-factor-enrollment: an MFA factor enrolled from somewhere the user has
never been seen.

The attacker who stole a password registers their own device as a factor. A
new factor (Okta ``user.mfa.factor.activate``, Entra "User registered
security info") from an IP *and* a country never seen for that user within
``history_days`` (default 7) → reset-factors + revoke-sessions + escalate.

The rule learns where each user signs in from successful sign-ins (Okta
``user.session.start`` / ``user.authentication.sso``, Entra sign-ins). Blind
spots: a user with no sign-in history in the window is not judged (every
first enrollment would fire); an enrollment event without a client IP cannot
be judged; Entra directory audits carry the IP (``initiatedBy.user.ipAddress``)
but no location, so for them an unseen IP alone decides; proxies and shared
egress IPs make a stolen session look familiar.
"""

import vigil
from vigil import ActionKind, Outcome, PartitionKey, Severity

SIGN_INS = ["user.session.start", "user.authentication.sso", "Sign-in activity"]
ENROLLMENTS = ["user.mfa.factor.activate", "User registered security info"]


class RogueFactorEnrollment(vigil.Rule):
    def metadata(self):
        return vigil.metadata(
            "rogue-factor-enrollment",
            "0.1.0",
            "Resets factors and sessions when an MFA factor is enrolled from an IP and "
            "country never seen for the user",
            subscribes=SIGN_INS + ENROLLMENTS,
            actions=[ActionKind.RESET_FACTORS, ActionKind.REVOKE_SESSIONS, ActionKind.ESCALATE],
            # Every state key names the subject user (`seen:{user.id}`, ...).
            partition=PartitionKey.SUBJECT_USER,
        )

    def on_event(self, host, event):
        user = vigil.subject_user(event)
        if user is None:
            return []
        window = host.config_int("history_days", 7) * vigil.DAY_MS
        country = event.geo.country if event.geo else None

        if event.kind in SIGN_INS:
            if event.outcome == Outcome.SUCCESS and event.client_ip:
                self.remember(host, user.id, event.client_ip, country, window)
            return []

        ip = event.client_ip
        if not ip or host.get(f"seen:{user.id}") is None:
            return []
        known_ip = host.get(f"ip:{user.id}:{ip}") is not None
        known_country = country is not None and host.get(f"country:{user.id}:{country}") is not None
        # The enrolling device is now "seen" either way, so one rogue
        # enrollment fires once.
        self.remember(host, user.id, ip, country, window)
        if known_ip or known_country:
            return []

        login = user.login or user.id
        reset = host.request(vigil.reset_factors(user.id))
        revoke = host.request(vigil.revoke_sessions(user.id))
        escalate = host.request(vigil.escalate(
            Severity.CRITICAL,
            f"{login} enrolled MFA factor {event.factor or 'unknown'} from {ip} "
            f"({country or 'unknown country'}), never seen for this user",
            {"user": user.id, "ip": ip, "country": country or "unknown"},
        ))
        return [vigil.finding(
            Severity.CRITICAL,
            f"Rogue MFA factor enrollment for {login}",
            user.id,
            login=login,
            ip=ip,
            country=country,
            factor=event.factor,
            reset_factors=vigil.describe(reset),
            revoke_sessions=vigil.describe(revoke),
            escalate=vigil.describe(escalate),
        )]

    @staticmethod
    def remember(host, user_id, ip, country, window):
        host.set(f"seen:{user_id}", "1", window)
        host.set(f"ip:{user_id}:{ip}", "1", window)
        if country:
            host.set(f"country:{user_id}:{country}", "1", window)


WitWorld = vigil.export_rule(RogueFactorEnrollment)
