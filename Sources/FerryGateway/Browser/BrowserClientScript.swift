/// The browser client `ferry.js`, served by the gateway at `GET /ferry.js` (see
/// ``FerryGateway``): an ES module with no dependencies that speaks erpc v6's WebSocket JSON
/// sub-protocol to the gateway's WebSocket listener. It authenticates with a token (AUTH_CALL),
/// calls routes, sends and receives pushes, and reconnects with exponential backoff.
enum BrowserClientScript {
    /// The module's source.
    static let source = #"""
// ferry.js: Ferry's browser client. It speaks erpc v6's WebSocket JSON sub-protocol to a Ferry
// gateway's WebSocket listener: it authenticates with a token, calls routes, sends and receives
// pushes, and reconnects (authenticating again) when the connection drops. No dependencies.
//
//   import { FerryClient } from '/ferry.js';
//   const client = await FerryClient.connect('ws://127.0.0.1:5040/ws', { token: 'alice' });
//   client.on('/chat/msg', (body) => console.log('push', body));
//   console.log(await client.call('/math/add', { a: 1, b: 2 })); // 3
//   client.close();

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

/** A client of one gateway: one authenticated WebSocket at a time, opened again when it drops. */
export class FerryClient {
  /**
   * Creates a client and opens it (see `open`). Options: `token`; `timeoutMs` (calls and
   * connecting, default 10000); `reconnect` (`{baseDelayMs: 500, maxDelayMs: 30000}`, or false
   * for none); `heartbeatMs` (ping the gateway this often, default none);
   * `onstatechange(state, error)`.
   */
  static async connect(url, options = {}) {
    const client = new FerryClient(url, options);
    await client.open();
    return client;
  }

  /** The state: connecting, open, reconnecting or closed. */
  state = State.CONNECTING;
  /** The user ID the gateway gave this client's token. */
  user = null;
  /** Called with (state, error) whenever the state changes. */
  onstatechange = null;

  #url;
  #options;
  #connection = null;
  #handlers = new Map();
  #closed = false;
  #attempt = 0;
  #retryTimer = null;

  constructor(url, options = {}) {
    this.#url = url;
    this.#options = { timeoutMs: 10000, ...options };
    this.#options.reconnect = options.reconnect === false ? false : { baseDelayMs: 500, maxDelayMs: 30000, ...options.reconnect };
    this.onstatechange = options.onstatechange ?? null;
  }

