// The chat list in the sidebar: the caller's sessions, newest first, a page at a time
// (`GET /sessions` with `cursor`), and the one that is open.

import { el } from "./dom.js";

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];

function ago(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) return "";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

export function sessionTitle(session) {
  return session.title || session.id;
}

export class SessionList {
  constructor(api, { list, more, empty, onOpen, onError }) {
    this.api = api;
    this.listEl = list;
    this.moreEl = more;
    this.emptyEl = empty;
    this.onOpen = onOpen;
    this.onError = onError;
    this.items = [];
    this.cursor = null;
    this.activeId = null;
    this.loaded = false;
    more.addEventListener("click", () => this.loadMore());
  }

  async reload() {
    this.items = [];
    this.cursor = null;
    this.loaded = false;
    await this.loadMore();
  }

  async loadMore() {
    this.moreEl.disabled = true;
    try {
      const page = await this.api.listSessions(this.cursor);
      const known = new Set(this.items.map((s) => s.id));
      this.items.push(...page.items.filter((s) => !known.has(s.id)));
      this.cursor = page.next_cursor;
      this.loaded = true;
    } catch (err) {
      this.onError(err);
    } finally {
      this.moreEl.disabled = false;
      this.render();
    }
  }

  get newest() {
    return this.items[0] ?? null;
  }

  /** A session created here goes first (newest); a renamed one is updated in place. */
  upsert(session) {
    const at = this.items.findIndex((s) => s.id === session.id);
    if (at >= 0) this.items[at] = session;
    else this.items.unshift(session);
    this.render();
  }

  remove(id) {
    this.items = this.items.filter((s) => s.id !== id);
    this.render();
  }

  setActive(id) {
    this.activeId = id;
    this.render();
  }

  render() {
    this.listEl.replaceChildren(
      ...this.items.map((s) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              class: "session",
              "aria-current": s.id === this.activeId ? "page" : null,
              dataset: { sessionId: s.id },
              title: sessionTitle(s),
            },
            el("span", { class: "session-title", text: sessionTitle(s) }),
            el("span", { class: "session-when muted small", text: ago(s.last_activity_at) }),
          ),
        ),
      ),
    );
    for (const button of this.listEl.querySelectorAll("button.session")) {
      button.addEventListener("click", () => this.onOpen(button.dataset.sessionId));
    }
    this.moreEl.hidden = !this.cursor;
    this.emptyEl.hidden = !this.loaded || this.items.length > 0;
  }
}
