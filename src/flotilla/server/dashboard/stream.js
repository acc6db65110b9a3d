// Messages and blackboard posts as they happen, newest first.

import { clock, h } from "./util.js";

const KEEP = 200;
const SHORT = 60;
export const STREAM_KINDS = ["message.", "blackboard."];

function entry(event) {
  const p = event.payload ?? {};
  const kind = event.kind;
  let who;
  let text;
  if (kind.startsWith("blackboard.")) {
    who = `${p.author ?? event.sender} → swarm ${p.swarm ?? "?"}`;
    text = p.topic ? `[${p.topic}] ${p.body ?? ""}` : p.body ?? "";
  } else {
    const to = event.recipient ?? p.recipient ?? (event.team ? `team ${event.team}` : "?");
    who = `${p.sender ?? event.sender} → ${to}`;
    const body = p.body ?? "";
    // The message itself once (when sent); its later moves (queued, delivered, read,
    // failed) as a short line naming it.
    text = kind === "message.sent" || body.length <= SHORT ? body : `${body.slice(0, SHORT)}…`;
    if (p.error) text = `${text} (${p.error})`;
  }
  const quiet = kind.startsWith("message.") && kind !== "message.sent";
  return h("li", { class: `event kind-${kind.replace(/\./g, "-")}${quiet ? " quiet" : ""}`, "data-seq": event.seq },
    h("span", { class: "t" }, clock(event.created_at)),
    h("span", { class: "k" }, kind),
    h("span", { class: "who" }, who),
    h("span", { class: "body" }, text));
}

export class Stream {
  constructor(root) {
    this.list = h("ul", { id: "stream", class: "stream" });
    this.empty = h("p", { class: "muted" }, "no messages or posts yet");
    root.replaceChildren(this.empty, this.list);
  }

  add(events) {
    const wanted = events.filter((e) => STREAM_KINDS.some((k) => e.kind.startsWith(k)));
    if (!wanted.length) return;
    this.empty.hidden = true;
    this.list.prepend(...wanted.reverse().map(entry));
    while (this.list.childElementCount > KEEP) this.list.lastElementChild.remove();
  }
}
