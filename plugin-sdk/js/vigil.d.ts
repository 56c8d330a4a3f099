/**
 * TypeScript declarations for the Vigil rule SDK for JavaScript
 * (`vigil.js`) and the componentize-js shapes of the `vigil:rule@0.2.0`
 * WIT types. See `vigil.js` for usage and the build command.
 *
 * Conventions: record fields are camelCase; enums are kebab-case string
 * literals; variants are `{ tag, val }`; `option<T>` is `T | undefined`;
 * `u64`/`s64` are `bigint`; `list<tuple<string, string>>` is `[string, string][]`.
 */

// ---------------------------------------------------------------- WIT types

/** `event-class`: coarse category of an event. */
export type EventClass =
  | 'authentication'
  | 'mfa-challenge'
  | 'factor-change'
  | 'policy-change'
  | 'account-change'
  | 'session'
  | 'other';

/** `outcome`: normalized outcome of the event. */
export type Outcome = 'success' | 'failure' | 'unknown';

/** `principal`: a user, application, policy or other object named by an event. */
export interface Principal {
  /** The identity provider's stable id (Okta `00u…`, Entra object id). */
  id: string;
  /** The provider's type name: `User`, `PolicyEntity`, `AppInstance`, … */
  kind: string;
  /** Login or user principal name, when the event carries one. */
  login?: string;
  displayName?: string;
}

/** `geo`: where the client was, as the identity provider resolved it. */
export interface Geo {
  country?: string;
  city?: string;
  lat?: number;
  lon?: number;
}

/**
 * `event`: one normalized identity event, held by the host and read on
 * demand. Each field is asked of the host the first time it is read and
 * kept (one host call per field at most). Valid only during the `onEvent`
 * call it is passed to: reading a field not read before after that throws
 * a {@link RuleError}.
 */
export class Event {
  /** Made by {@link exportRule} from the componentize-js `event` resource, not by rules. */
  constructor(handle: WitEvent);
  /** The source's unique id (Okta `uuid`, Entra `id`). */
  readonly id: string;
  /** `okta` or `entra`. */
  readonly source: string;
  /** The source's event type (`user.mfa.factor.activate`, `Sign-in activity`, …). */
  readonly kind: string;
  readonly class: EventClass;
  /** Event time, unix milliseconds (BigInt). State windows use this clock. */
  readonly time: bigint;
  readonly actor: Principal | undefined;
  readonly targets: Principal[];
  readonly outcome: Outcome;
  readonly outcomeReason: string | undefined;
  readonly clientIp: string | undefined;
  readonly geo: Geo | undefined;
  readonly userAgent: string | undefined;
  /** The factor involved (`OKTA_VERIFY_PUSH`, `FIDO_WEBAUTHN`, `sms`, …). */
  readonly factor: string | undefined;
  /** Source fields the event does not name (`is-proxy`, `client-app`, …), in the host's order. */
  readonly attributes: [string, string][];
  /** One source field the event does not name (`is-proxy`, `client-app`, …). */
  attribute(name: string): string | undefined;
  /**
   * Any field of the source record by JSON pointer (RFC 6901,
   * `/debugContext/debugData/risk`) as JSON text, or `undefined` when the
   * record has no such field. Throws a {@link RuleError} with the host's
   * reason when the pointer is malformed or the value is longer than the
   * host's `max_raw_bytes`.
   */
  raw(pointer: string): string | undefined;
}

/** The componentize-js `event` resource the host lends to `onEvent`. */
export interface WitEvent {
  id(): string;
  source(): string;
  kind(): string;
  class(): EventClass;
  time(): bigint;
  actor(): Principal | undefined;
  targets(): Principal[];
  outcome(): Outcome;
  outcomeReason(): string | undefined;
  clientIp(): string | undefined;
  geo(): Geo | undefined;
  userAgent(): string | undefined;
  factor(): string | undefined;
  attribute(name: string): string | undefined;
  attributes(): [string, string][];
  /** Throws an error whose `payload` is the host's reason on `err`. */
  raw(pointer: string): string | undefined;
}

