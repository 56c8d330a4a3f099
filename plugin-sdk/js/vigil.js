/**
 * Vigil rule SDK for JavaScript (componentize-js).
 *
 * Typed helpers over the componentize-js bindings of the `vigil:rule@0.2.0`
 * world, with the names of the Python helper (`plugin-sdk/python/vigil.py`)
 * in camelCase. A rule is an object with `metadata()` and
 * `onEvent(host, event)`; `exportRule` turns it into the component's exports.
 *
 * The event is an {@link Event}: its fields (`event.kind`, `event.clientIp`,
 * `event.actor`, …) are read from the host when first used, once each, so a
 * rule pays only for what it reads. It is valid for the one `onEvent` call
 * it is passed to.
 *
 * ```js
 * import * as vigil from '../../plugin-sdk/js/vigil.js';
 *
 * class MyRule {
 *   metadata() {
 *     return vigil.metadata('my-rule', '0.1.0', 'What it detects',
 *                           ['user.mfa.factor.activate'], ['escalate'],
 *                           { partition: 'subject-user' });
 *   }
 *   onEvent(host, event) {
 *     const user = vigil.subjectUser(event);
 *     if (!user) return [];
 *     const seen = host.counterAdd(`n:${user.id}`, 10n * vigil.MINUTE_MS);
 *     ...
 *     const answer = host.request(vigil.escalate('high', 'summary', { user: user.id }));
 *     return [vigil.finding('high', 'title', user.id,
 *                           { ip: event.clientIp, escalate: vigil.describe(answer) })];
 *   }
 * }
 *
 * export const { metadata, onEvent } = vigil.exportRule(new MyRule());
 * ```
 *
 * The entry module must export `metadata` and `onEvent` itself (the
 * destructuring `export const` above works with componentize-js 0.23).
 *
 * Build (Vigil provides no wasi:http, so the fetch-event feature must be
 * disabled with `-d http fetch-event`):
 *
 *     componentize-js rule.js --wit wit -n rule -d http fetch-event -o rule.wasm
 *
 * Binding conventions (componentize-js): records are objects with camelCase
 * fields (`user.displayName`, `receipt.actionId`), and so are the event's
 * getters (`event.clientIp`, `event.outcomeReason`); enums are kebab-case
 * strings (`'high'`, `'factor-change'`, `'dry-run'`); variants are
 * `{ tag, val }`; an `option` is `undefined` or the value; `u64`/`s64` are
 * BigInt (`event.time` is a BigInt); `list<tuple<string, string>>` is an
 * array of `[key, value]` pairs.
 *
 * Errors: a {@link RuleError} thrown from `onEvent` becomes the export's
 * `err(string)` value, which Vigil audits as a `rule-fault` with fault
 * `rule-error` and the error's message. Anything else thrown (an `Error`, a
 * `TypeError` from a bug, even a thrown string) traps the call, audited as a
 * `rule-fault` with fault `trap` and the uninformative message "wasm
 * `unreachable` instruction executed" (componentize-js tries to encode the
 * Error object as the err string and aborts). `exportRule` therefore writes
 * the exception, with its stack, to the rule's log at level `error` before
 * rethrowing, so the operator sees it in Vigil's output. Either way the
 * instance is rebuilt and the next event still runs. Keep no state in module
 * or object variables: use the host's state, which is replay-safe.
 *
 * Imports outside the entry file's directory (like `../../plugin-sdk/js/`)
 * resolve only when componentize-js runs from a directory that contains
 * both files (the repository root): it preopens the current directory when
 * the source is under it, else only the source's own directory.
 *
 * @module vigil
 */

import { request as actionsRequest } from 'vigil:rule/actions@0.2.0';
import {
  counterAdd as stateCounterAdd,
  counterGet as stateCounterGet,
  distinctAdd as stateDistinctAdd,
  distinctCount as stateDistinctCount,
  get as stateGet,
  set as stateSet,
  delete as stateDelete,
} from 'vigil:rule/state@0.2.0';
import { log as hostLog } from 'vigil:rule/log@0.2.0';
import { get as configGet } from 'vigil:rule/config@0.2.0';

