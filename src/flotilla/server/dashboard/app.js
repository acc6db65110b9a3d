// The dashboard's entry point: sign-in, then the live views over one event feed.

import { api, ApiError, claims, onAuthLost, setToken, token } from "./api.js";
import { WorkerDetail } from "./detail.js";
import { Workflows } from "./graph.js";
import { TaskBoard } from "./board.js";
import { renderLeaderboard } from "./leaderboard.js";
import { Feed } from "./live.js";
import { Stream, STREAM_KINDS } from "./stream.js";
import { clock, debounce, h, TERMINAL } from "./util.js";
import { WorkersTable } from "./workers.js";

const ACTIVE_REFRESH_MS = 2000; // CPU, RAM, runtime and tokens change without events
const IDLE_REFRESH_MS = 15000;
const SAFETY_REFRESH_MS = 30000;
const MAX_NOTICES = 6;

const $ = (id) => document.getElementById(id);

const notify = {
  error: (text) => notice(text, "error"),
  info: (text) => notice(text, "info"),
};

function notice(text, kind) {
  const item = h("li", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", {}, text),
    h("button", { type: "button", class: "plain", title: "dismiss", onclick: () => item.remove() }, "×"));
  $("notices").prepend(item);
  if (kind === "info") setTimeout(() => item.remove(), 6000);
  while ($("notices").childElementCount > MAX_NOTICES) $("notices").lastElementChild.remove();
}

let session = null;

class Session {
  constructor(viewer) {
    this.viewer = viewer;
    this.timers = [];
    this.workersTimer = null;
    this.selected = null;
    this.feed = new Feed({
      onEvents: (events, catchingUp) => this.events(events, catchingUp),
      onMode: (mode, detail) => showMode(mode, detail),
      // The socket refused the token: a REST call tells (a 401 brings the login back).
      onAuthClose: () => api("GET", "/dashboard/me").then(() => this.feed.poll(), () => {}),
    });
    $("detail").hidden = true;
    this.table = new WorkersTable($("workers-view"), (w) => this.select(w));
    this.detail = new WorkerDetail($("detail"), { feed: this.feed, viewer, notify,
      onChange: (answer) => answer === null ? this.select(null) : this.refreshWorkers() });
    this.workflows = new Workflows($("workflows-view"), notify);
    this.tasks = new TaskBoard($("tasks"), notify);
    this.stream = new Stream($("stream-view"));
    this.workersSoon = debounce(() => this.refreshWorkers(), 150);
    this.workflowsSoon = debounce(() => this.workflows.refresh(), 400);
    this.tasksSoon = debounce(() => this.tasks.refresh(), 200);
  }

  async start() {
    this.refreshAll();
    try {
      await this.feed.start(STREAM_KINDS.join(","));
    } catch (err) {
      if (err.status !== 401) notify.error(`event log: ${err.line ?? err}`);
      showMode("offline", err.line ?? String(err));
      return;
    }
    this.refreshAll(); // anything that changed while the log was being read
    this.timers.push(setInterval(() => this.refreshAll(), SAFETY_REFRESH_MS));
    const exp = this.viewer.auth ? claims()?.exp : null;
    if (exp) {
      // Ask again once the token has expired: the 401 brings the login back, even when
      // nothing else would call the API (a quiet fleet seen over the WebSocket).
      const wait = Math.min(2 ** 31 - 1, Math.max(0, exp * 1000 - Date.now()) + 1000);
      this.timers.push(setTimeout(() => api("GET", "/dashboard/me").catch(() => {}), wait));
    }
  }

  stop() {
    this.feed.stop();
    this.detail.close();
    this.timers.forEach((timer) => { clearInterval(timer); clearTimeout(timer); });
    clearTimeout(this.workersTimer);
  }

  refreshAll() {
    this.refreshWorkers();
    this.workflows.refresh();
    this.tasks.refresh();
  }

  events(events, catchingUp) {
    this.stream.add(events);
    if (catchingUp) return;
    const kinds = events.map((e) => e.kind);
    if (kinds.some((k) => k.startsWith("worker."))) {
      this.workersSoon();
      this.workflowsSoon();
    }
    if (kinds.some((k) => k.startsWith("workflow.") || k.startsWith("stage."))) this.workflowsSoon();
    if (kinds.some((k) => k.startsWith("task."))) this.tasksSoon();
  }

  async refreshWorkers() {
    clearTimeout(this.workersTimer);
    let workers = null;
    try {
      workers = await api("GET", "/workers");
    } catch (err) {
      if (err.status === 401) return;
      notify.error(`workers: ${err.line}`);
    }
    if (session !== this) return;
    if (workers) {
      this.table.update(workers);
      renderLeaderboard($("leaderboard"), workers);
      if (this.selected) {
        const shown = workers.find((w) => w.id === this.selected);
        if (shown) this.detail.update(shown);
        else this.detail.gone();
      }
    }
    const busy = workers?.some((w) => !TERMINAL.has(w.state));
    this.workersTimer = setTimeout(() => this.refreshWorkers(), busy ? ACTIVE_REFRESH_MS : IDLE_REFRESH_MS);
  }

  select(worker) {
    this.selected = worker?.id ?? null;
    this.table.select(this.selected);
    if (worker) this.detail.show(worker);
  }
}

function showMode(mode, detail = "") {
  const labels = { websocket: "live · WebSocket", polling: "live · polling", offline: "offline", out: "signed out" };
  const label = labels[mode] ?? mode;
  $("mode").textContent = detail ? `${label}: ${detail}` : label;
  $("mode").className = `pill mode-${mode}`;
}

function showViewer(viewer) {
  if (!viewer.auth) {
    $("viewer").textContent = `no token needed (auth off) · ${viewer.role}`;
    $("logout").hidden = true;
    return;
  }
  const exp = claims()?.exp;
  $("viewer").textContent = `${viewer.agent} · ${viewer.role} · team ${viewer.team}${exp ? ` · until ${clock(exp)}` : ""}`;
  $("logout").hidden = false;
}

function showLogin(message) {
  session?.stop();
  session = null;
  $("app").hidden = true;
  $("login-view").hidden = false;
  $("viewer").textContent = "";
  $("logout").hidden = true;
  showMode("out");
  $("login-error").textContent = message;
  $("token").value = "";
  $("token").focus();
}

// Who the viewer is. A stored token the service refuses is dropped and the call made
// again without it: a service with auth off needs none; otherwise the sign-in shows why.
async function whoami() {
  try {
    return await api("GET", "/dashboard/me", { quiet: true });
  } catch (err) {
    if (err.status !== 401) throw err;
    if (!token()) throw new ApiError(401, "this service needs a token", err.path);
    setToken("");
    try {
      return await api("GET", "/dashboard/me", { quiet: true });
    } catch (again) {
      throw again.status === 401 ? err : again;
    }
  }
}

async function boot() {
  let viewer;
  try {
    viewer = await whoami();
  } catch (err) {
    showLogin(err.status === 401 ? err.message : `cannot reach the service: ${err.line}`);
    return;
  }
  $("login-view").hidden = true;
  $("app").hidden = false;
  showViewer(viewer);
  session = new Session(viewer);
  session.start();
}

onAuthLost((err) => showLogin(token() ? `${err.message}` : "this service needs a token"));

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken($("token").value.trim());
  boot();
});

$("logout").addEventListener("click", () => {
  setToken("");
  showLogin("signed out");
});

boot();
