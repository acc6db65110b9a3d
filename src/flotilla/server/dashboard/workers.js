// The workers table and its filters (state, agent kind, free text).

import { bytes, cost, count, duration, h, runtime, stateBadge } from "./util.js";

const STATES = ["queued", "starting", "running", "waiting", "succeeded", "failed", "cancelled"];

function option(value, label = value) {
  return h("option", { value }, label);
}

export class WorkersTable {
  constructor(root, onSelect) {
    this.onSelect = onSelect;
    this.workers = [];
    this.kinds = "";
    this.selected = null;
    this.state = h("select", { id: "filter-state", "aria-label": "state", onchange: () => this.render() },
      option("", "all states"), STATES.map((s) => option(s)));
    this.agent = h("select", { id: "filter-agent", "aria-label": "agent", onchange: () => this.render() },
      option("", "all agents"));
    this.text = h("input", { id: "filter-text", type: "search", placeholder: "name, batch, prompt…",
      "aria-label": "text", oninput: () => this.render() });
    this.summary = h("span", { class: "muted" });
    this.body = h("tbody");
    const heads = ["name", "state", "agent", "CPU", "RAM", "runtime", "tokens", "cost", "batch", "project"];
    root.replaceChildren(
      h("div", { class: "filters" }, this.state, this.agent, this.text, this.summary),
      h("div", { class: "scroll" },
        h("table", { id: "workers" }, h("thead", {}, h("tr", {}, heads.map((x) => h("th", {}, x)))), this.body)),
    );
  }

  update(workers) {
    this.workers = [...workers].sort((a, b) => b.created_at - a.created_at);
    const kinds = [...new Set(this.workers.map((w) => w.agent))].sort();
    if (kinds.join("\n") !== this.kinds) { // rebuilt only when it changes: an open list stays open
      this.kinds = kinds.join("\n");
      const current = this.agent.value;
      this.agent.replaceChildren(option("", "all agents"), kinds.map((k) => option(k)));
      this.agent.value = kinds.includes(current) ? current : "";
    }
    this.render();
  }

  select(id) {
    this.selected = id;
    this.render();
  }

  visible() {
    const state = this.state.value;
    const agent = this.agent.value;
    const text = this.text.value.trim().toLowerCase();
    return this.workers.filter((w) =>
      (!state || w.state === state) &&
      (!agent || w.agent === agent) &&
      (!text || [w.name, w.batch, w.prompt, w.model, w.project]
        .some((field) => (field ?? "").toLowerCase().includes(text))));
  }

  render() {
    const shown = this.visible();
    this.summary.textContent = `${shown.length} of ${this.workers.length} workers`;
    if (!shown.length) {
      const why = this.workers.length ? "no worker matches the filters" : "no workers yet";
      this.body.replaceChildren(h("tr", {}, h("td", { colspan: 10, class: "empty" }, why)));
      return;
    }
    this.body.replaceChildren(...shown.map((w) => this.row(w)));
  }

  row(w) {
    const tokens = (w.input_tokens ?? 0) + (w.output_tokens ?? 0);
    const project = (w.project ?? "").split("/").filter(Boolean).pop() ?? "";
    return h("tr", {
      class: w.id === this.selected ? "selected" : null,
      "data-worker": w.name,
      "data-state": w.state,
      tabindex: 0,
      onclick: () => this.onSelect(w),
      onkeydown: (e) => e.key === "Enter" && this.onSelect(w),
    },
      h("td", { class: "name" }, w.name),
      h("td", {}, stateBadge(w.state)),
      h("td", {}, w.model ? `${w.agent} · ${w.model}` : w.agent),
      h("td", { class: "num" }, w.cpu_percent === null || w.cpu_percent === undefined ? "–" : `${w.cpu_percent.toFixed(0)}%`),
      h("td", { class: "num" }, bytes(w.rss_bytes)),
      h("td", { class: "num" }, duration(runtime(w))),
      h("td", { class: "num", title: `${w.input_tokens} in, ${w.output_tokens} out` }, count(tokens)),
      h("td", { class: "num" }, cost(w.cost_usd)),
      h("td", {}, w.batch ?? ""),
      h("td", { title: w.project }, project),
    );
  }
}