/** The WIT contract version these helpers were written against. */
export const WIT_VERSION = '0.2.0';

/** One minute in milliseconds (BigInt, like the state API's windows). */
export const MINUTE_MS = 60_000n;
/** One hour in milliseconds (BigInt). */
export const HOUR_MS = 60n * MINUTE_MS;
/** One day in milliseconds (BigInt). */
export const DAY_MS = 24n * HOUR_MS;

/**
 * Throw from `onEvent` to report an error value: Vigil audits it as a
 * `rule-fault` with fault `rule-error` and the message. It carries its
 * message as `payload`, which is what componentize-js returns as the
 * `err(string)` of `on-event` (a thrown value without `payload` that is an
 * `Error` traps instead).
 */
export class RuleError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'RuleError';
    /** The `err` value handed to the host. */
    this.payload = String(message);
  }
}

// The host's event handle and the values read from it, on an Event.
const HANDLE = Symbol('vigil.event.handle');
const CACHE = Symbol('vigil.event.cache');

/**
 * One normalized identity event, held by the host and read on demand.
 *
 * The fields keep the camelCase names of the WIT getters (`id`, `source`,
 * `kind`, `class`, `time`, `actor`, `targets`, `outcome`, `outcomeReason`,
 * `clientIp`, `geo`, `userAgent`, `factor`, `attributes`) and are read like
 * properties. Each is asked of the host the first time it is read and kept,
 * so reading `event.clientIp` twice costs one host call and a field never
 * read costs none. The getters live on the prototype: spreading or
 * `JSON.stringify`-ing an event copies nothing.
 *
 * An event is valid only during the `onEvent` call it is passed to: reading
 * a field not read before after that throws a {@link RuleError}, so keep
 * the values a rule needs, not the event.
 */
export class Event {
  /**
   * Made by {@link exportRule}, not by rules.
   * @param {object} handle the componentize-js `event` resource
   */
  constructor(handle) {
    this[HANDLE] = handle;
    this[CACHE] = new Map();
  }

