// A reply's versions: "Regenerate" on the session's latest reply (the page streams the new
// answer into the same reply), and "‹ 2 / 3 ›" once it has more than one. On the latest
// turn an arrow also picks the version shown (`PUT .../version`), so later turns see it;
// on an earlier turn the arrows only browse, and the control says which one is in use.

import { el } from "./dom.js";

export class ReplyVersions {
  /**
   * `load()` resolves to the turn's versions (`{version, items}`); `pick(n)` makes version
   * n the one in use (`{version, versions}`); `show(item)` shows a version's reply in the
   * message; `regenerate()` answers the turn again; `onError(err)` shows a failure.
   */
  constructor({ load, pick, show, regenerate, onError = () => {} }) {
    Object.assign(this, { load, pick, show, onError });
    this.shown = 1; // the version on the screen
    this.inUse = 1; // the one later turns see
    this.count = 1;
    this.items = null; // loaded at the first arrow click
    this.latest = false; // the session's latest reply: it can be regenerated and picked
    this.busy = false; // a turn runs in the page
    this.loading = false;
    this.regenerateButton = el("button", {
      type: "button",
      class: "btn subtle",
      text: "Regenerate",
      title: "Answer this message again; this answer is kept as a version",
    });
    this.regenerateButton.addEventListener("click", () => regenerate());
    this.prev = el("button", {
      type: "button",
      class: "btn subtle icon",
      "aria-label": "Previous version",
      text: "\u2039",
    });
    this.next = el("button", {
      type: "button",
      class: "btn subtle icon",
      "aria-label": "Next version",
      text: "\u203A",
    });
    this.prev.addEventListener("click", () => this.go(-1));
    this.next.addEventListener("click", () => this.go(1));
    this.label = el("span", { class: "versions-label", "aria-live": "polite" });
    this.note = el("span", { class: "versions-note muted small" });
    this.switch = el(
      "span",
      { class: "versions", role: "group", "aria-label": "Versions of this reply" },
      this.prev,
      this.label,
      this.next,
      this.note,
    );
    this.node = el("span", { class: "reply-versions" }, this.switch, this.regenerateButton);
    this.render();
  }

  /** The reply as stored or just answered: its version in use and how many it has. */
  update({ version, versions }) {
    this.inUse = this.shown = Number.isInteger(version) && version > 0 ? version : 1;
    this.count = Math.max(Number.isInteger(versions) ? versions : 1, this.inUse);
    this.items = null; // a new version may exist: read them again at the next click
    this.render();
  }

  /** Whether this is the session's latest reply, and whether a turn runs in the page. */
  setLatest(latest, busy) {
    this.latest = latest;
    this.busy = busy;
    this.render();
  }

  render() {
    this.regenerateButton.hidden = !this.latest || this.busy;
    this.switch.hidden = this.count < 2;
    this.label.textContent = `${this.shown} / ${this.count}`;
    // Picking races a running turn, so the latest reply's arrows wait for it to end.
    const still = this.loading || (this.latest && this.busy);
    this.prev.disabled = still || this.shown <= 1;
    this.next.disabled = still || this.shown >= this.count;
    this.note.hidden = this.latest;
    this.note.textContent =
      this.shown === this.inUse ? "in use" : `version ${this.inUse} is in use`;
    this.node.hidden = this.regenerateButton.hidden && this.switch.hidden;
  }

  /** Show the version `delta` away; on the latest turn, also make it the one in use. */
  async go(delta) {
    const target = this.shown + delta;
    if (this.loading || target < 1 || target > this.count) return;
    this.loading = true;
    this.render();
    try {
      if (!this.items) {
        const page = await this.load();
        this.items = Array.isArray(page?.items) ? page.items : [];
        if (Number.isInteger(page?.version)) this.inUse = page.version;
        this.count = Math.max(this.count, this.items.length);
      }
      const item = this.items.find((v) => v.version === target);
      if (!item) return;
      this.show(item);
      this.shown = target;
      if (this.latest && target !== this.inUse) await this.use(target);
    } catch (err) {
      this.onError(err);
    } finally {
      this.loading = false;
      this.render();
    }
  }

  async use(version) {
    try {
      const chosen = await this.pick(version);
      this.inUse = chosen.version;
      this.count = Math.max(this.count, chosen.versions);
    } catch (err) {
      if (err?.status === 409) {
        this.latest = false; // a later turn exists now: this reply's arrows only browse
      } else {
        const back = this.items.find((v) => v.version === this.inUse);
        if (back) this.show(back);
        this.shown = this.inUse; // the screen shows what later turns see
      }
      this.onError(err);
    }
  }
}