/** `severity`. */
export type Severity = 'info' | 'low' | 'medium' | 'high' | 'critical';

/** `finding`: what a rule reports. The host stamps the rule id and event id. */
export interface Finding {
  severity: Severity;
  title: string;
  /** Who or what the finding is about (a user id, an IP, a policy id). */
  subject: string;
  details: [string, string][];
}

/** `action-kind`: the kinds of action a rule may ask for. */
export type ActionKind =
  | 'suspend-user'
  | 'revoke-sessions'
  | 'reset-factors'
  | 'activate-policy'
  | 'add-to-group'
  | 'block-ip'
  | 'notify'
  | 'escalate';

/** `suspend-user` record. */
export interface SuspendUser {
  user: string;
  /** Undo after this many seconds; undefined means until a human acts. */
  durationSecs?: bigint;
}

/** `group-membership` record. */
export interface GroupMembership {
  user: string;
  group: string;
}

/** `block-ip` record. */
export interface BlockIp {
  ip: string;
  /** Remove the block after this many seconds; undefined means permanent. */
  durationSecs?: bigint;
}

/** `message` record (payload of `notify` and `escalate`). */
export interface Message {
  severity: Severity;
  summary: string;
  details: [string, string][];
}

/** `action` variant: a remediation request. */
export type Action =
  | { tag: 'suspend-user'; val: SuspendUser }
  | { tag: 'revoke-sessions'; val: string }
  | { tag: 'reset-factors'; val: string }
  | { tag: 'activate-policy'; val: string }
  | { tag: 'add-to-group'; val: GroupMembership }
  | { tag: 'block-ip'; val: BlockIp }
  | { tag: 'notify'; val: Message }
  | { tag: 'escalate'; val: Message };

/** `decision`: what the policy gate did with a granted request. */
export type Decision = 'accepted' | 'dry-run' | 'pending-approval' | 'duplicate';

/** `receipt`: a granted request. */
export interface Receipt {
  /** Id of the action in the audit log (`act-…`). */
  actionId: string;
  decision: Decision;
}

/** `denial-reason`. */
export type DenialReason = 'not-granted' | 'protected-target' | 'budget-exceeded' | 'invalid';

/** `denial`: a refused request. */
export interface Denial {
  reason: DenialReason;
  message: string;
}

/** A denial as {@link Host.request} returns it: the WIT record plus a marker. */
export interface DeniedAnswer extends Denial {
  denied: true;
}

/** What {@link Host.request} returns. */
export type Answer = Receipt | DeniedAnswer;

/** `partition-key`: what a rule keys its state by. */
export type PartitionKey = 'actor' | 'subject-user' | 'client-ip' | 'global';

/** `metadata`: what a rule says about itself. */
export interface Metadata {
  id: string;
  version: string;
  description: string;
  /** Exact event kinds, prefixes ending in `*`, or `*` alone. */
  subscribes: string[];
  /** Only events with one of these outcomes are routed to the rule; empty: any. */
  outcomes: Outcome[];
  /** Only events of one of these classes are routed to the rule; empty: any. */
  classes: EventClass[];
  /** Action kinds the rule may request. */
  actions: ActionKind[];
  /** What the rule's state is keyed by (`'global'`: everything on one instance). */
  partition: PartitionKey;
}

/** The optional fields of {@link metadata}. */
export interface MetadataOptions {
  /** Only events with one of these outcomes; omitted or empty: any. */
  outcomes?: readonly Outcome[];
  /** Only events of one of these classes; omitted or empty: any. */
  classes?: readonly EventClass[];
  /**
   * What the rule's state is keyed by. Default `'global'` (always correct);
   * a narrower key lets the host judge different keys in parallel, and is
   * correct only if every state key the rule uses belongs to that entity.
   */
  partition?: PartitionKey;
}

/** `log.level`. */
export type Level = 'debug' | 'info' | 'warn' | 'error';

/** Details for a finding or message: an object, or `[key, value]` pairs. */
export type Details = Record<string, unknown> | ReadonlyArray<readonly [string, unknown]>;