  /**
   * A value from the cache, or from `fetch(handle)` once.
   * @param {string} key
   * @param {(handle: object) => unknown} fetch
   */
  #read(key, fetch) {
    const cache = this[CACHE];
    if (cache.has(key)) return cache.get(key);
    const handle = this[HANDLE];
    if (handle === undefined) {
      throw new RuleError(
        'event read after its onEvent call returned: keep the values the rule needs, not the event',
      );
    }
    const value = fetch(handle);
    cache.set(key, value);
    return value;
  }

  /** The source's unique id for the event (Okta `uuid`, Entra `id`). @type {string} */
  get id() {
    return this.#read('id', (h) => h.id());
  }

  /** `okta` or `entra`. @type {string} */
  get source() {
    return this.#read('source', (h) => h.source());
  }

  /** The source's event type (`user.mfa.okta_verify.deny_push`, …). @type {string} */
  get kind() {
    return this.#read('kind', (h) => h.kind());
  }

  /** Coarse category (`'authentication'`, `'factor-change'`, …). @type {string} */
  get class() {
    return this.#read('class', (h) => h.class());
  }

  /** Event time, unix milliseconds (BigInt). State windows use this clock. @type {bigint} */
  get time() {
    return this.#read('time', (h) => h.time());
  }

  /** @type {object|undefined} a `principal` */
  get actor() {
    return this.#read('actor', (h) => h.actor());
  }

  /** @type {object[]} `principal`s */
  get targets() {
    return this.#read('targets', (h) => h.targets());
  }

  /** `'success'`, `'failure'` or `'unknown'`. @type {string} */
  get outcome() {
    return this.#read('outcome', (h) => h.outcome());
  }

  /** @type {string|undefined} */
  get outcomeReason() {
    return this.#read('outcomeReason', (h) => h.outcomeReason());
  }

  /** @type {string|undefined} */
  get clientIp() {
    return this.#read('clientIp', (h) => h.clientIp());
  }

  /** @type {object|undefined} a `geo` */
  get geo() {
    return this.#read('geo', (h) => h.geo());
  }

  /** @type {string|undefined} */
  get userAgent() {
    return this.#read('userAgent', (h) => h.userAgent());
  }

  /** The factor involved (`OKTA_VERIFY_PUSH`, `sms`, `fido2`, …). @type {string|undefined} */
  get factor() {
    return this.#read('factor', (h) => h.factor());
  }

  /**
   * All source fields the event does not name, as `[name, value]` pairs in
   * the host's order. To read one, {@link Event#attribute} is cheaper.
   * @type {Array<[string, string]>}
   */
  get attributes() {
    return this.#read('attributes', (h) => h.attributes());
  }

  /**
   * One source field the event does not name (`is-proxy`, `client-app`,
   * `authentication-requirement`, …).
   * @param {string} name
   * @returns {string|undefined}
   */
  attribute(name) {
    const all = this[CACHE].get('attributes');
    if (all !== undefined) {
      for (const [key, value] of all) {
        if (key === name) return value;
      }
      return undefined;
    }
    return this.#read(`attribute:${name}`, (h) => h.attribute(String(name)));
  }

  /**
   * Any field of the source record by JSON pointer (RFC 6901,
   * `/debugContext/debugData/risk`) as JSON text (`'"HIGH"'`, `'3'`,
   * `'{"a":1}'`; `JSON.parse` it), or `undefined` when the record has no
   * such field.
   * @param {string} pointer
   * @returns {string|undefined}
   * @throws {RuleError} with the host's reason when the pointer is malformed
   *   or the value is longer than the host's `max_raw_bytes`
   */
  raw(pointer) {
    return this.#read(`raw:${pointer}`, (h) => {
      try {
        return h.raw(String(pointer));
      } catch (e) {
        if (e !== null && typeof e === 'object' && 'payload' in e) {
          throw new RuleError(`event.raw(${JSON.stringify(pointer)}): ${e.payload}`);
        }
        throw e;
      }
    });
  }
}

/**
 * A whole, non-negative number of milliseconds/seconds as the BigInt a
 * `u64` parameter needs.
 * @param {string} what name for the error message
 * @param {number|bigint} value
 * @returns {bigint}
 */
function u64(what, value) {
  if (typeof value === 'bigint') {
    if (value < 0n) throw new RangeError(`${what} must not be negative, got ${value}`);
    return value;
  }
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) {
    return BigInt(value);
  }
  throw new RangeError(`${what} must be a whole non-negative number, got ${String(value)}`);
}

/**
 * An optional `u64`: `undefined`/`null` stay `undefined` (none).
 * @param {string} what
 * @param {number|bigint|undefined|null} value
 * @returns {bigint|undefined}
 */
function optU64(what, value) {
  return value === undefined || value === null ? undefined : u64(what, value);
}

/**
 * True if `answer` (from {@link Host#request}) is a denial rather than a
 * receipt.
 * @param {unknown} answer
 * @returns {boolean}
 */
export function isDenial(answer) {
  return (
    answer !== null &&
    typeof answer === 'object' &&
    typeof answer.reason === 'string' &&
    !('actionId' in answer)
  );
}

/** Everything a rule can ask of Vigil, scoped to the calling rule. */
export class Host {
  /**
   * Ask for an action. The policy gate decides; the decision is audited
   * before anything is executed.
   * @param {object} action an action built by {@link suspendUser}, {@link escalate}, …
   * @returns {object} the receipt `{ actionId, decision }`, or the denial
   *   `{ reason, message, denied: true }` as a value (see {@link isDenial})
   */
  request(action) {
    try {
      return actionsRequest(action);
    } catch (e) {
      if (e !== null && typeof e === 'object' && 'payload' in e) {
        return { ...e.payload, denied: true };
      }
      throw e;
    }
  }

