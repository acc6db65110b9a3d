// One worker up close: its live transcript, its diff, and the buttons to prompt, kill
// and merge it. Buttons follow the viewer's role (the server still checks each call).

import { api } from "./api.js";
import { clock, debounce, h, stateBadge, TERMINAL } from "./util.js";

const TRANSCRIPT_LINES = 500;
const POLL_MS = 1000; // without a WebSocket: how often a running worker's transcript is read
const SAFETY_POLL_MS = 5000; // with one: frames trigger reads; this only covers a lost frame
const MAX_DIFF_CHARS = 200_000;

function describe(record) {
  if (record.text) return record.text;
  if (record.tool) return `${record.tool} ${JSON.stringify(record.data ?? {})}`;
  if (record.usage) {
    const u = record.usage;
    return `${u.input_tokens} in, ${u.output_tokens} out, $${(u.cost_usd ?? 0).toFixed(4)}`;
  }
  if (record.session_id) return `session ${record.session_id}`;
  return "";
}

function diffLine(line) {
  let kind = "";
  if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ")) kind = "file";
  else if (line.startsWith("@@")) kind = "hunk";
  else if (line.startsWith("+")) kind = "add";
  else if (line.startsWith("-")) kind = "del";
  return h("span", { class: kind ? `diff-${kind}` : null }, `${line}\n`);
}

export class WorkerDetail {
  constructor(root, { feed, viewer, notify, onChange }) {
    this.root = root;
    this.feed = feed;
    this.viewer = viewer;
    this.notify = notify;
    this.onChange = onChange;
    this.worker = null;
    this.timer = null;
    this.unsubscribe = null;
    this.signature = "";
    this.readSoon = debounce(() => this.readTranscript(), 150);
  }

  may(permission) {
    return this.viewer.permissions.includes(permission);
  }

  show(worker) {
    this.close();
    this.worker = worker;
    this.removed = false; // killed or cleaned up: the record is gone from the store
    this.signature = "";
    this.title = h("h2", {});
    this.meta = h("p", { class: "meta" });
    this.promptText = h("input", { id: "prompt-text", type: "text", placeholder: "a follow-up prompt…", "aria-label": "prompt" });
    this.promptButton = h("button", { id: "prompt-send", type: "submit" }, "Send prompt");
    this.killButton = h("button", { id: "kill", type: "button", class: "danger", onclick: () => this.kill() }, "Kill");
    this.mergeButton = h("button", { id: "merge", type: "button", onclick: () => this.merge() }, "Merge");
    this.transcript = h("pre", { id: "transcript", class: "log", "aria-live": "polite" });
    this.diff = h("pre", { id: "diff", class: "log" });
    this.root.replaceChildren(
      h("div", { class: "detail-head" },
        this.title,
        h("button", { type: "button", class: "plain", title: "close", onclick: () => this.hide() }, "×")),
      this.meta,
      h("form", { class: "actions", onsubmit: (e) => { e.preventDefault(); this.prompt(); } },
        this.promptText, this.promptButton, this.killButton, this.mergeButton),
      h("div", { class: "panes" },
        h("section", {}, h("h3", {}, "Transcript"), this.transcript),
        h("section", {},
          h("h3", {}, "Diff ", h("button", { type: "button", class: "plain", onclick: () => this.readDiff() }, "↻")),
          this.diff)),
    );
    this.root.hidden = false;
    this.paint();
    this.follow();
    this.readDiff();
  }

  hide() {
    this.close();
    this.root.hidden = true;
    this.onChange(null);
  }

  close() {
    this.stopFollowing();
    this.worker = null;
  }

