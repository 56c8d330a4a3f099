// Hostile JavaScript guest: throws on every other call. Shows that a JS
// throw fails only that call (audited as a rule fault), that the instance is
// rebuilt, and that the host-side state survives (the call counter keeps
// counting).

import * as vigil from '../../../plugin-sdk/js/vigil.js';

class JsThrow {
  metadata() {
    // One call counter across every event: partition 'global'.
    return vigil.metadata('js-throw', '0.0.1', 'hostile test guest: throws', ['*'], [], {
      partition: 'global',
    });
  }

  onEvent(host, event) {
    const call = host.counterAdd('calls', 7n * vigil.DAY_MS);
    if (call % 2 === 1) {
      throw new TypeError(`js-throw failed on call ${call}`);
    }
    return [vigil.finding('info', 'survived', event.id, { call })];
  }
}

export const { metadata, onEvent } = vigil.exportRule(new JsThrow());