  /**
   * Add `delta` to a counter and return the largest total of any `windowMs`
   * window around the current event (in time order: the last `windowMs`),
   * whatever order events arrive in.
   * @param {string} key
   * @param {number|bigint} windowMs
   * @param {number} [delta=1] a u32
   * @returns {number}
   */
  counterAdd(key, windowMs, delta = 1) {
    if (!Number.isInteger(delta) || delta < 0 || delta > 0xffffffff) {
      throw new RangeError(`delta must be a u32, got ${String(delta)}`);
    }
    return Number(stateCounterAdd(key, u64('windowMs', windowMs), delta));
  }

  /**
   * A counter's largest total of any `windowMs` window around the current event.
   * @param {string} key
   * @param {number|bigint} windowMs
   * @returns {number}
   */
  counterGet(key, windowMs) {
    return Number(stateCounterGet(key, u64('windowMs', windowMs)));
  }

  /**
   * Record `member` in a set; returns the most distinct members of any
   * `windowMs` window around the current event.
   * @param {string} key
   * @param {string} member
   * @param {number|bigint} windowMs
   * @returns {number}
   */
  distinctAdd(key, member, windowMs) {
    return Number(stateDistinctAdd(key, member, u64('windowMs', windowMs)));
  }

  /**
   * The most distinct members of any `windowMs` window around the current event.
   * @param {string} key
   * @param {number|bigint} windowMs
   * @returns {number}
   */
  distinctCount(key, windowMs) {
    return Number(stateDistinctCount(key, u64('windowMs', windowMs)));
  }

  /**
   * The value in effect at the current event's time (set at or before it,
   * not expired, not deleted); a value set by a later event is invisible.
   * @param {string} key
   * @returns {string|undefined}
   */
  get(key) {
    return stateGet(key);
  }

  /**
   * Store a value, optionally expiring `ttlMs` after the current event's time.
   * @param {string} key
   * @param {string} value
   * @param {number|bigint} [ttlMs] omitted/undefined: never expires
   */
  set(key, value, ttlMs) {
    stateSet(key, String(value), optU64('ttlMs', ttlMs));
  }

  /**
   * Forget a stored value.
   * @param {string} key
   */
  delete(key) {
    stateDelete(key);
  }

  /**
   * A structured log line, tagged by the host with the rule id.
   * @param {'debug'|'info'|'warn'|'error'} level
   * @param {string} message
   */
  log(level, message) {
    hostLog(level, String(message));
  }

  /**
   * A setting from the operator's configuration, as a string.
   * @param {string} key
   * @returns {string|undefined}
   */
  config(key) {
    return configGet(key);
  }

  /**
   * A whole-number setting, or `defaultValue` when it is not set.
   * @param {string} key
   * @param {number} defaultValue
   * @returns {number}
   * @throws {RuleError} naming the key when the value is not a whole number
   */
  configInt(key, defaultValue) {
    const value = configGet(key);
    if (value === undefined) return defaultValue;
    const text = value.trim();
    if (!/^[+-]?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw new RuleError(`config \`${key}\` must be a whole number, got ${JSON.stringify(value)}`);
    }
    return Number(text);
  }
}

/**
 * What a thrown value says, with the stack of an `Error`.
 * @param {unknown} e
 */
function explain(e) {
  return e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
}

