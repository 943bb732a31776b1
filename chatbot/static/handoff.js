// A chat handed to a person, on the chat page: the "Talk to a person" button, a banner
// saying who has the chat (or that it waits), and the session's feed followed while it
// lasts, so an agent's messages appear as they are sent. The feed resumes with the last
// event id after a dropped connection, as a reply's stream does.

import { readEvents } from "./sse.js";
import { el, str } from "./dom.js";
import { agentMessage } from "./messages.js";

const RESUME_DELAYS_MS = [500, 1000, 2000, 4000, 8000];

export class HandoffView {
  /**
   * `api`: the page's Api; `banner`, `button`: their elements; `list`: the message list
   * (agent messages are appended there); `onChange()`: after the list grew.
   */
  constructor({ api, banner, button, list, onChange }) {
    this.api = api;
    this.banner = banner;
    this.button = button;
    this.list = list;
    this.onChange = onChange ?? (() => {});
    this.sessionId = null;
    this.handoff = null;
    this.following = null; // AbortController of the feed being read
    this.shown = new Set(); // agent turns on the page already
    button.addEventListener("click", () => this.ask());
  }

  /** A session was opened (null: a new chat); `handoff` as the session says. */
  open(sessionId, handoff, shownTurnIds = []) {
    this.stop();
    this.sessionId = sessionId;
    this.shown = new Set(shownTurnIds);
    this.show(handoff ?? null);
  }

  /** The handoff now (from a turn's result, the session or the feed). */
  show(handoff) {
    this.handoff = handoff;
    this.button.hidden = !this.sessionId || Boolean(handoff);
    this.banner.hidden = !handoff;
    if (handoff) {
      this.banner.replaceChildren(el("p", { text: describe(handoff) }), this.ticketOffer(handoff));
      this.follow();
    } else {
      this.stop();
    }
  }

  /** Past the SLA with nobody on it: a button to leave the chat as a ticket. */
  ticketOffer(handoff) {
    if (handoff.state !== "waiting" || !handoff.sla_missed) return "";
    const button = el("button", { type: "button", class: "btn subtle", text: "Leave it as a ticket" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const ticket = await this.api.leaveTicket(this.sessionId);
        button.replaceWith(el("p", { class: "small", text: `Ticket #${ticket.ticket_id} is with the team.` }));
      } catch (err) {
        button.disabled = false;
        button.title = err.readable ?? String(err);
      }
    });
    return button;
  }

  async ask() {
    if (!this.sessionId) return;
    this.button.disabled = true;
    try {
      this.show(await this.api.askForPerson(this.sessionId));
    } catch (err) {
      this.banner.hidden = false;
      this.banner.replaceChildren(el("p", { class: "notice warn", text: err.readable ?? String(err) }));
    } finally {
      this.button.disabled = false;
    }
  }

  stop() {
    this.following?.abort();
    this.following = null;
  }

  follow() {
    if (this.following || !this.sessionId) return;
    const abort = new AbortController();
    this.following = abort;
    const sessionId = this.sessionId;
    this.read(sessionId, abort.signal).catch(() => {});
  }

  async read(sessionId, signal) {
    let lastId = null;
    for (let attempt = 0; !signal.aborted; ) {
      try {
        const headers = { Accept: "text/event-stream", ...(lastId ? { "Last-Event-ID": lastId } : {}) };
        // From now: the handoff as it stands is known already; a resume, after the last.
        const path = `/sessions/${encodeURIComponent(sessionId)}/feed?since=now`;
        const response = await this.api.request("GET", path, { headers, signal });
        attempt = 0;
        await readEvents(
          response.body,
          (event) => {
            if (event.id) lastId = event.id;
            this.onEvent(event);
          },
          signal,
        );
      } catch (err) {
        if (signal.aborted || [401, 403, 404].includes(err?.status)) return;
      }
      if (signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, RESUME_DELAYS_MS[Math.min(attempt, 4)]));
      attempt += 1;
    }
  }

  onEvent({ type, data }) {
    if (type === "agent_message") {
      const turnId = str(data?.turn_id);
      if (turnId && this.shown.has(turnId)) return; // in the history already
      this.shown.add(turnId);
      this.list.append(agentMessage(str(data?.text), data?.agent_id));
      this.onChange();
    } else if (type === "handoff") {
      const handoff = data?.handoff ?? null;
      if (!handoff && this.handoff) {
        this.handoff = null;
        this.button.hidden = !this.sessionId;
        this.banner.hidden = false;
        this.banner.replaceChildren(el("p", { text: "You are back with the assistant." }));
        this.stop();
        return;
      }
      if (handoff) this.show(handoff);
    }
  }
}

function describe(handoff) {
  if (handoff.state === "claimed") {
    return `${str(handoff.agent_id) || "A person"} from the team is with you; the assistant is paused.`;
  }
  if (handoff.sla_missed) {
    return "Nobody from the team is free yet; your messages wait for them. You can also leave it as a ticket.";
  }
  return "Waiting for a person from the team; the assistant is paused. Your messages reach them.";
}
