// A tool-calling turn's calls on its reply: one compact row per call (name, short
// arguments, status, what it returned) and, for a call that waits for a person, an
// approval card with the full arguments and Approve / Deny. Every value from the model
// or a tool is inserted as text, never as HTML.

import { el, str } from "./dom.js";

const STATUS_LABELS = {
  pending: "running",
  awaiting_approval: "needs approval",
  ok: "done",
  error: "failed",
  denied: "denied",
  timed_out: "timed out",
  cancelled: "cancelled",
};
const SHORT_ARGS_CHARS = 80;
const SUMMARY_CHARS = 140;

function clip(text, limit) {
  const chars = Array.from(text);
  return chars.length > limit ? `${chars.slice(0, limit - 1).join("").trimEnd()}\u2026` : text;
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** `title: "Printer on fire", priority: "urgent"`, clipped to one short line. */
export function shortArguments(args) {
  if (!isObject(args)) return "";
  const parts = Object.entries(args).map(([key, value]) => `${key}: ${JSON.stringify(value)}`);
  return clip(parts.join(", "), SHORT_ARGS_CHARS);
}

/** The first line of what the call told the model, clipped. */
export function resultSummary(record) {
  const line = str(record.content).trim().split("\n")[0];
  return line ? clip(line, SUMMARY_CHARS) : "";
}

/** A decision as a sentence: who decided what, and their note. */
export function decisionText(approval) {
  if (approval.timed_out) {
    const why = approval.note ? ` (${str(approval.note)})` : "";
    return `Nobody decided in time${why}, so the call was not made.`;
  }
  const who = approval.decided_by ? ` by ${str(approval.decided_by)}` : "";
  const verdict = approval.decision === "approve" ? `Approved${who}` : `Denied${who}`;
  return approval.note ? `${verdict}: \u201C${str(approval.note)}\u201D` : `${verdict}.`;
}

/**
 * The calls of one reply, keyed by call id: `update(record)` for each event's call (a
 * repeat is harmless), `all(records)` for the turn's final list. `decide(callId, decision,
 * note)` posts a person's decision (absent on history, where nothing waits any more).
 */
export class ToolCalls {
  constructor({ decide = null, onChange = () => {} } = {}) {
    this.decide = decide;
    this.onChange = onChange;
    this.calls = new Map(); // call id -> {row, card}
    this.list = el("ol", { class: "tool-call-list" });
    this.node = el(
      "section",
      { class: "tool-calls", "aria-label": "Tool calls", hidden: true },
      el("h3", { class: "extras-title", text: "Tools" }),
      this.list,
    );
  }

  all(records) {
    if (!Array.isArray(records)) return;
    for (const record of records) this.update(record);
  }

  update(record) {
    if (!isObject(record) || !record.id) return;
    let entry = this.calls.get(record.id);
    // Undecided, a call is "pending" only before it waits: once carded, such a record is
    // an earlier event again (a reopened chat follows its turn's stream from the start).
    if (entry?.card && record.status === "pending" && !isObject(record.approval)) return;
    if (!entry) {
      entry = { row: new CallRow(), card: null };
      this.calls.set(record.id, entry);
      this.list.append(entry.row.li);
      this.node.hidden = false;
    }
    if (!entry.card && record.status === "awaiting_approval") {
      entry.card = new ApprovalCard(record, this.decide);
      entry.row.li.append(entry.card.node);
    }
    entry.row.show(record, entry.card !== null);
    entry.card?.show(record);
    this.onChange();
  }

  /** The card of the call that waits for a decision, if any (for the page's status). */
  get waiting() {
    for (const { card } of this.calls.values()) if (card?.state === "waiting") return card;
    return null;
  }
}

class CallRow {
  constructor() {
    this.name = el("code", { class: "tool-name" });
    this.args = el("span", { class: "tool-args muted small" });
    this.status = el("span", { class: "pill tool-status" });
    this.summary = el("p", { class: "tool-summary small" });
    this.li = el(
      "li",
      { class: "tool-call" },
      el("div", { class: "tool-head" }, this.name, this.args, this.status),
      this.summary,
    );
  }

  /** `carded`: an approval card under the row tells the decision, so the row does not. */
  show(record, carded) {
    const status = str(record.status) || "pending";
    this.li.dataset.status = status;
    this.li.dataset.name = str(record.name);
    this.name.textContent = str(record.name) || "(unnamed tool)";
    const args = shortArguments(record.arguments);
    this.args.textContent = args;
    this.args.title = args ? JSON.stringify(record.arguments) : "";
    this.status.textContent = STATUS_LABELS[status] ?? status;
    this.status.className = `pill tool-status status-${status}`;
    this.summary.textContent = rowSummary(record, status, carded);
    this.summary.hidden = !this.summary.textContent;
  }
}

/** What a row says under its head: a result, or (with no card to say it) a decision. */
function rowSummary(record, status, carded) {
  if (status === "ok" || status === "error") {
    const took = typeof record.ms === "number" && Number.isFinite(record.ms) ? record.ms : null;
    const said = resultSummary(record);
    return [said, took === null ? "" : `(${Math.round(took)} ms)`].filter(Boolean).join(" ");
  }
  if (carded) return "";
  if (isObject(record.approval)) return decisionText(record.approval);
  if (status === "cancelled") return "Not made: the turn was cancelled first.";
  return "";
}

let cardCount = 0;

/**
 * A call that waits for a person: what it would do, Approve / Deny and a note. `state`:
 * waiting, posting, decided, moved_on (the turn went on without this decision), ended.
 */
export class ApprovalCard {
  constructor(record, decide) {
    this.callId = record.id;
    this.decideFn = decide;
    this.state = "waiting";
    const id = `approval-${(cardCount += 1)}`;
    this.note = el("input", {
      id: `${id}-note`,
      class: "approval-note",
      type: "text",
      maxlength: "2000",
      placeholder: "Optional note for the assistant",
    });
    this.approve = el("button", { type: "button", class: "btn primary", text: "Approve" });
    this.deny = el("button", { type: "button", class: "btn danger", text: "Deny" });
    this.message = el("p", { class: "approval-message small", role: "status" });
    const name = str(record.name) || "(unnamed tool)";
    this.approve.setAttribute("aria-label", `Approve ${name}`);
    this.deny.setAttribute("aria-label", `Deny ${name}`);
    this.controls = el(
      "div",
      { class: "approval-controls" },
      el("label", { class: "visually-hidden", for: `${id}-note`, text: "Note" }),
      this.note,
      this.approve,
      this.deny,
    );
    this.node = el(
      "section",
      { class: "approval", "aria-labelledby": `${id}-title`, dataset: { state: this.state } },
      el(
        "h4",
        { id: `${id}-title`, class: "approval-title" },
        "Approve ",
        el("code", { text: name }),
        "?",
      ),
      el("p", { class: "small muted", text: "The assistant wants to run this tool with:" }),
      el("pre", { class: "approval-args" }, el("code", { text: prettyJson(record.arguments) })),
      this.controls,
      this.message,
    );
    this.approve.addEventListener("click", () => this.submit("approve"));
    this.deny.addEventListener("click", () => this.submit("deny"));
    this.note.addEventListener("keydown", (event) => {
      if (event.key === "Enter") event.preventDefault(); // a choice takes a click, not Enter
    });
    if (!decide) this.enable(false);
  }

  setState(state, message) {
    this.state = state;
    this.node.dataset.state = state;
    this.message.textContent = message;
  }

  enable(on) {
    this.approve.disabled = this.deny.disabled = this.note.disabled = !on;
  }

  /** A record from an event or the final result: show its decision, if it has one. */
  show(record) {
    if (isObject(record.approval)) {
      this.decided(record.approval); // again too: an event's record names who decided
      return;
    }
    if (this.state === "decided" || this.state === "ended") return;
    if (record.status === "cancelled") {
      this.end("The turn was cancelled before anyone decided; the call was not made.");
    } else if (record.status !== "awaiting_approval") {
      this.end("The turn ended without a decision; the call was not made.");
    }
  }

  decided(approval) {
    this.enable(false);
    this.controls.hidden = true;
    this.node.dataset.decision = approval.timed_out ? "timed_out" : str(approval.decision);
    this.setState("decided", decisionText(approval));
  }

  end(message) {
    this.enable(false);
    this.controls.hidden = true;
    this.setState("ended", message);
  }

  async submit(decision) {
    if (this.state !== "waiting" || !this.decideFn) return;
    this.enable(false);
    this.setState("posting", decision === "approve" ? "Approving\u2026" : "Denying\u2026");
    const note = this.note.value.trim();
    try {
      const outcome = await this.decideFn(this.callId, decision, note);
      if (this.state !== "posting") return; // an event already showed the decision
      this.decided({ decision: outcome?.decision ?? decision, note: outcome?.note ?? note });
    } catch (err) {
      if (this.state !== "posting") return;
      if (err?.status === 409) {
        this.setState("moved_on", "This turn has moved on; your decision was not recorded.");
      } else {
        this.setState("waiting", err?.readable ?? `The decision was not sent: ${str(err?.message ?? err)}`);
        this.enable(true);
      }
    }
  }
}

function prettyJson(value) {
  try {
    return JSON.stringify(value ?? {}, null, 2);
  } catch {
    return str(value);
  }
}