/**
 * Turn a rule object (`{ metadata(), onEvent(host, event) }`) into the
 * component's exports. Use from the entry module:
 *
 *     export const { metadata, onEvent } = exportRule(new MyRule());
 *
 * `onEvent` is called with a {@link Host} and the {@link Event} and must
 * return an array of findings (`undefined` counts as none). A
 * {@link RuleError} it throws (or any object with a `payload`) becomes the
 * `err` value (fault `rule-error`); any other exception is written to the
 * rule's log at level `error` with its stack and traps the call (fault
 * `trap`). An exception from `metadata` is logged the same way.
 * @param {{ metadata(): object, onEvent(host: Host, event: Event): object[] }} rule
 * @returns {{ metadata: () => object, onEvent: (event: object) => object[] }}
 */
export function exportRule(rule) {
  const host = new Host();
  return {
    metadata() {
      try {
        return rule.metadata();
      } catch (e) {
        hostLog('error', `uncaught exception in metadata: ${explain(e)}`);
        throw e instanceof Error ? e : new Error(String(e));
      }
    },
    onEvent(handle) {
      const event = new Event(handle);
      let findings;
      try {
        findings = rule.onEvent(host, event);
      } catch (e) {
        if (e !== null && typeof e === 'object' && 'payload' in e) throw e; // RuleError: err value
        // componentize-js would only trap with "expected a string, received
        // [object]" and lose the exception; put it in the rule's log first.
        hostLog('error', `uncaught exception in onEvent (event ${event.id}): ${explain(e)}`);
        throw e instanceof Error ? e : new Error(String(e));
      } finally {
        // The host's borrow of the event ends when onEvent returns.
        event[HANDLE] = undefined;
      }
      if (findings === undefined || findings === null) return [];
      if (!Array.isArray(findings)) {
        const message = `onEvent must return an array of findings, got ${typeof findings}`;
        hostLog('error', message);
        throw new TypeError(message);
      }
      return findings;
    },
  };
}

const METADATA_OPTIONS = ['outcomes', 'classes', 'partition'];

/**
 * The rule's self-description.
 *
 * `options.outcomes` and `options.classes` narrow the subscription to events
 * with one of those outcomes (`'success'`, `'failure'`, `'unknown'`) / of
 * one of those classes (`'factor-change'`, …); empty or omitted: any.
 * `options.partition` names what the rule's state is keyed by: with
 * `'actor'`, `'subject-user'` or `'client-ip'` the host may judge events of
 * different keys in parallel on separate instances with separate state, so
 * every state key the rule uses must belong to that one entity
 * (`` `deny:${user.id}` `` with `'subject-user'`, where `user` is
 * {@link subjectUser}). The default, `'global'`, is always correct: every
 * event on one instance.
 * @param {string} id
 * @param {string} version
 * @param {string} description
 * @param {string[]} subscribes event kinds, or prefixes ending in `*`
 * @param {string[]} actions action kinds (`'escalate'`, `'suspend-user'`, …)
 * @param {{ outcomes?: string[], classes?: string[], partition?: string }} [options]
 * @returns {object} a `metadata` record
 */
export function metadata(id, version, description, subscribes, actions, options = {}) {
  const given = options ?? {};
  for (const key of Object.keys(given)) {
    if (!METADATA_OPTIONS.includes(key)) {
      throw new TypeError(
        `metadata option \`${key}\` is unknown (expected ${METADATA_OPTIONS.join(', ')})`,
      );
    }
  }
  const { outcomes = [], classes = [], partition = 'global' } = given;
  return {
    id,
    version,
    description,
    subscribes: [...subscribes],
    outcomes: [...outcomes],
    classes: [...classes],
    actions: [...actions],
    partition,
  };
}

/**
 * Key/value details as the WIT `list<tuple<string, string>>`: values become
 * strings, `undefined`/`null` values are skipped. Accepts an object or an
 * array of `[key, value]` pairs.
 * @param {object|Array<[string, unknown]>} [details]
 * @returns {Array<[string, string]>}
 */
function pairs(details) {
  if (details === undefined || details === null) return [];
  const entries = Array.isArray(details) ? details : Object.entries(details);
  const out = [];
  for (const [key, value] of entries) {
    if (value !== undefined && value !== null) out.push([String(key), String(value)]);
  }
  return out;
}

