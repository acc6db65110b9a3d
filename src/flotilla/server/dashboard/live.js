// The live event feed. It reads the recent event log over REST, then follows it on the
// WebSocket (GET /ws?since=CURSOR), resuming from the last seq it saw after a drop.
// Where the service has no WebSocket (or it fails), it polls GET /events?since= instead,
// and now and then tries the WebSocket again. Either way every event from the start on
// is handed on once, in order.

import { api, token, url } from "./api.js";

const PAGE = 1000;
const HISTORY = 5000; // recent events read at start when the head is known
const MAX_CATCH_UP_PAGES = 200;
const POLL_MS = 1000;
const RETRY_SOCKET_POLLS = 30; // while polling after a working socket dropped
const AUTH_CLOSE = 4401; // the service's close code for a missing, bad or expired token

function socketUrl(query) {
  return url("/ws", { ...query, token: token() }, location.protocol === "https:" ? "wss:" : "ws:");
}

export class Feed {
  constructor({ onEvents, onMode, onAuthClose }) {
    this.onEvents = onEvents; // (events, catchingUp) => void
    this.onMode = onMode; // ("websocket" | "polling" | "offline", detail) => void
    this.onAuthClose = onAuthClose; // the socket refused the token
    this.cursor = 0;
    this.mode = "connecting";
    this.stopped = false;
    this.hadSocket = false;
    this.drops = 0;
    this.polls = 0;
    this.socket = null;
    this.timer = null;
  }

  // Where the log's head is known (/health: bus.last_seq), only the recent events of the
  // `history` kinds are read; otherwise the whole log, page by page.
  async start(history = "") {
    const head = await this.head();
    if (head !== null) {
      const since = Math.max(0, head - HISTORY);
      const recent = await api("GET", "/events", { query: { since, kind: history, limit: HISTORY } });
      this.take(recent.filter((e) => e.seq <= head), true);
      this.cursor = head;
    } else {
      for (let page = 0; page < MAX_CATCH_UP_PAGES && !this.stopped; page++) {
        const batch = await api("GET", "/events", { query: { since: this.cursor, limit: PAGE } });
        this.take(batch, true);
        if (batch.length < PAGE) break;
      }
    }
    if (!this.stopped) this.connect();
  }

  async head() {
    try {
      const seq = (await api("GET", "/health"))?.bus?.last_seq;
      return Number.isInteger(seq) ? seq : null;
    } catch (err) {
      if (err.status === 401) throw err;
      return null; // no head to read: page through the log instead
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.close();
  }

  take(events, catchingUp = false) {
    const fresh = events.filter((e) => typeof e.seq === "number" && e.seq > this.cursor);
    if (!fresh.length) return;
    this.cursor = fresh[fresh.length - 1].seq;
    this.onEvents(fresh, catchingUp);
  }

  setMode(mode, detail = "") {
    this.mode = mode;
    this.onMode(mode, detail);
  }

  connect() {
    let subscribed = false; // the service said so: a socket that only opened proves nothing
    const socket = new WebSocket(socketUrl({ since: this.cursor }));
    this.socket = socket;
    socket.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return; // not JSON: nothing this page understands
      }
      if (frame.subscribed) {
        subscribed = true;
        this.hadSocket = true;
        this.drops = 0;
        this.setMode("websocket");
      } else if (frame.kind) {
        this.take([frame]);
      }
    };
    socket.onclose = (event) => {
      if (this.stopped || socket !== this.socket) return;
      this.socket = null;
      if (event.code === AUTH_CLOSE) {
        this.onAuthClose();
        return;
      }
      if (!subscribed || ++this.drops > 3) {
        this.polls = 0;
        this.poll(); // no WebSocket here (or it keeps failing): read the log over REST
        return;
      }
      this.setMode("offline", "reconnecting…");
      this.timer = setTimeout(() => this.connect(), 500 * 2 ** this.drops);
    };
  }

  async poll() {
    if (this.stopped) return;
    try {
      this.take(await api("GET", "/events", { query: { since: this.cursor, limit: PAGE } }));
      if (this.mode !== "polling") this.setMode("polling");
      if (this.hadSocket && ++this.polls % RETRY_SOCKET_POLLS === 0) {
        this.connect(); // the socket worked before: perhaps the service is back
        return;
      }
    } catch (err) {
      if (err.status === 401) return; // the login takes over
      this.setMode("offline", err.line ?? String(err));
    }
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  // Frames of one kind about one subject (a worker's transcript lines: kind worker.log,
  // subject its id) on a socket of their own. Returns a function that ends the
  // subscription, or null when the feed has no WebSocket (the caller polls instead).
  subscribe(kind, subject, onFrame) {
    if (this.mode !== "websocket") return null;
    const socket = new WebSocket(socketUrl({ kind, subject }));
    socket.onmessage = (message) => {
      try {
        const frame = JSON.parse(message.data);
        if (frame.kind === kind) onFrame(frame);
      } catch {
        // not JSON: ignore
      }
    };
    return () => socket.close();
  }
}
