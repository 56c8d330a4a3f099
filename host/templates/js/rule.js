// {{name}}: a user denies `threshold` (default 3) Okta Verify pushes within
// 5 minutes -> a finding and an escalation.

import * as vigil from './vigil.js';

const WINDOW_MS = 5n * vigil.MINUTE_MS;

class MyRule {
  metadata() {
    return vigil.metadata(
      '{{name}}', '0.1.0',
      'Escalates when a user denies several MFA pushes in 5 minutes',
      ['user.mfa.okta_verify.deny_push'],
      ['escalate'],
      // State is keyed by the user the event is about (`deny:${user.id}`).
      { partition: 'subject-user' },
    );
  }

  onEvent(host, event) {
    const user = vigil.subjectUser(event);
    if (!user) return [];
    const threshold = host.configInt('threshold', 3);
    const denials = host.counterAdd(`deny:${user.id}`, WINDOW_MS);
    if (denials !== threshold) return [];
    const login = user.login ?? user.id;
    const answer = host.request(vigil.escalate(
      'high', `${login} denied ${denials} MFA pushes in 5 minutes`, { user: user.id }));
    return [vigil.finding('high', `Denied pushes for ${login}`, user.id,
      { denials, escalate: vigil.describe(answer) })];
  }
}

export const { metadata, onEvent } = vigil.exportRule(new MyRule());