// ---------------------------------------------------------------- helpers

/** The WIT contract version these helpers were written against (`'0.2.0'`). */
export const WIT_VERSION: string;
/** One minute in milliseconds. */
export const MINUTE_MS: bigint;
/** One hour in milliseconds. */
export const HOUR_MS: bigint;
/** One day in milliseconds. */
export const DAY_MS: bigint;

/**
 * Throw from `onEvent` to report an error value (audited as a `rule-fault`
 * with fault `rule-error` and this message). Any other exception traps.
 */
export class RuleError extends Error {
  constructor(message: string);
  /** The `err` string handed to the host (= the message). */
  readonly payload: string;
}

/** Everything a rule can ask of Vigil, scoped to the calling rule. */
export class Host {
  /** Ask for an action; returns the receipt, or the denial as a value. */
  request(action: Action): Answer;
  /** Add `delta` (u32, default 1) to a counter; its total over the last `windowMs`. */
  counterAdd(key: string, windowMs: number | bigint, delta?: number): number;
  /** Total of a counter over the last `windowMs`. */
  counterGet(key: string, windowMs: number | bigint): number;
  /** Record `member`; the distinct members over the last `windowMs`. */
  distinctAdd(key: string, member: string, windowMs: number | bigint): number;
  /** How many distinct members were seen over the last `windowMs`. */
  distinctCount(key: string, windowMs: number | bigint): number;
  /** A stored value, unless it expired. */
  get(key: string): string | undefined;
  /** Store a value; with `ttlMs` it expires that long after the current event. */
  set(key: string, value: string, ttlMs?: number | bigint): void;
  /** Forget a stored value. */
  delete(key: string): void;
  /** A log line, tagged by the host with the rule id. */
  log(level: Level, message: string): void;
  /** A setting from the operator's configuration, as a string. */
  config(key: string): string | undefined;
  /** A whole-number setting, or `defaultValue`; throws {@link RuleError} naming the key on a non-number. */
  configInt(key: string, defaultValue: number): number;
}

/** What a rule implements. Keep no state on the object: use the host's state. */
export interface Rule {
  metadata(): Metadata;
  onEvent(host: Host, event: Event): Finding[] | undefined;
}

/** The component's exports; re-export them from the entry module. */
export interface RuleExports {
  metadata(): Metadata;
  onEvent(event: WitEvent): Finding[];
}

/**
 * Turn a rule into the component's exports:
 * `export const { metadata, onEvent } = exportRule(new MyRule());`
 */
export function exportRule(rule: Rule): RuleExports;

/** True if `answer` is a denial rather than a receipt. */
export function isDenial(answer: unknown): answer is DeniedAnswer;

/** The rule's self-description; unknown `options` keys throw a `TypeError`. */
export function metadata(
  id: string,
  version: string,
  description: string,
  subscribes: readonly string[],
  actions: readonly ActionKind[],
  options?: MetadataOptions,
): Metadata;

/** A finding; detail values become strings, `undefined`/`null` skipped. */
export function finding(severity: Severity, title: string, subject: string, details?: Details): Finding;

/** The user an event is about: the first `User` target, else the actor. */
export function subjectUser(event: Event): Principal | undefined;

/** An extra attribute by name (`is-proxy`, `client-app`, …). */
export function attribute(event: Event, name: string): string | undefined;

export function suspendUser(user: string, durationSecs?: number | bigint): Action;
export function revokeSessions(user: string): Action;
export function resetFactors(user: string): Action;
export function activatePolicy(policy: string): Action;
export function addToGroup(user: string, group: string): Action;
export function blockIp(ip: string, durationSecs?: number | bigint): Action;
export function notify(severity: Severity, summary: string, details?: Details): Action;
export function escalate(severity: Severity, summary: string, details?: Details): Action;

/**
 * What became of a request, for a finding's details: `"accepted (act-…)"`,
 * `"dry-run (act-…)"`, or `"denied (not-granted): message"` (`protected` and
 * `budget` abbreviated as in the audit log).
 */
export function describe(answer: Answer): string;
