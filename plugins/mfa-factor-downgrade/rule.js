/**
 * mfa-factor-downgrade: a user with a phishing-resistant factor falls back
 * to a phishable one.
 *
 * An attacker who cannot pass FIDO2/WebAuthn or Okta FastPass (signed nonce)
 * talks the help desk or a recovery flow into a weaker factor, then enrolls
 * or uses SMS, voice or email. The rule remembers, per user, the last
 * successful strong factor (enrolled or used) for `history_days` (default 7,
 * 1–7: the host's longest state TTL). A later successful event with a weak
 * factor for a user with such a record → one high finding and an `escalate`
 * request, at most once per user per `dedupe_hours` (default 24, 1–168).
 *
 * Events: Okta `user.mfa.factor.activate` (enrollment),
 * `user.authentication.auth_via_mfa` and `user.authentication.verify` (use),
 * outcome SUCCESS only (the subscription says so; the rule checks again). The factor is Okta's `debugContext.debugData.factor`,
 * matched case-insensitively on substrings: strong = webauthn | fido |
 * signed_nonce | fastpass; weak = sms | call | voice | email. Anything else
 * (OKTA_VERIFY_PUSH, TOTP, …) is neither.
 *
 * Blind spots: a strong factor last used more than `history_days` ago is
 * forgotten (a dormant FIDO user downgraded later is not seen); events
 * without a factor (most Entra records) are ignored; a weak factor that is
 * only enrolled and used while the event lacks `debugData.factor` is missed;
 * an organisation that legitimately allows SMS as a fallback for FIDO users
 * will see one finding per user per `dedupe_hours`.
 *
 * Build:
 *   componentize-js plugins/mfa-factor-downgrade/rule.js --wit wit -n rule \
 *     -d http fetch-event -o mfa-factor-downgrade.wasm
 */

import * as vigil from '../../plugin-sdk/js/vigil.js';

const SUBSCRIBES = [
  'user.mfa.factor.activate',
  'user.authentication.auth_via_mfa',
  'user.authentication.verify',
];

const STRONG = ['webauthn', 'fido', 'signed_nonce', 'fastpass'];
const WEAK = ['sms', 'call', 'voice', 'email'];

/**
 * 'strong', 'weak' or undefined for a factor string.
 * @param {string|undefined} factor
 */
function strength(factor) {
  if (!factor) return undefined;
  const f = factor.toLowerCase();
  if (STRONG.some((s) => f.includes(s))) return 'strong';
  if (WEAK.some((s) => f.includes(s))) return 'weak';
  return undefined;
}

/**
 * A whole-number setting within `[min, max]`.
 * @param {vigil.Host} host
 */
function boundedInt(host, key, defaultValue, min, max) {
  const value = host.configInt(key, defaultValue);
  if (value < min || value > max) {
    throw new vigil.RuleError(`config \`${key}\` must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

class MfaFactorDowngrade {
  metadata() {
    return vigil.metadata(
      'mfa-factor-downgrade',
      '0.1.0',
      'Escalates when a user who used or enrolled a phishing-resistant factor ' +
        '(FIDO2/WebAuthn, FastPass) enrolls or uses SMS, voice or email',
      SUBSCRIBES,
      ['escalate'],
      // Only successes are judged; every state key names the subject user.
      { outcomes: ['success'], partition: 'subject-user' },
    );
  }

  /**
   * @param {vigil.Host} host
   * @param {vigil.Event} event
   */
  onEvent(host, event) {
    if (event.outcome !== 'success') return [];
    const kind = strength(event.factor);
    if (kind === undefined) return [];
    const user = vigil.subjectUser(event);
    if (!user) return [];

    const historyMs = BigInt(boundedInt(host, 'history_days', 7, 1, 7)) * vigil.DAY_MS;
    const dedupeMs = BigInt(boundedInt(host, 'dedupe_hours', 24, 1, 168)) * vigil.HOUR_MS;
    const strongKey = `strong:${user.id}`;

    if (kind === 'strong') {
      host.set(strongKey, event.factor, historyMs);
      return [];
    }

    const strongFactor = host.get(strongKey);
    if (strongFactor === undefined) return [];
    const firedKey = `fired:${user.id}`;
    if (host.get(firedKey) !== undefined) return [];
    host.set(firedKey, event.id, dedupeMs);

    const login = user.login ?? user.id;
    const ip = event.clientIp ?? 'unknown';
    const verb = event.kind === 'user.mfa.factor.activate' ? 'enrolled' : 'used';
    const answer = host.request(
      vigil.escalate(
        'high',
        `${login} ${verb} weak MFA factor ${event.factor} from ${ip} after using ${strongFactor}`,
        { user: user.id, strong_factor: strongFactor, weak_factor: event.factor, ip },
      ),
    );
    return [
      vigil.finding('high', `MFA factor downgrade for ${login}`, user.id, {
        login,
        strong_factor: strongFactor,
        weak_factor: event.factor,
        event_kind: event.kind,
        ip: event.clientIp,
        escalate: vigil.describe(answer),
      }),
    ];
  }
}

export const { metadata, onEvent } = vigil.exportRule(new MfaFactorDowngrade());
