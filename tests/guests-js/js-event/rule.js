// Test guest: reports every field of every event as the SDK's Event reads
// it, so tests/languages.rs can compare them with `vigil normalize` (and
// with the Python twin, tests/guests-py/python-event).
//
// Subscribes to successes only (`outcomes`), so the test also sees the host
// route by the metadata's filter. Keeps the previous call's event, which a
// rule must not do, to show that reading it afterwards is a clean RuleError
// rather than a use of a dead handle.

import * as vigil from '../../../plugin-sdk/js/vigil.js';

let previous;

/** A field as text; Python and JavaScript guests render alike. */
function text(value) {
  return value === undefined || value === null ? '-' : String(value);
}

function principal(p) {
  if (!p) return '-';
  return `${p.id}|${p.kind}|${text(p.login)}|${text(p.displayName)}`;
}

function raw(event, pointer) {
  try {
    return text(event.raw(pointer));
  } catch (e) {
    if (e instanceof vigil.RuleError) return `error: ${e.message}`;
    throw e;
  }
}

class JsEvent {
  metadata() {
    return vigil.metadata('js-event', '0.0.1', 'test guest: reports what it reads', ['*'], [], {
      outcomes: ['success'],
      // One instance: the previous event is kept across calls.
      partition: 'global',
    });
  }

  onEvent(host, event) {
    let stale = '-';
    if (previous !== undefined) stale = raw(previous, '/never/read');
    previous = event;

    // One attribute before all of them: the host's `attribute` getter.
    const isProxy = text(vigil.attribute(event, 'is-proxy'));
    const geo = event.geo;
    const user = vigil.subjectUser(event);
    return [
      vigil.finding('info', 'fields', event.id, [
        ['id', text(event.id)],
        ['source', text(event.source)],
        ['kind', text(event.kind)],
        ['class', text(event.class)],
        ['time', text(event.time)],
        ['actor', principal(event.actor)],
        ['targets', event.targets.map(principal).join(';')],
        ['outcome', text(event.outcome)],
        ['outcome-reason', text(event.outcomeReason)],
        ['client-ip', text(event.clientIp)],
        ['geo', geo ? `${text(geo.country)}|${text(geo.city)}` : '-'],
        ['user-agent', text(event.userAgent)],
        ['factor', text(event.factor)],
        ['is-proxy', isProxy],
        ['attributes', event.attributes.map(([k, v]) => `${k}=${v}`).join(';')],
        ['subject-user', user ? user.id : '-'],
        ['raw-uuid', raw(event, '/uuid')],
        ['raw-missing', raw(event, '/no/such/field')],
        ['raw-malformed', raw(event, 'no-leading-slash')],
        ['stale', stale],
      ]),
    ];
  }
}

export const { metadata, onEvent } = vigil.exportRule(new JsEvent());
