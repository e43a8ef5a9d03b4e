// One realtime session over /v1/realtime (native protocol): binary frames are PCM16 chunks,
// text frames JSON. Browsers cannot set headers on a WebSocket, so the API key travels as the
// `api_key` query parameter. Audio captured before the server has taken the configuration
// (sample rate, hot words) waits in a queue, so nothing at the start is lost.

const CLOSE_WAIT_MS = 15000;

export function realtimeUrl({ apiKey, model, language }) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({ model });
  if (language) query.set("language", language);
  if (apiKey) query.set("api_key", apiKey);
  return `${scheme}//${location.host}/v1/realtime?${query}`;
}

export class LiveSession {
  // handlers: onEvent(event), onError(message, fatal), onClosed()
  constructor(url, config, handlers) {
    this.config = config;
    this.handlers = handlers;
    this.queue = [];
    this.configured = false;
    this.finished = false;
    this.socket = new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.socket.onmessage = (message) => this.receive(message);
    this.socket.onclose = (event) => this.closed(event);
    this.socket.onerror = () => {};
  }

  receive(message) {
    if (typeof message.data !== "string") return;
    const event = JSON.parse(message.data);
    if (event.type === "session.created") {
      this.socket.send(JSON.stringify({ type: "session.configure", ...this.config }));
    } else if (event.type === "session.updated" && !this.configured) {
      this.configured = true;
      for (const chunk of this.queue) this.socket.send(chunk);
      this.queue = [];
    } else if (event.type === "error") {
      this.handlers.onError(event.message, !event.recoverable);
    }
    this.handlers.onEvent(event);
  }

  sendAudio(chunk) {
    if (this.finished) return;
    if (this.configured && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(chunk);
    } else {
      this.queue.push(chunk);
    }
  }

  configure(changes) {
    Object.assign(this.config, changes);
    if (this.configured && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "session.configure", ...changes }));
    }
  }

  // Transcribe what is still open, then close; resolves once the socket is closed.
  finish() {
    this.finished = true;
    const done = new Promise((resolve) => {
      this.whenClosed = resolve;
    });
    if (this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "session.close" }));
      this.timer = setTimeout(() => this.socket.close(1000), CLOSE_WAIT_MS);
    } else if (this.socket.readyState === WebSocket.CONNECTING) {
      this.socket.close();
    } else {
      this.whenClosed();
    }
    return done;
  }

  closed(event) {
    clearTimeout(this.timer);
    if (!this.finished && event.code !== 1000) {
      const why = event.reason || "the connection to the server was lost";
      this.handlers.onError(`Live transcription stopped (${event.code}): ${why}`, true);
    }
    this.finished = true;
    this.handlers.onClosed();
    this.whenClosed?.();
  }
}