/**
 * A finding; `details` values become strings, `undefined`/`null` skipped.
 * @param {'info'|'low'|'medium'|'high'|'critical'} severity
 * @param {string} title
 * @param {string} subject who or what it is about (a user id, an IP, …)
 * @param {object|Array<[string, unknown]>} [details]
 * @returns {object} a `finding` record
 */
export function finding(severity, title, subject, details) {
  return { severity, title, subject, details: pairs(details) };
}

/**
 * The user an event is about: the first `User` target, else the actor.
 * @param {Event} event
 * @returns {object|undefined} a `principal`
 */
export function subjectUser(event) {
  for (const target of event.targets) {
    if (target.kind === 'User') return target;
  }
  return event.actor;
}

/**
 * An extra attribute by name (`is-proxy`, `client-app`, …); the same as
 * `event.attribute(name)`.
 * @param {Event} event
 * @param {string} name
 * @returns {string|undefined}
 */
export function attribute(event, name) {
  return event.attribute(name);
}

/**
 * Suspend a user; with `durationSecs`, unsuspend after that long.
 * @param {string} user
 * @param {number|bigint} [durationSecs]
 */
export function suspendUser(user, durationSecs) {
  return { tag: 'suspend-user', val: { user, durationSecs: optU64('durationSecs', durationSecs) } };
}

/**
 * Revoke a user's sessions (and OAuth tokens).
 * @param {string} user
 */
export function revokeSessions(user) {
  return { tag: 'revoke-sessions', val: user };
}

/**
 * Reset a user's MFA factors.
 * @param {string} user
 */
export function resetFactors(user) {
  return { tag: 'reset-factors', val: user };
}

/**
 * Re-activate a policy (or conditional access policy).
 * @param {string} policy
 */
export function activatePolicy(policy) {
  return { tag: 'activate-policy', val: policy };
}

/**
 * Add a user to a group.
 * @param {string} user
 * @param {string} group
 */
export function addToGroup(user, group) {
  return { tag: 'add-to-group', val: { user, group } };
}

/**
 * Block an IP; with `durationSecs`, remove the block after that long.
 * @param {string} ip
 * @param {number|bigint} [durationSecs]
 */
export function blockIp(ip, durationSecs) {
  return { tag: 'block-ip', val: { ip, durationSecs: optU64('durationSecs', durationSecs) } };
}

/**
 * Send a notification.
 * @param {'info'|'low'|'medium'|'high'|'critical'} severity
 * @param {string} summary
 * @param {object|Array<[string, unknown]>} [details] as for {@link finding}
 */
export function notify(severity, summary, details) {
  return { tag: 'notify', val: { severity, summary, details: pairs(details) } };
}

/**
 * Escalate to a human (open an incident).
 * @param {'info'|'low'|'medium'|'high'|'critical'} severity
 * @param {string} summary
 * @param {object|Array<[string, unknown]>} [details] as for {@link finding}
 */
export function escalate(severity, summary, details) {
  return { tag: 'escalate', val: { severity, summary, details: pairs(details) } };
}

// The names the audit log, the Rust SDK and the Python helper use.
const DENIAL_NAMES = {
  'not-granted': 'not-granted',
  'protected-target': 'protected',
  'budget-exceeded': 'budget',
  invalid: 'invalid',
};

/**
 * What became of a request, for a finding's details: `"dry-run (act-…)"`,
 * `"accepted (act-…)"`, or `"denied (not-granted): message"` (reasons
 * `protected` and `budget` are abbreviated as in the audit log).
 * @param {object} answer what {@link Host#request} returned
 * @returns {string}
 */
export function describe(answer) {
  if (isDenial(answer)) {
    return `denied (${DENIAL_NAMES[answer.reason] ?? answer.reason}): ${answer.message}`;
  }
  return `${answer.decision} (${answer.actionId})`;
}
