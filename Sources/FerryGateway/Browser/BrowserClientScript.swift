/// The browser client `ferry.js`, served by the gateway at `GET /ferry.js` (see
/// ``FerryGateway``): an ES module with no dependencies that speaks erpc v6's WebSocket JSON
/// sub-protocol to the gateway's WebSocket listener. It authenticates with a token (AUTH_CALL),
/// calls routes, sends and receives pushes, reconnects with exponential backoff, and receives
/// at-least-once pushes (`FerryPushProtocol`): it resumes the user's stream from a position the
/// page keeps, drops duplicates by offset and acknowledges what its handlers processed.
///
/// The module is one file; its source is kept here in three parts: this header with the wire
/// helpers, the at-least-once subscription (``durableSubscription``) and the client class
/// (``client``).
enum BrowserClientScript {
    /// The module's source.
    static let source = [prelude, durableSubscription, client].joined(separator: "\n")

    /// The module's header comment (its documentation), constants and wire helpers.
    static let prelude = #"""
// ferry.js: Ferry's browser client. It speaks erpc v6's WebSocket JSON sub-protocol to a Ferry
// gateway's WebSocket listener: it authenticates with a token, calls routes, sends and receives
// pushes, and reconnects (authenticating again) when the connection drops. No dependencies.
//
//   import { FerryClient } from '/ferry.js';
//   const client = await FerryClient.connect('ws://127.0.0.1:5040/ws', { token: 'alice' });
//   client.on('/chat/msg', (body) => console.log('push', body));
//   console.log(await client.call('/math/add', { a: 1, b: 2 })); // 3
//   client.close();
//
// At-least-once pushes (a gateway with durable pushes on): messages stored for the user reach
// the same `on(route)` handlers, in order, one at a time (a handler may be async: the next
// message waits for it), with `{route, meta, epoch, offset, lost}` as their second argument.
// `subscribe` resumes the user's stream after the last message processed, now and after every
// reconnect; the client drops the copies that resends bring (by offset), acknowledges each
// message once its handlers have returned, and tells the new position so that the page can
// keep it across reloads:
//
//   const key = `ferry.position.${client.user}`;
//   client.on('/chat/msg', async (body, { offset }) => show(offset, body)); // before subscribe
//   await client.subscribe({
//     position: JSON.parse(localStorage.getItem(key)),  // null: from the oldest message kept
//     onposition: (position) => localStorage.setItem(key, JSON.stringify(position)),
//     onlost: (count) => console.warn(`${count} messages expired before they were delivered`),
//   });
//   client.position; // {epoch, offset}: the last message processed
//
// A handler that throws (or rejects) leaves its message unacknowledged: the gateway sends it
// again, after its resend time or at the next reconnect, and the client passes over what follows
// it until then. A message whose body cannot be decoded, or that no handler takes, counts as
// processed. When the stream's epoch changes (its history is gone, e.g. a gateway with an
// in-memory mailbox restarted), the client starts over from the stream's oldest message.

/** Message types (`mtype`). */
export const MessageType = Object.freeze({ CALL: 1, REPLY: 2, PUSH: 3, AUTH_CALL: 4, AUTH_REPLY: 5 });

/** Body codec ids (`bodyCodec`): each codec's letter as a byte. */
export const Codec = Object.freeze({ NONE: 0, FORM: 102, JSON: 106, PLAIN: 115 });

/** The client's states, as `client.state` and `onstatechange` tell them. */
export const State = Object.freeze({
  CONNECTING: 'connecting', OPEN: 'open', RECONNECTING: 'reconnecting', CLOSED: 'closed',
});

/** A failed call or connection; `status` is the Ferry status `{code, message, cause}`. */
export class FerryError extends Error {
  constructor(code, message, cause = '') {
    super(cause ? `${code} ${message}: ${cause}` : `${code} ${message}`);
    this.name = 'FerryError';
    this.code = code;
    this.status = { code, message, cause };
  }
}

const CONNECTION_CLOSED = 102;
const DIAL_FAILED = 105;
const TIMED_OUT = 408;
const TIMEOUT_META_KEY = 'X-Ferry-Timeout';
const HEARTBEAT_ROUTE = '/heartbeat';
// The gateway pushes the reason here before it closes a session on purpose (kicked, replaced).
const CLOSING_ROUTE = '/gateway/closing';

// Query strings (meta and status): every byte but A-Z a-z 0-9 * - . _ is %XX, upper case.
const escapeQuery = (text) =>
  encodeURIComponent(text).replace(/[!'()~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

function unescapeQuery(text) {
  const spaced = text.replace(/\+/g, ' ');
  try { return decodeURIComponent(spaced); } catch { return spaced; }
}

/** `[[key, value]]` as a query string; `=` is left out when the value is empty. */
const encodeQuery = (pairs) =>
  pairs.map(([key, value]) => (value === '' ? escapeQuery(key) : `${escapeQuery(key)}=${escapeQuery(value)}`)).join('&');

function decodeQuery(text) {
  return (text ?? '').split('&').filter((part) => part !== '').map((part) => {
    const equals = part.indexOf('=');
    return equals < 0 ? [unescapeQuery(part), ''] : [unescapeQuery(part.slice(0, equals)), unescapeQuery(part.slice(equals + 1))];
  });
}

/** `{key: value or [values]}` as `[[key, value]]`. */
const metaPairs = (meta) =>
  Object.entries(meta ?? {}).flatMap(([key, values]) => [].concat(values).map((value) => [key, String(value)]));

/** A meta string as `{key: first value}`. */
const metaObject = (text) =>
  decodeQuery(text).reduce((meta, [key, value]) => (key in meta ? meta : { ...meta, [key]: value }), {});

/** The error a message's status string names, or null when it is OK. */
function statusError(text) {
  const status = metaObject(text);
  const code = Number(status.code ?? 0);
  return code === 0 ? null : new FerryError(code, status.msg ?? '', status.cause ?? '');
}

/** A message's body, decoded by its codec: JSON, a form as an object, anything else as text. */
function decodeBody(message) {
  const body = message.body ?? '';
  if ((message.xferPipe ?? []).length > 0) throw new FerryError(400, 'Bad Message', 'transfer filters are not supported');
  switch (message.bodyCodec) {
    case Codec.JSON: return body === '' ? undefined : JSON.parse(body);
    case Codec.FORM: return Object.fromEntries(decodeQuery(body));
    default: return body;
  }
}
"""#
}
