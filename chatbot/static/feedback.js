// A reply's rating: thumbs up and thumbs down (aria-pressed says which is given; the
// pressed one again removes it), and after a thumbs down a small optional field for why.
// Each change is stored at once (`PUT`/`DELETE .../turns/{tid}/feedback`); one that fails
// puts the buttons back as they were and says why.

import { el, icon, str } from "./dom.js";

// Thumbs as SVG paths (Feather icons' shapes, MIT): no emoji font is needed to show them.
const THUMBS = {
  up: "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3",
  down: "M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zm7-13h2.67A2.31 2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17",
};
const LABELS = { up: "Good reply", down: "Bad reply" };

export class Rating {
  /**
   * `rate(rating, reason)` stores a rating ("up" | "down", or null to remove it) and
   * rejects with an ApiError; `feedback`: the rating the reply has (`{rating, reason}` or
   * null); `onError(err)` shows a failure.
   */
  constructor({ rate, feedback = null, onError = () => {} }) {
    this.rate = rate;
    this.onError = onError;
    this.rating = feedback?.rating === "up" || feedback?.rating === "down" ? feedback.rating : null;
    this.busy = false;
    this.buttons = {};
    for (const kind of ["up", "down"]) {
      const button = el("button", {
        type: "button",
        class: `btn subtle icon rate rate-${kind}`,
        "aria-label": LABELS[kind],
        title: LABELS[kind],
      });
      button.append(icon(THUMBS[kind]));
      button.addEventListener("click", () => this.press(kind));
      this.buttons[kind] = button;
    }
    this.reason = el("input", {
      type: "text",
      class: "rating-reason",
      maxlength: "1000", // FEEDBACK_REASON_CHARS
      "aria-label": "What was wrong? (optional)",
      placeholder: "What was wrong? (optional)",
    });
    const send = el("button", { type: "submit", class: "btn subtle", text: "Send" });
    this.form = el("form", { class: "rating-form", hidden: true }, this.reason, send);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.explain();
    });
    this.reason.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.form.hidden = true;
    });
    this.said = el("span", { class: "rating-said muted small", role: "status" });
    this.node = el(
      "div",
      { class: "rating", role: "group", "aria-label": "Rate this reply" },
      this.buttons.up,
      this.buttons.down,
      this.form,
      this.said,
    );
    this.render();
  }

  render() {
    for (const [kind, button] of Object.entries(this.buttons)) {
      button.setAttribute("aria-pressed", String(this.rating === kind));
    }
  }

  /** A thumb clicked: that rating, or none when it was the one given. */
  async press(kind) {
    if (this.busy) return;
    const next = this.rating === kind ? null : kind;
    this.said.textContent = "";
    this.form.hidden = true;
    if (await this.store(next, null) && next === "down") {
      this.reason.value = "";
      this.form.hidden = false;
      this.reason.focus();
    }
  }

  /** The reason field sent: the thumbs down again, with why. */
  async explain() {
    if (this.busy) return;
    const reason = this.reason.value.trim();
    this.form.hidden = true;
    if (!reason) return;
    if (await this.store("down", reason)) {
      this.said.textContent = `Thanks, noted: \u201C${str(reason)}\u201D`;
    } else {
      this.form.hidden = false;
    }
  }

  /** Store `rating`, showing it at once; true once stored, false (put back) on a failure. */
  async store(rating, reason) {
    const before = this.rating;
    this.rating = rating;
    this.render();
    this.setBusy(true);
    try {
      await this.rate(rating, reason);
      return true;
    } catch (err) {
      this.rating = before;
      this.render();
      this.onError(err);
      return false;
    } finally {
      this.setBusy(false);
    }
  }

  /** Clicks wait while a change is stored (not disabled: the focus stays where it is). */
  setBusy(busy) {
    this.busy = busy;
    this.node.setAttribute("aria-busy", String(busy));
  }
}
