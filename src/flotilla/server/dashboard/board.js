// The tasks board: queued, claimed and done columns (failed and cancelled tasks sit with
// the done ones, marked by their state).

import { api } from "./api.js";
import { clock, h, stateBadge } from "./util.js";

const SHOWN_DONE = 50;

function card(task, column) {
  const labels = (task.labels ?? []).map((l) => h("span", { class: "label" }, l));
  const who = task.assignee ? `held by ${task.assignee}` : task.team;
  return h("li", { class: "card", "data-task": task.id, title: task.description || task.title },
    h("div", { class: "card-title" }, task.title),
    h("div", { class: "meta" },
      task.state === column ? null : [stateBadge(task.state), " "],
      `p${task.priority} · ${who} · ${clock(task.updated_at)}`),
    labels.length ? h("div", {}, labels) : null,
    task.error ? h("div", { class: "error-text" }, task.error) : null);
}

function column(title, tasks) {
  return h("section", { class: "column", "data-column": title },
    h("h3", {}, `${title} (${tasks.length})`),
    h("ul", {}, tasks.length ? tasks.map((task) => card(task, title)) : h("li", { class: "muted" }, "none")));
}

export class TaskBoard {
  constructor(root, notify) {
    this.root = root;
    this.notify = notify;
  }

  async refresh() {
    try {
      const [open, ended] = await Promise.all([
        api("GET", "/tasks", { query: { state: "queued,claimed", limit: 500 } }),
        api("GET", "/tasks", { query: { state: "done,failed,cancelled", limit: 500 } }),
      ]);
      const byPriority = (a, b) => b.priority - a.priority || a.created_at - b.created_at;
      const done = ended.sort((a, b) => (b.ended_at ?? 0) - (a.ended_at ?? 0)).slice(0, SHOWN_DONE);
      this.root.replaceChildren(
        column("queued", open.filter((t) => t.state === "queued").sort(byPriority)),
        column("claimed", open.filter((t) => t.state === "claimed").sort(byPriority)),
        column("done", done));
    } catch (err) {
      if (err.status === 404) {
        this.root.replaceChildren(h("p", { class: "muted" }, "this service has no tasks API"));
      } else if (err.status !== 401) {
        this.notify.error(`tasks: ${err.line}`);
      }
    }
  }
}