  /**
   * Connects and authenticates, once; rejects with a FerryError when that fails (401 for a
   * refused token). Handlers added with `on` before it see every push.
   */
  async open() {
    if (this.state !== State.CONNECTING || this.#connection) throw new FerryError(1, 'Invalid Operation', 'opened already');
    try {
      await this.#dial();
    } catch (error) {
      this.#closed = true;
      this.#setState(State.CLOSED, error);
      throw error;
    }
    this.#setState(State.OPEN);
  }

  /** Calls `route` with `args` (JSON); resolves to the decoded reply, rejects with a FerryError. */
  async call(route, args, { timeoutMs = this.#options.timeoutMs, meta = {} } = {}) {
    const connection = this.#openConnection();
    return new Promise((resolve, reject) => {
      const callMeta = [...metaPairs(meta), [TIMEOUT_META_KEY, String(Math.max(0, Math.floor(timeoutMs)))]];
      const seq = this.#send(connection, MessageType.CALL, route, callMeta, Codec.JSON, args === undefined ? '' : JSON.stringify(args));
      const timer = setTimeout(() => {
        connection.pending.delete(seq);
        reject(new FerryError(TIMED_OUT, 'Timeout', `no reply from ${route} within ${timeoutMs} ms`));
      }, timeoutMs);
      connection.pending.set(seq, { resolve, reject, timer });
    });
  }

  /** Pushes `args` (JSON) to `route`; no reply. Throws a FerryError (102) when not connected. */
  push(route, args, { meta = {} } = {}) {
    this.#send(this.#openConnection(), MessageType.PUSH, route, metaPairs(meta), Codec.JSON, args === undefined ? '' : JSON.stringify(args));
  }

  /** Calls `handler(body, {route, meta})` for each push to `route`; returns a function that stops it. */
  on(route, handler) {
    if (!this.#handlers.has(route)) this.#handlers.set(route, new Set());
    this.#handlers.get(route).add(handler);
    return () => this.#handlers.get(route)?.delete(handler);
  }

  /** Closes the connection for good: pending calls fail with 102 and no reconnection follows. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    const connection = this.#connection;
    this.#connection = null;
    if (connection) {
      this.#dropConnection(connection, 'closed by the client');
      connection.socket.close(1000);
    }
    this.#setState(State.CLOSED);
  }

  /** Opens one WebSocket and authenticates on it; resolves once the gateway accepted the token. */
  #dial() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.#url);
      socket.binaryType = 'arraybuffer';
      const connection = { socket, nextSeq: 1, pending: new Map(), authenticated: false, heartbeat: null };
      this.#connection = connection;
      let settled = false;
      const settle = (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        if (error) reject(error); else resolve();
      };
      const deadline = setTimeout(() => {
        settle(new FerryError(TIMED_OUT, 'Timeout', `not connected within ${this.#options.timeoutMs} ms`));
        socket.close();
      }, this.#options.timeoutMs);
      socket.onopen = () => this.#send(connection, MessageType.AUTH_CALL, '', [], Codec.PLAIN, this.#options.token ?? '');
      socket.onmessage = (event) => {
        let message;
        try {
          message = JSON.parse(typeof event.data === 'string' ? event.data : new TextDecoder().decode(event.data));
        } catch {
          console.warn('ferry: dropping a message that is not JSON');
          return;
        }
        if (connection.authenticated) return this.#receive(connection, message);
        if (message.mtype !== MessageType.AUTH_REPLY) return;
        const refusal = statusError(message.status);
        if (refusal) {
          refusal.refused = true;
          settle(refusal);
          socket.close();
          return;
        }
        connection.authenticated = true;
        connection.openedAt = Date.now();
        this.user = message.body || null;
        if (this.#options.heartbeatMs > 0) {
          const seconds = String(Math.max(1, Math.round(this.#options.heartbeatMs / 1000)));
          connection.heartbeat = setInterval(() => this.#send(connection, MessageType.PUSH, HEARTBEAT_ROUTE, [['hb_', seconds]], Codec.NONE, ''), this.#options.heartbeatMs);
        }
        settle();
      };
      socket.onclose = (event) => {
        settle(new FerryError(DIAL_FAILED, 'Dial Failed', `the WebSocket closed (code ${event.code})`));
        if (connection.authenticated && this.#connection === connection) this.#connectionDropped(connection);
      };
    });
  }

  /** An open connection lost: fail what waits on it, then reconnect unless closed, told not to, or
   * closed on purpose by the gateway (kicked, or replaced by a newer login). */
  #connectionDropped(connection) {
    this.#dropConnection(connection, 'the connection to the gateway dropped');
    // The backoff starts over only after a connection that lasted, so that two clients whose
    // logins close each other's sessions slow down instead of taking turns forever.
    if (Date.now() - connection.openedAt > this.#options.reconnect.maxDelayMs) this.#attempt = 0;
    this.#connection = null;
    if (connection.closingReason) {
      // Closed on purpose by the gateway: dialling again would only undo it.
      this.#closed = true;
      this.#setState(State.CLOSED, new FerryError(CONNECTION_CLOSED, 'Connection Closed', `the gateway closed the session: ${connection.closingReason}`));
    } else if (this.#closed || !this.#options.reconnect) {
      this.#closed = true;
      this.#setState(State.CLOSED);
    } else {
      this.#reconnectLater();
    }
  }

  #dropConnection(connection, cause) {
    clearInterval(connection.heartbeat);
    for (const { reject, timer } of connection.pending.values()) {
      clearTimeout(timer);
      reject(new FerryError(CONNECTION_CLOSED, 'Connection Closed', cause));
    }
    connection.pending.clear();
  }

  /** Exponential backoff with jitter: each wait is between half and all of min(max, base * 2^attempt). */
  #reconnectLater() {
    const { baseDelayMs, maxDelayMs } = this.#options.reconnect;
    const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** this.#attempt);
    this.#attempt += 1;
    this.#setState(State.RECONNECTING);
    this.#retryTimer = setTimeout(async () => {
      try {
        await this.#dial();
        this.#setState(State.OPEN);
      } catch (error) {
        if (this.#closed) return;
        this.#connection = null;
        if (error.refused) {
          this.#closed = true;
          this.#setState(State.CLOSED, error);
        } else {
          this.#reconnectLater();
        }
      }
    }, ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  #openConnection() {
    const connection = this.#connection;
    if (!connection?.authenticated || connection.socket.readyState !== WebSocket.OPEN) {
      throw new FerryError(CONNECTION_CLOSED, 'Connection Closed', `not connected (${this.state})`);
    }
    return connection;
  }

  /** Sends a message this side originates, with the connection's next sequence number. */
  #send(connection, mtype, route, meta, bodyCodec, body) {
    const seq = connection.nextSeq;
    connection.nextSeq = seq >= 0x7fffffff ? 1 : seq + 1;
    this.#write(connection, { seq, mtype, serviceMethod: route, meta: encodeQuery(meta), bodyCodec, body, xferPipe: [] });
    return seq;
  }

  #write(connection, message) {
    connection.socket.send(JSON.stringify(message));
  }

  #receive(connection, message) {
    switch (message.mtype) {
      case MessageType.REPLY: return this.#receiveReply(connection, message);
      case MessageType.PUSH: return this.#receivePush(connection, message);
      case MessageType.CALL: {
        // The gateway's heartbeat may come as a call; this client serves no other route.
        const found = message.serviceMethod === HEARTBEAT_ROUTE;
        const status = found ? undefined : `code=404&msg=Not%20Found&cause=${escapeQuery(`the browser serves no ${message.serviceMethod}`)}`;
        return this.#write(connection, {
          seq: message.seq, mtype: MessageType.REPLY, serviceMethod: '', meta: '', bodyCodec: Codec.NONE, body: '',
          xferPipe: message.xferPipe ?? [], ...(status && { status }),
        });
      }
    }
  }

