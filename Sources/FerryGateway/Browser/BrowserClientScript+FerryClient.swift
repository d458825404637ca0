extension BrowserClientScript {
    /// The part of `ferry.js` that holds the `FerryClient` class: the connection, calls, pushes,
    /// reconnection, and `subscribe` for at-least-once pushes.
    static let client = #"""
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

  /** At-least-once pushes: the last message processed, `{epoch, offset}` (null before `subscribe`). */
  get position() { return this.#subscription?.position ?? null; }
  /** At-least-once pushes dropped because their offset was processed already (resends, replays). */
  get duplicatesDropped() { return this.#subscription?.duplicatesDropped ?? 0; }

  #url;
  #options;
  #connection = null;
  #handlers = new Map();
  #closed = false;
  #attempt = 0;
  #retryTimer = null;
  #subscription = null;

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
  async call(route, args, options = {}) {
    return this.#call(this.#openConnection(), route, args, options);
  }

  /** Calls `route` on `connection`; fails at once with 102 when it is no longer open. */
  #call(connection, route, args, { timeoutMs = this.#options.timeoutMs, meta = {} } = {}) {
    if (connection.socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new FerryError(CONNECTION_CLOSED, 'Connection Closed', `not connected (${this.state})`));
    }
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

  /**
   * Calls `handler(body, {route, meta})` for each push to `route`, and `handler(body, {route,
   * meta, epoch, offset, lost})` for each at-least-once message to it (see `subscribe`), whose
   * acknowledgement waits for the promise `handler` returns. Returns a function that stops it.
   */
  on(route, handler) {
    if (!this.#handlers.has(route)) this.#handlers.set(route, new Set());
    this.#handlers.get(route).add(handler);
    return () => this.#handlers.get(route)?.delete(handler);
  }

  /**
   * Receives at-least-once pushes: resumes the user's stream after `position` (a position
   * `onposition` gave earlier; null or anything else: from the oldest message kept), now if the
   * client is open and after each reconnect. Messages go to the `on` handlers of their route, in
   * order, one at a time; once a message's handlers have returned it is acknowledged and
   * `onposition({epoch, offset})` is called, for the page to keep. `onlost(count)` tells messages
   * that expired before they were delivered. Add the handlers first: a message that no handler
   * takes counts as processed. Resolves with the first resume's answer `{epoch, offset,
   * epochChanged, lost}`; rejects when the gateway refuses it (405 when it keeps no mailbox), and
   * the client is then not subscribed.
   */
  subscribe({ position = null, onposition = null, onlost = null } = {}) {
    if (this.#closed) return Promise.reject(new FerryError(CONNECTION_CLOSED, 'Connection Closed', 'the client is closed'));
    if (this.#subscription) return Promise.reject(new FerryError(1, 'Invalid Operation', 'subscribed already'));
    const subscription = new DurableSubscription({
      call: (connection, route, args) => this.#call(connection, route, args),
      handlers: (route) => this.#handlers.get(route) ?? [],
      connection: () => this.#connection,
      unsubscribe: () => { if (this.#subscription === subscription) this.#subscription = null; },
    }, { position, onposition, onlost });
    this.#subscription = subscription;
    if (this.#connection?.authenticated) subscription.resume(this.#connection);
    return subscription.started;
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
        this.#subscription?.resume(connection);
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
    if (message.serviceMethod === DELIVER_ROUTE) return this.#subscription?.delivered(connection, message);
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
    if (state === State.CLOSED) this.#subscription?.ended(error ?? new FerryError(CONNECTION_CLOSED, 'Connection Closed', 'the client closed'));
    this.onstatechange?.(state, error);
  }
}
"""#
}
