// Workflows drawn as graphs: stages in columns by depth (a stage sits one column right
// of its deepest dependency), edges from each dependency, colours by stage state.

import { api } from "./api.js";
import { cost, count, duration, h, s } from "./util.js";

const NODE_W = 160;
const NODE_H = 52;
const GAP_X = 44;
const GAP_Y = 16;
const PAD = 8;

export function layers(stages) {
  const byName = new Map(stages.map((st) => [st.name, st]));
  const depth = new Map();
  const visit = (name, trail) => {
    if (depth.has(name)) return depth.get(name);
    if (trail.has(name) || !byName.has(name)) return 0; // a cycle or an unknown name: validation's job
    trail.add(name);
    const deps = byName.get(name).depends_on ?? [];
    const d = deps.length ? 1 + Math.max(...deps.map((dep) => visit(dep, trail))) : 0;
    trail.delete(name);
    depth.set(name, d);
    return d;
  };
  const columns = [];
  for (const st of stages) {
    const d = visit(st.name, new Set());
    (columns[d] ??= []).push(st);
  }
  return columns.map((column) => column ?? []);
}

export function drawGraph(stages) {
  const columns = layers(stages);
  const place = new Map();
  columns.forEach((column, x) => column.forEach((st, y) => place.set(st.name, {
    x: PAD + x * (NODE_W + GAP_X), y: PAD + y * (NODE_H + GAP_Y),
  })));
  const rows = Math.max(1, ...columns.map((c) => c.length));
  const width = PAD * 2 + columns.length * NODE_W + Math.max(0, columns.length - 1) * GAP_X;
  const height = PAD * 2 + rows * NODE_H + (rows - 1) * GAP_Y;
  const edges = stages.flatMap((st) => (st.depends_on ?? []).filter((dep) => place.has(dep)).map((dep) => {
    const from = place.get(dep);
    const to = place.get(st.name);
    const x1 = from.x + NODE_W, y1 = from.y + NODE_H / 2, x2 = to.x, y2 = to.y + NODE_H / 2;
    const mid = (x1 + x2) / 2;
    return s("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 4},${y2}`,
      "marker-end": "url(#arrow)" });
  }));
  const nodes = stages.map((st) => {
    const { x, y } = place.get(st.name);
    const workers = st.workers ?? [];
    const line = [st.state, (st.agents ?? []).join(","), workers.length > 1 ? `×${workers.length}` : ""]
      .filter(Boolean).join(" · ");
    return s("g", { class: `node state-${st.state}`, "data-stage": st.name, transform: `translate(${x},${y})` },
      s("title", {}, [st.name, st.state, st.error].filter(Boolean).join(" — ")),
      s("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
      s("text", { x: 10, y: 21, class: "stage-name" }, st.name.length > 20 ? `${st.name.slice(0, 19)}…` : st.name),
      s("text", { x: 10, y: 40, class: "stage-info" }, line));
  });
  return s("svg", { class: "graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "workflow stages" },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 7, refY: 4, markerWidth: 8,
      markerHeight: 8, orient: "auto" }, s("path", { d: "M0,0 L8,4 L0,8 z", class: "arrowhead" }))),
    edges, nodes);
}

export class Workflows {
  constructor(root, notify) {
    this.notify = notify;
    this.selected = "";
    this.choice = h("select", { id: "workflow-select", "aria-label": "workflow",
      onchange: () => { this.selected = this.choice.value; this.load(); } });
    this.summary = h("p", { class: "meta" });
    this.canvas = h("div", { class: "scroll graph-box" });
    root.replaceChildren(h("div", { class: "filters" }, this.choice), this.summary, this.canvas);
  }

  async refresh() {
    let rows;
    try {
      rows = await api("GET", "/workflows");
    } catch (err) {
      if (err.status !== 401) this.notify.error(`workflows: ${err.line}`);
      return;
    }
    rows.sort((a, b) => b.created_at - a.created_at);
    if (!rows.length) {
      this.choice.replaceChildren(h("option", { value: "" }, "no workflows yet"));
      this.summary.textContent = "";
      this.canvas.replaceChildren();
      return;
    }
    if (!rows.some((r) => r.id === this.selected)) {
      this.selected = (rows.find((r) => !["succeeded", "failed", "cancelled"].includes(r.state)) ?? rows[0]).id;
    }
    this.choice.replaceChildren(...rows.map((r) => h("option", { value: r.id }, `${r.name} · ${r.state} · ${r.id}`)));
    this.choice.value = this.selected;
    await this.load();
  }

  async load() {
    if (!this.selected) return;
    try {
      const wf = await api("GET", `/workflows/${encodeURIComponent(this.selected)}`);
      const tokens = (wf.input_tokens ?? 0) + (wf.output_tokens ?? 0);
      this.summary.textContent = [wf.state, `${wf.progress.done}/${wf.progress.total} stages`,
        duration(wf.elapsed_s), `${count(tokens)} tokens`, cost(wf.cost_usd), wf.winner && `winner ${wf.winner}`,
        wf.error].filter(Boolean).join(" · ");
      this.canvas.replaceChildren(drawGraph(wf.stages));
    } catch (err) {
      if (err.status !== 401) this.notify.error(`workflow ${this.selected}: ${err.line}`);
    }
  }
}
