// How a conversation looks: user and assistant messages; on a reply, its intent badge,
// status, timings on hover, company cards and numbered web citations. Everything that
// comes from a person or a model is inserted as text, never as HTML.

import { el, externalLink, safeHref, str } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const INTENTS = {
  chat: "chat",
  company_search: "company search",
  web_search: "web search",
  both: "companies + web",
};
const STATUS_LABELS = { cancelled: "stopped", failed: "failed" };

export function userMessage(text) {
  return el("li", { class: "msg user" }, el("div", { class: "bubble", text }));
}

/** The page's messages for one page of `GET /sessions/{id}/messages`. */
export function historyMessages(items) {
  return items.map((item) => {
    if (item.role === "user") return userMessage(str(item.content));
    const view = new AssistantMessage();
    const data = item.tool_data ?? {};
    view.finish(
      {
        reply: str(item.content),
        status: item.status,
        intent: item.intent,
        tool_results: data.tool_results,
        citations: data.citations,
        timings_ms: data.timings_ms,
        error: data.error,
      },
      null,
    );
    return view.li;
  });
}

/** A reply, from its first token to its final event (or straight from history). */
export class AssistantMessage {
  constructor({ onChange } = {}) {
    this.onChange = onChange ?? (() => {});
    this.text = "";
    this.frame = 0;
    this.meta = el("div", { class: "meta" });
    this.body = el("div", { class: "bubble markdown" }, el("span", { class: "typing", "aria-label": "writing" }, el("i"), el("i"), el("i")));
    this.extras = el("div", { class: "extras" });
    this.li = el("li", { class: "msg assistant", dataset: { state: "waiting" } }, this.meta, this.body, this.extras);
  }

  append(text) {
    this.text += text;
    this.li.dataset.state = "streaming";
    // Re-render at most once per frame: tokens can arrive faster than the screen paints.
    this.frame ||= requestAnimationFrame(() => this.render());
  }

  /** The model call was retried: what it streamed so far is void. */
  restart() {
    this.text = "";
    this.render();
  }

  render() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.body.replaceChildren(renderMarkdown(this.text));
    this.onChange();
  }

  /** The turn's result (a TurnResult, or the same fields from history). */
  finish(result, endToEndMs) {
    this.text = str(result.reply);
    this.render();
    const status = result.status ?? "complete";
    this.li.dataset.state = status;
    this.li.dataset.intent = str(result.intent);
    this.meta.replaceChildren(
      intentBadge(result.intent),
      STATUS_LABELS[status] ? el("span", { class: `pill status-${status}`, text: STATUS_LABELS[status] }) : null,
      timings(result.timings_ms, endToEndMs),
    );
    if (!this.text && status === "cancelled") this.body.replaceChildren(el("p", { class: "muted", text: "Stopped before any text." }));
    this.extras.replaceChildren(...toolResults(result.tool_results), citations(result.citations));
    if (status === "failed") this.fail(result.error ? `The reply failed: ${str(result.error)}` : "The reply failed.");
    this.onChange();
  }

  /** The turn ended in an error: say so on the message itself. */
  fail(message) {
    this.li.dataset.state = "failed";
    if (!this.text) this.body.replaceChildren();
    this.extras.append(el("p", { class: "msg-error", role: "alert", text: message }));
    this.onChange();
  }
}

function intentBadge(intent) {
  if (!intent) return null;
  return el("span", { class: `pill intent intent-${INTENTS[intent] ? intent : "other"}`, title: "What the assistant took this message to need", text: INTENTS[intent] ?? str(intent) });
}

function ms(value) {
  return value >= 1000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
}

/** "1.2 s" on the reply; the breakdown shows on hover or keyboard focus. */
function timings(raw, endToEndMs) {
  const steps = Object.entries(raw ?? {}).filter(([, v]) => typeof v === "number" && Number.isFinite(v));
  if (steps.length === 0 && endToEndMs == null) return null;
  // first_token is measured inside generate_reply, so it is not added to the total.
  const serverTotal = steps.filter(([k]) => k !== "first_token").reduce((sum, [, v]) => sum + v, 0);
  const firstToken = raw?.first_token;
  const lines = [];
  if (typeof firstToken === "number") lines.push(`first token: ${ms(firstToken)}`);
  if (endToEndMs != null) lines.push(`end to end (this browser): ${ms(endToEndMs)}`);
  if (serverTotal) lines.push(`total (server steps): ${ms(serverTotal)}`);
  for (const [name, value] of steps) if (name !== "first_token") lines.push(`${name.replaceAll("_", " ")}: ${ms(value)}`);
  const shown = endToEndMs ?? serverTotal;
  const tip = el("span", { class: "tip", role: "tooltip" }, ...lines.map((line) => el("span", { text: line })));
  return el("span", { class: "timings", tabindex: "0", "aria-label": `Timings. ${lines.join("; ")}` }, `\u23F1 ${ms(shown)}`, tip);
}

function toolResults(results) {
  if (!Array.isArray(results)) return [];
  return results.map((r) => {
    if (r?.tool === "company_search") return companies(r);
    if (r?.tool === "web_search" && (r.unavailable || r.message)) {
      return el("p", { class: `notice${r.unavailable ? " warn" : ""}`, text: r.unavailable ? `Web search is unavailable: ${str(r.message) || "not configured"}` : str(r.message) });
    }
    return null; // a tool this page does not know yet: its text is in the reply
  });
}

function companies(result) {
  const list = Array.isArray(result.companies) ? result.companies : [];
  const head = el("h3", { class: "extras-title" }, "Companies", result.sample ? el("span", { class: "pill warn", title: "From the built-in sample dataset, not real companies", text: "sample data" }) : null);
  if (list.length === 0) return el("section", { class: "companies" }, head, el("p", { class: "muted", text: "No matching companies found." }));
  return el("section", { class: "companies" }, head, el("div", { class: "cards" }, ...list.map(companyCard)));
}

function companyCard(c) {
  const where = [str(c.industry), str(c.location)].filter(Boolean).join(" \u00B7 ");
  const capabilities = Array.isArray(c.capabilities) ? c.capabilities.map(str).join(", ") : str(c.capabilities);
  const score = typeof c.score === "number" && Number.isFinite(c.score) ? el("span", { class: "score", title: "How well it matches the question", text: `match ${c.score.toFixed(2)}` }) : null;
  return el(
    "article",
    { class: "card" },
    el("h4", {}, el("span", { text: str(c.name) || "(no name)" }), score),
    where ? el("p", { class: "muted small", text: where }) : null,
    c.description ? el("p", { text: str(c.description) }) : null,
    capabilities ? el("p", { class: "small" }, el("strong", { text: "Capabilities: " }), capabilities) : null,
    c.contact ? el("p", { class: "small" }, el("strong", { text: "Contact: " }), str(c.contact)) : null,
  );
}

function citations(list) {
  if (!Array.isArray(list) || list.length === 0) return null;
  const items = list.map((c, i) => {
    const index = Number.isInteger(c?.index) ? c.index : i + 1;
    const href = safeHref(c?.url);
    const title = str(c?.title) || str(c?.url) || "source";
    const host = href ? new URL(href).host : "";
    return el(
      "li",
      { value: String(index) },
      href ? externalLink(href, title) : el("span", { text: title }),
      host ? el("span", { class: "muted small host", text: ` ${host}` }) : null,
      c?.snippet ? el("p", { class: "small snippet", text: str(c.snippet) }) : null,
    );
  });
  return el("section", { class: "citations" }, el("h3", { class: "extras-title", text: "Sources" }), el("ol", {}, ...items));
}
