// Small DOM and formatting helpers. Text always goes in as text nodes, never as HTML:
// agent output, names and messages are untrusted.

export function h(tag, props, ...children) {
  return fill(document.createElement(tag), props, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag, props, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), props, children);
}

function fill(el, props, children) {
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

export function runtime(worker, now = Date.now() / 1000) {
  if (!worker.started_at) return null;
  return (worker.ended_at ?? now) - worker.started_at;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  if (seconds < 10) return `${Math.max(0, seconds).toFixed(1)}s`;
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

export function cost(usd) {
  if (usd === null || usd === undefined || Number.isNaN(usd)) return "–";
  return `$${usd.toFixed(usd !== 0 && usd < 0.01 ? 4 : 2)}`;
}

export function count(n) {
  if (!n) return "0";
  if (n < 10000) return String(n);
  if (n < 1e6) return `${(n / 1000).toFixed(1)}k`;
  return `${(n / 1e6).toFixed(2)}M`;
}

export function clock(epoch) {
  if (!epoch) return "";
  return new Date(epoch * 1000).toLocaleTimeString([], { hour12: false });
}

export function stateBadge(state) {
  return h("span", { class: `state state-${state}` }, state);
}
