// How each agent kind (and each kind with a model) has done, from the workers list:
// finished runs, success rate, cost per success, median duration.

import { cost, duration, h } from "./util.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function rank(workers, keyOf) {
  const groups = new Map();
  for (const w of workers) {
    if (!FINISHED.has(w.state)) continue;
    const key = keyOf(w);
    const g = groups.get(key) ?? { key, finished: 0, succeeded: 0, cost: 0, durations: [] };
    g.finished += 1;
    if (w.state === "succeeded") g.succeeded += 1;
    g.cost += w.cost_usd ?? 0;
    if (w.started_at && w.ended_at) g.durations.push(w.ended_at - w.started_at);
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => ({
    key: g.key,
    finished: g.finished,
    successRate: g.succeeded / g.finished,
    costPerSuccess: g.succeeded ? g.cost / g.succeeded : null,
    medianDuration: median(g.durations),
  })).sort((a, b) => b.successRate - a.successRate || b.finished - a.finished
    || (a.costPerSuccess ?? Infinity) - (b.costPerSuccess ?? Infinity));
}

function table(id, title, rows) {
  return h("table", { id, class: "leaderboard" },
    h("caption", {}, title),
    h("thead", {}, h("tr", {}, ["", "finished", "success", "cost / success", "median time"].map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", { "data-key": r.key },
      h("td", { class: "name" }, r.key),
      h("td", { class: "num" }, r.finished),
      h("td", { class: "num" }, `${Math.round(r.successRate * 100)}%`),
      h("td", { class: "num" }, r.costPerSuccess === null ? "–" : cost(r.costPerSuccess)),
      h("td", { class: "num" }, duration(r.medianDuration))))
      : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "no finished workers yet"))));
}

export function renderLeaderboard(root, workers) {
  root.replaceChildren(
    table("leaderboard-kind", "by agent kind", rank(workers, (w) => w.agent)),
    table("leaderboard-agent", "by agent (kind · model)", rank(workers, (w) => `${w.agent} · ${w.model ?? "default"}`)));
}