  #receiveReply(connection, message) {
    const call = connection.pending.get(message.seq);
    if (!call) return;
    connection.pending.delete(message.seq);
    clearTimeout(call.timer);
    const failure = statusError(message.status);
    if (failure) return call.reject(failure);
    try {
      call.resolve(decodeBody(message));
    } catch (error) {
      call.reject(error instanceof FerryError ? error : new FerryError(400, 'Bad Message', `the reply body is not valid: ${error.message}`));
    }
  }

  #receivePush(connection, message) {
    if (message.serviceMethod === CLOSING_ROUTE) {
      try { connection.closingReason = decodeBody(message)?.reason ?? 'closed'; } catch { connection.closingReason = 'closed'; }
    }
    const handlers = this.#handlers.get(message.serviceMethod);
    if (!handlers?.size) return;
    let body;
    try {
      body = decodeBody(message);
    } catch (error) {
      console.warn(`ferry: dropping a push to ${message.serviceMethod}: ${error.message}`);
      return;
    }
    const context = { route: message.serviceMethod, meta: metaObject(message.meta) };
    for (const handler of handlers) {
      try { handler(body, context); } catch (error) { console.error(`ferry: push handler for ${context.route} failed`, error); }
    }
  }

  #setState(state, error) {
    if (this.state === state && !error) return;
    this.state = state;
    this.onstatechange?.(state, error);
  }
}
"""#
}
