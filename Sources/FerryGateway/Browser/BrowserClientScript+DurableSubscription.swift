extension BrowserClientScript {
    /// The part of `ferry.js` that receives at-least-once pushes (`FerryPushProtocol`; the Swift
    /// counterpart is `FerryPushReceiver`): the routes and meta keys of the exchange and the
    /// module-private class behind `FerryClient.subscribe`.
    static let durableSubscription = #"""
// At-least-once pushes: the exchange of FerryPushProtocol.
const RESUME_ROUTE = '/ferry/push/resume';
const DELIVER_ROUTE = '/ferry/push/deliver';
const ACK_ROUTE = '/ferry/push/ack';
const DeliveryMeta = Object.freeze({ ROUTE: 'X-Ferry-Route', OFFSET: 'X-Ferry-Offset', EPOCH: 'X-Ferry-Epoch', LOST: 'X-Ferry-Lost' });

/** `position` as a frozen `{epoch, offset}`, or null when it is not one (a page's saved value may be anything). */
function streamPosition(position) {
  if (typeof position?.epoch !== 'string' || !Number.isSafeInteger(position.offset) || position.offset < 0) return null;
  return Object.freeze({ epoch: position.epoch, offset: position.offset });
}

/**
 * The state behind `FerryClient.subscribe`: it resumes the user's stream on each connection,
 * hands the deliveries to the handlers one at a time in offset order (a single queue for the
 * whole client, so that a message still being processed when the connection drops is not
 * processed again when it comes back), drops what was processed already, and acknowledges the
 * latest position with at most one ack in flight.
 *
 * `client` is what it needs of the FerryClient: `call(connection, route, args)`,
 * `handlers(route)`, `connection()` (the current one) and `unsubscribe()`.
 */
class DurableSubscription {
  /** The last message processed, `{epoch, offset}`, or null. */
  position;
  /** Deliveries dropped because their offset was processed already. */
  duplicatesDropped = 0;
  /** Messages the gateway reported lost (expired or over the mailbox's cap). */
  lostMessages = 0;
  /** Settles with the first resume's answer `{epoch, offset, epochChanged, lost}`. */
  started;

  #client;
  #onposition;
  #onlost;
  #queue = Promise.resolve();
  #acking = false;
  #first = null;

  constructor(client, { position = null, onposition = null, onlost = null } = {}) {
    this.#client = client;
    this.position = streamPosition(position);
    this.#onposition = onposition;
    this.#onlost = onlost;
    this.started = new Promise((resolve, reject) => { this.#first = { resolve, reject }; });
  }

  /** Resumes the stream on a newly authenticated connection, after the last message processed. */
  resume(connection) {
    // Deliveries may overtake the answer: they wait in `buffered` until it is handled.
    const state = { resumed: false, buffered: [], acked: null, awaitingResend: null };
    connection.durable = state;
    const from = this.position;
    this.#client.call(connection, RESUME_ROUTE, from ? { epoch: from.epoch, offset: from.offset } : { offset: 0 }).then(
      (resumed) => {
        // Resuming told the gateway that everything through `from` is processed.
        state.acked = from;
        state.resumed = true;
        this.#enqueue(() => this.#adopt(resumed));
        for (const delivery of state.buffered.splice(0)) this.#enqueue(() => this.#process(connection, delivery));
      },
      (error) => this.#resumeFailed(connection, error));
  }

  /** A PUSH to the delivery route on `connection`. */
  delivered(connection, message) {
    const state = connection.durable;
    if (!state) return;
    const meta = metaObject(message.meta);
    const offset = Number(meta[DeliveryMeta.OFFSET]);
    const lost = Number(meta[DeliveryMeta.LOST] ?? 0);
    const route = meta[DeliveryMeta.ROUTE];
    const epoch = meta[DeliveryMeta.EPOCH];
    if (!route || !epoch || !Number.isSafeInteger(offset) || offset < 1) {
      console.warn('ferry: dropping a delivery without route, offset or epoch');
      return;
    }
    const delivery = { route, epoch, offset, lost: Number.isSafeInteger(lost) ? lost : 0, meta, message };
    if (state.resumed) this.#enqueue(() => this.#process(connection, delivery));
    else state.buffered.push(delivery);
  }

  /** The client closed for good: a subscription not started yet fails with `error`. */
  ended(error) {
    this.#first?.reject(error);
    this.#first = null;
  }

  #enqueue(step) {
    this.#queue = this.#queue.then(step).catch((error) => console.error('ferry: at-least-once delivery failed', error));
  }

  #resumeFailed(connection, error) {
    // A dropped connection resumes again on the next one.
    if (error.code === CONNECTION_CLOSED) return;
    if (this.#first) {
      this.ended(error);
      this.#client.unsubscribe();
      return;
    }
    // It worked on an earlier connection: try again on a new one, with the reconnection's backoff.
    console.warn(`ferry: resuming at-least-once pushes failed (${error.message}); connecting again`);
    if (this.#client.connection() === connection) connection.socket.close();
  }

  /** Takes the gateway's answer to a resume: a new epoch starts over from its first message. */
  #adopt(resumed) {
    if (resumed.epochChanged || this.position?.epoch !== resumed.epoch) this.#moveTo({ epoch: resumed.epoch, offset: 0 });
    if (resumed.lost > 0) this.#reportLost(resumed.lost);
    this.#first?.resolve(resumed);
    this.#first = null;
    this.#acknowledge();
  }

  async #process(connection, delivery) {
    const state = connection.durable;
    const { route, epoch, offset } = delivery;
    if (state.awaitingResend) {
      // A handler failed: what follows its message comes again with it, after it.
      if (state.awaitingResend.epoch === epoch && offset > state.awaitingResend.offset) return;
      state.awaitingResend = null;
    }
    if (this.position?.epoch === epoch && offset <= this.position.offset) {
      this.duplicatesDropped += 1;
      return this.#acknowledge();
    }
    let body;
    try {
      body = decodeBody(delivery.message);
    } catch (error) {
      console.warn(`ferry: skipping message ${offset} to ${route}, whose body cannot be decoded: ${error.message}`);
      return this.#processed(delivery);
    }
    const context = { route, meta: delivery.meta, epoch, offset, lost: delivery.lost };
    try {
      for (const handler of [...this.#client.handlers(route)]) await handler(body, context);
    } catch (error) {
      console.error(`ferry: push handler for ${route} failed on message ${offset}, which will come again`, error);
      state.awaitingResend = { epoch, offset };
      return;
    }
    this.#processed(delivery);
  }

  #processed(delivery) {
    this.#moveTo({ epoch: delivery.epoch, offset: delivery.offset });
    if (delivery.lost > 0) this.#reportLost(delivery.lost);
    this.#acknowledge();
  }

  #moveTo(position) {
    this.position = Object.freeze(position);
    try { this.#onposition?.(this.position); } catch (error) { console.error('ferry: onposition failed', error); }
  }

  #reportLost(count) {
    this.lostMessages += count;
    try { this.#onlost?.(count); } catch (error) { console.error('ferry: onlost failed', error); }
  }

  /** Acks the latest position on the current connection; a call in flight picks up newer ones when it returns. */
  async #acknowledge() {
    if (this.#acking) return;
    this.#acking = true;
    try {
      for (;;) {
        const connection = this.#client.connection();
        const state = connection?.durable;
        const position = this.position;
        if (!state?.resumed || !position || position.offset === 0) return;
        if (state.acked?.epoch === position.epoch && state.acked.offset >= position.offset) return;
        try {
          await this.#client.call(connection, ACK_ROUTE, { epoch: position.epoch, offset: position.offset });
        } catch (error) {
          // The next message processed (or the resend of one) acks again.
          if (error.code !== CONNECTION_CLOSED) console.warn(`ferry: acknowledging message ${position.offset} failed: ${error.message}`);
          return;
        }
        state.acked = position;
      }
    } finally {
      this.#acking = false;
    }
  }
}
"""#
}