  stopFollowing() {
    clearTimeout(this.timer);
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  // The shown worker is no longer listed: it was killed or cleaned up.
  gone(last = null) {
    if (!this.worker || (this.removed && !last)) return;
    if (last && last.id === this.worker.id) this.worker = { ...this.worker, ...last };
    this.removed = true;
    this.stopFollowing();
    this.paint();
  }

  // A fresh copy of the shown worker from the table's last read.
  update(worker) {
    if (!this.worker || this.removed || worker.id !== this.worker.id) return;
    const before = this.worker.state;
    this.worker = worker;
    this.paint();
    if (before !== worker.state) {
      this.readDiff();
      if (TERMINAL.has(before) && !TERMINAL.has(worker.state)) this.follow(); // a follow-up turn
      else this.readTranscript();
    }
  }

  paint() {
    const w = this.worker;
    this.title.replaceChildren(w.name, " ", stateBadge(w.state));
    const bits = [`${w.agent}${w.model ? ` · ${w.model}` : ""}`, w.branch, w.batch && `batch ${w.batch}`,
      w.started_at && `started ${clock(w.started_at)}`, w.error && `error: ${w.error}`,
      this.removed && "removed: its record, worktree and branch are gone"];
    this.meta.textContent = bits.filter(Boolean).join(" · ");
    const done = TERMINAL.has(w.state);
    const gone = this.removed && "the worker was removed";
    this.gate(this.promptButton, "prompt", gone || (w.state === "cancelled" && "the worker was cancelled"));
    this.promptText.disabled = this.promptButton.disabled;
    this.gate(this.killButton, "kill", gone || (done && `the worker is ${w.state}`));
    this.gate(this.mergeButton, "merge", gone || ((!done || w.state === "cancelled") && `the worker is ${w.state}`));
  }

  gate(button, permission, stateReason) {
    const reason = this.may(permission)
      ? stateReason || ""
      : `your role '${this.viewer.role}' may not '${permission}'`;
    button.disabled = Boolean(reason);
    button.title = reason;
  }

  follow() {
    this.stopFollowing();
    const id = this.worker.id;
    this.unsubscribe = this.feed.subscribe("worker.log", id, () => this.readSoon());
    const tick = async () => {
      await this.readTranscript();
      if (this.worker?.id === id && !this.removed && !TERMINAL.has(this.worker.state)) {
        this.timer = setTimeout(tick, this.unsubscribe ? SAFETY_POLL_MS : POLL_MS);
      }
    };
    tick();
  }

  async readTranscript() {
    const w = this.worker;
    if (!w) return;
    let records;
    try {
      records = await api("GET", `/workers/${encodeURIComponent(w.name)}/transcript`,
        { query: { project: w.project, lines: TRANSCRIPT_LINES } });
    } catch (err) {
      // 401: the sign-in takes over; 404: the worker was just removed (the table says so)
      if (err.status !== 401 && err.status !== 404) {
        this.notify.error(`transcript of ${w.name}: ${err.line}`);
      }
      return;
    }
    const signature = `${records.length}:${JSON.stringify(records[records.length - 1] ?? null)}`;
    if (this.worker?.id !== w.id || signature === this.signature) return;
    this.signature = signature;
    const box = this.transcript;
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 24;
    box.replaceChildren(...(records.length ? records.map((r) =>
      h("div", { class: `line kind-${r.kind}${r.is_error ? " error" : ""}` },
        h("span", { class: "t" }, clock(r.t)), h("span", { class: "k" }, r.kind), " ", describe(r)))
      : [h("span", { class: "muted" }, "no output yet")]));
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  async readDiff() {
    const w = this.worker;
    if (!w) return;
    try {
      const text = await api("GET", `/workers/${encodeURIComponent(w.name)}/diff`,
        { query: { project: w.project }, text: true });
      if (this.worker?.id !== w.id) return;
      const shown = text.length > MAX_DIFF_CHARS ? `${text.slice(0, MAX_DIFF_CHARS)}\n… (cut)` : text;
      this.diff.replaceChildren(...(shown.trim() ? shown.split("\n").map(diffLine)
        : [h("span", { class: "muted" }, "no changes")]));
    } catch (err) {
      if (this.worker?.id === w.id) this.diff.replaceChildren(h("span", { class: "muted" }, err.line));
    }
  }

  // Call the API for a button; say how it went. `after` sees the answer first.
  async act(what, call, { after = () => {}, told = () => "done" } = {}) {
    const w = this.worker;
    try {
      const answer = await call(w);
      this.notify.info(`${what} ${w.name}: ${told(answer)}`);
      after(answer);
      this.onChange(answer);
      return true;
    } catch (err) {
      if (err.status !== 401) this.notify.error(`${what} ${w.name}: ${err.line}`);
      return false;
    }
  }

  prompt() {
    const text = this.promptText.value.trim();
    if (!text) {
      this.notify.error("the prompt is empty: type what the agent should do next");
      return;
    }
    this.act("prompt", (w) => api("POST", `/workers/${encodeURIComponent(w.name)}/prompt`,
      { query: { project: w.project }, body: { text } })).then((ok) => {
      if (ok) this.promptText.value = "";
    });
  }

  kill() {
    if (!confirm(`Kill ${this.worker.name}? Its agent is stopped and its worktree removed.`)) return;
    this.act("kill", (w) => api("DELETE", `/workers/${encodeURIComponent(w.name)}`, { query: { project: w.project } }),
      { after: (killed) => this.gone(killed) });
  }

  merge() {
    this.act("merge", (w) => api("POST", `/workers/${encodeURIComponent(w.name)}/merge`,
      { query: { project: w.project }, body: {} }), {
      told: (m) => `merged ${m.branch} into ${m.into} (${(m.files ?? []).length} files, `
        + `${String(m.commit ?? "").slice(0, 10)})`,
    });
  }
}
