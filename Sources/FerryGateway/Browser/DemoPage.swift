import Foundation

/// The demo page served at `GET /ferry/demo?token=USER`: it loads `/ferry.js`, connects to the
/// gateway's WebSocket listener with the token from its query, calls `/math/add` with
/// `{"a":1,"b":2}`, and lists the pushes it receives on `/chat/msg`. It also subscribes to the
/// user's at-least-once pushes, resuming from the position it keeps in `localStorage` under
/// `ferry.position.USER`, so that a reload shows only what came after.
///
/// What it shows lives in elements a test can read: `#state` (connecting, open, reconnecting,
/// closed), `#user`, `#add-result`, `#error`, `#delivery` (`on …` once at-least-once pushes
/// are resumed, `off: …` when the gateway refuses them), `#position` (`OFFSET in EPOCH`) and one
/// `li` per push in `#pushes`, whose text is the push's body and, for an at-least-once message,
/// whose `data-offset` is its offset.
enum DemoPage {
    /// Where the page's WebSocket listener is. The page takes the host from its own URL, so that
    /// the address it was opened at (not the listener's bind address) is the one it dials.
    struct WebSocketEndpoint: Encodable {
        var port: Int
        var path: String
    }

    /// The page for a gateway whose WebSocket listener is `endpoint` (nil: it has none, and the
    /// page says so). `?ws=URL` in the page's query overrides the endpoint.
    static func html(webSocket endpoint: WebSocketEndpoint?) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let configuration = (try? encoder.encode(endpoint)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
        // Inside a <script> element nothing may read as a closing tag.
        let embedded = configuration.replacingOccurrences(of: "<", with: #"\u003c"#)
        return #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ferry browser client</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 40rem; }
  dt { font-weight: 600; margin-top: .5rem; }
  dd { margin: 0; font-family: ui-monospace, monospace; }
  #error { color: #b00020; }
  #pushes li[data-offset]::before { content: "#" attr(data-offset) " "; color: #666; font-family: ui-monospace, monospace; }
</style>
</head>
<body>
<h1>Ferry browser client</h1>
<dl>
  <dt>WebSocket</dt><dd id="url"></dd>
  <dt>State</dt><dd id="state">loading</dd>
  <dt>User</dt><dd id="user"></dd>
  <dt>/math/add {"a":1,"b":2}</dt><dd id="add-result"></dd>
  <dt>Error</dt><dd id="error"></dd>
  <dt>At-least-once pushes</dt><dd id="delivery"></dd>
  <dt>Last processed</dt><dd id="position"></dd>
</dl>
<h2>Pushes on /chat/msg</h2>
<ul id="pushes"></ul>
<script type="application/json" id="ferry-websocket">\#(embedded)</script>
<script type="module">
import { FerryClient } from '/ferry.js';

const show = (id, text) => { document.getElementById(id).textContent = text; };
const query = new URLSearchParams(location.search);
const endpoint = JSON.parse(document.getElementById('ferry-websocket').textContent);

function webSocketURL() {
  if (query.get('ws')) return query.get('ws');
  if (!endpoint) return null;
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.hostname}:${endpoint.port}${endpoint.path}`;
}

async function main() {
  const url = webSocketURL();
  const token = query.get('token');
  if (!url) throw new Error('this gateway has no WebSocket listener');
  if (!token) throw new Error('open this page with ?token=YOUR_TOKEN');
  show('url', url);
  show('state', 'connecting');
  const client = new FerryClient(url, {
    token,
    onstatechange: (state, error) => {
      show('state', state);
      if (error) show('error', error.message);
    },
  });
  window.ferryClient = client;
  client.on('/chat/msg', (body, { offset }) => {
    const item = document.createElement('li');
    item.textContent = typeof body === 'string' ? body : JSON.stringify(body);
    if (offset !== undefined) item.dataset.offset = String(offset);
    document.getElementById('pushes').append(item);
  });
  await client.open();
  show('user', client.user ?? '');
  subscribe(client);
  const sum = await client.call('/math/add', { a: 1, b: 2 });
  show('add-result', JSON.stringify(sum));
}

// At-least-once pushes, from the position kept for this user in this browser.
function subscribe(client) {
  const key = `ferry.position.${client.user}`;
  let saved = null;
  try { saved = JSON.parse(localStorage.getItem(key)); } catch { saved = null; }
  const showPosition = (position) => show('position', position ? `${position.offset} in ${position.epoch}` : '');
  client.subscribe({
    position: saved,
    onposition: (position) => {
      localStorage.setItem(key, JSON.stringify(position));
      showPosition(position);
    },
    onlost: (count) => show('error', `${count} messages expired before they were delivered`),
  }).then(
    (resumed) => {
      show('delivery', `on: the stream is at ${resumed.offset} in ${resumed.epoch}${resumed.epochChanged ? ' (a new epoch: from its start)' : ''}`);
      showPosition(client.position);
    },
    (error) => show('delivery', `off: ${error.message}`));
}

main().catch((error) => show('error', error.message));
</script>
</body>
</html>
"""#
    }
}
