// How a conversation looks: user and assistant messages; on a reply, its intent badge,
// status, timings on hover, its tool calls (tools.js), company cards, a data query's
// table, chart and files (data.js) and numbered web citations; under it, a row for its
// actions (its versions, its rating: the page fills it in). Everything that comes from a
// person or a model is inserted as text, never as HTML.

import { dataResult } from "./data.js";
import { el, externalLink, safeHref, str } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { ToolCalls } from "./tools.js";

const INTENTS = {
  chat: "chat",
  company_search: "company search",
  web_search: "web search",
  both: "companies + web",
};
const STATUS_LABELS = { cancelled: "stopped", failed: "failed" };

/** A message the user wrote; `turnId` once its turn is known (its actions need it). */
export function userMessage(text, turnId = null) {
  return el(
    "li",
    { class: "msg user", dataset: turnId ? { turnId } : {} },
    el("div", { class: "bubble", text }),
  );
}

/**
 * The page's messages for one page of `GET /sessions/{id}/messages`; `fetchArtifact(id)`
 * (a Blob) loads the files their data results name. `decorate.user(li, item)` and
 * `decorate.reply(view, item)`, when given, add the actions of each message.
 */
export function historyMessages(items, fetchArtifact, decorate = {}) {
  return items.map((item) => {
    if (item.role === "user") {
      const li = userMessage(str(item.content), str(item.turn_id) || null);
      decorate.user?.(li, item);
      return li;
    }
    if (item.role === "agent") return agentMessage(str(item.content), item.tool_data?.agent_id);
    const view = new AssistantMessage({ fetchArtifact });
    view.finish(storedReply(item), null);
    decorate.reply?.(view, item);
    return view.li;
  });
}

/**
 * A stored reply (a history item, or one of a turn's versions) as the fields of a turn's
 * result that `AssistantMessage.finish` shows.
 */
export function storedReply(item) {
  const data = item.tool_data ?? {};
  return {
    turn_id: item.turn_id,
    reply: str(item.content),
    status: item.status,
    intent: item.intent,
    version: item.version,
    versions: item.versions,
    tool_results: data.tool_results,
    tool_calls: data.tool_calls,
    citations: data.citations,
    timings_ms: data.timings_ms,
    error: data.error,
    cached: data.cached,
  };
}

/** What a person from the team wrote (a handed-off session), marked as theirs. */
export function agentMessage(text, agentId) {
  const who = str(agentId) ? `${str(agentId)} (a person from the team)` : "A person from the team";
  return el(
    "li",
    { class: "msg agent" },
    el("div", { class: "meta" }, el("span", { class: "pill agent", text: who })),
    el("div", { class: "bubble", text }),
  );
}

/** The first `count` characters of `text`, counted as Python counts them (code points). */
export function keepChars(text, count) {
  const n = Number.isInteger(count) && count > 0 ? count : 0;
  if (n === 0) return "";
  if (n >= text.length) return text; // never more code points than UTF-16 units
  return Array.from(text).slice(0, n).join("");
}

/**
 * A reply, from its first token to its final event (or straight from history).
 * `decide(callId, decision, note)` posts a decision on a call the turn waits on;
 * `fetchArtifact(id)` resolves to the Blob of a file a data result names.
 */
export class AssistantMessage {
  constructor({ onChange, decide, fetchArtifact } = {}) {
    this.onChange = onChange ?? (() => {});
    this.fetchArtifact = fetchArtifact ?? (() => Promise.reject(new Error("files cannot be loaded here")));
    this.text = "";
    this.frame = 0;
    this.turnId = null; // known from the final result (or history)
    this.result = null; // the last result shown, whole
    this.meta = el("div", { class: "meta" });
    this.tools = new ToolCalls({ decide, onChange: () => this.onChange() });
    this.body = el("div", { class: "bubble markdown" }, typing());
    this.extras = el("div", { class: "extras" });
    this.actions = el("div", { class: "msg-actions" });
    this.li = el(
      "li",
      { class: "msg assistant", dataset: { state: "waiting" } },
      this.meta,
      this.tools.node,
      this.body,
      this.extras,
      this.actions,
    );
  }

  /**
   * The reply is answered again (regenerated): back to waiting for its first token, its
   * calls those of the new answer (decided with `decide`). The actions row stays.
   */
  reset({ decide } = {}) {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.text = "";
    this.freshTools(decide);
    this.meta.replaceChildren();
    this.extras.replaceChildren();
    this.body.replaceChildren(typing());
    this.li.dataset.state = "waiting";
    this.onChange();
  }

  /** Show another result in this reply's place (another version of it). */
  replace(result) {
    this.freshTools(null);
    this.finish(result, null);
  }

  freshTools(decide) {
    const tools = new ToolCalls({ decide, onChange: () => this.onChange() });
    this.tools.node.replaceWith(tools.node);
    this.tools = tools;
  }

  /** A `tool_call`, `approval_required`, `approval_decided` or `tool_result` event's call. */
  toolCall(record) {
    this.tools.update(record);
  }

  append(text) {
    this.text += text;
    this.li.dataset.state = "streaming";
    // Re-render at most once per frame: tokens can arrive faster than the screen paints.
    this.frame ||= requestAnimationFrame(() => this.render());
  }

  /**
   * A model call was retried: what it streamed is void, except the first `keep` chars
   * (what earlier steps of a tool-calling turn streamed; 0 or absent: everything goes).
   */
  restart(keep = 0) {
    this.text = keepChars(this.text, keep);
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
    this.result = result;
    if (str(result.turn_id)) {
      this.turnId = str(result.turn_id);
      this.li.dataset.turnId = this.turnId;
    }
    this.text = str(result.reply);
    this.render();
    const status = result.status ?? "complete";
    this.li.dataset.state = status;
    this.li.dataset.intent = str(result.intent);
    const label = STATUS_LABELS[status];
    fill(
      this.meta,
      intentBadge(result.intent, result.tool_calls),
      label ? el("span", { class: `pill status-${status}`, text: label }) : null,
      result.cached
        ? el("span", {
            class: "pill cached",
            text: "cached",
            title: "Answered from the response cache: the same question was answered before",
          })
        : null,
      timings(result.timings_ms, endToEndMs),
    );
    if (!this.text && status === "cancelled") {
      this.body.replaceChildren(el("p", { class: "muted", text: "Stopped before any text." }));
    }
    this.tools.all(result.tool_calls);
    fill(
      this.extras,
      ...toolResults(result.tool_results, this.fetchArtifact),
      citations(sources(result)),
    );
    if (status === "failed") {
      this.fail(result.error ? `The reply failed: ${str(result.error)}` : "The reply failed.");
    }
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

function typing() {
  return el("span", { class: "typing", "aria-label": "writing" }, el("i"), el("i"), el("i"));
}

/** replaceChildren, minus the parts that are absent (null would show as "null"). */
function fill(node, ...children) {
  node.replaceChildren(...children.filter((child) => child !== null && child !== undefined));
}

function intentBadge(intent, calls) {
  if (Array.isArray(calls) && calls.length) {
    // The model chose these tools; the router's label was only a hint to it.
    const names = [...new Set(calls.map((call) => str(call?.name)))].join(", ");
    return el("span", {
      class: "pill intent intent-tools",
      title: `The assistant chose its tools: ${names}`,
      text: "tools",
    });
  }
  if (!intent) return null;
  return el("span", {
    class: `pill intent intent-${INTENTS[intent] ? intent : "other"}`,
    title: "What the assistant took this message to need",
    text: INTENTS[intent] ?? str(intent),
  });
}

function ms(value) {
  return value >= 1000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
}

/** "1.2 s" on the reply; the breakdown shows on hover or keyboard focus. */
function timings(raw, endToEndMs) {
  const steps = Object.entries(raw ?? {}).filter(
    ([, value]) => typeof value === "number" && Number.isFinite(value),
  );
  if (steps.length === 0 && endToEndMs == null) return null;
  // first_token is measured inside generate_reply, so it is not added to the total.
  const counted = steps.filter(([name]) => name !== "first_token");
  const serverTotal = counted.reduce((sum, [, value]) => sum + value, 0);
  const lines = [];
  if (typeof raw?.first_token === "number") lines.push(`first token: ${ms(raw.first_token)}`);
  if (endToEndMs != null) lines.push(`end to end (this browser): ${ms(endToEndMs)}`);
  if (serverTotal) lines.push(`total (server steps): ${ms(serverTotal)}`);
  for (const [name, value] of counted) lines.push(`${name.replaceAll("_", " ")}: ${ms(value)}`);
  const tip = el("span", { class: "tip", role: "tooltip" }, ...lines.map((text) => el("span", { text })));
  return el(
    "span",
    { class: "timings", tabindex: "0", "aria-label": `Timings. ${lines.join("; ")}` },
    ms(endToEndMs ?? serverTotal),
    tip,
  );
}

function toolResults(results, fetchArtifact) {
  if (!Array.isArray(results)) return [];
  return results.map((result) => {
    if (result?.tool === "company_search") return companies(result);
    if (result?.tool === "web_search") return webSearch(result);
    if (result?.tool === "query_data") return dataResult(result, fetchArtifact);
    return null; // a tool this page does not know yet: its text is in the reply
  });
}

function notice(text, warn = false) {
  return el("p", { class: warn ? "notice warn" : "notice", text });
}

function webSearch(result) {
  if (result.unavailable) {
    return notice(`Web search is unavailable: ${str(result.message) || "not configured"}`, true);
  }
  return result.message ? notice(str(result.message)) : null;
}

function companies(result) {
  if (result.unavailable) {
    return notice(`Company search is unavailable: ${str(result.message) || "not configured"}`, true);
  }
  const list = Array.isArray(result.companies) ? result.companies : [];
  // The label goes on the sample rows only; on the heading when they all are (a turn
  // stored before rows carried their own flag has the result's only).
  const isSample = (c) => (typeof c.sample === "boolean" ? c.sample : Boolean(result.sample));
  const every = list.length > 0 && list.every(isSample);
  const head = el(
    "h3",
    { class: "extras-title" },
    "Companies",
    every ? samplePill() : null,
    result.mode ? el("span", { class: "small", text: str(result.mode) }) : null,
  );
  return el(
    "section",
    { class: "companies" },
    head,
    result.message ? el("p", { class: "muted small", text: str(result.message) }) : null,
    list.length
      ? el("div", { class: "cards" }, ...list.map((c) => companyCard(c, !every && isSample(c))))
      : el("p", { class: "muted", text: "No matching companies found." }),
  );
}

function samplePill() {
  return el("span", {
    class: "pill warn",
    title: "From the built-in sample dataset, not real companies",
    text: "sample data",
  });
}

function companyCard(company, marked) {
  const where = [str(company.industry), str(company.location)].filter(Boolean).join(" \u00B7 ");
  const capabilities = Array.isArray(company.capabilities)
    ? company.capabilities.map(str).join(", ")
    : str(company.capabilities);
  const score =
    typeof company.score === "number" && Number.isFinite(company.score)
      ? el("span", {
          class: "score",
          title: "How well it matches the question",
          text: `match ${company.score.toFixed(2)}`,
        })
      : null;
  const labelled = (label, value) =>
    value ? el("p", { class: "small" }, el("strong", { text: `${label}: ` }), value) : null;
  return el(
    "article",
    { class: "card" },
    el(
      "h4",
      {},
      el("span", { text: str(company.name) || "(no name)" }),
      marked ? samplePill() : null,
      score,
    ),
    where ? el("p", { class: "muted small", text: where }) : null,
    company.description ? el("p", { text: str(company.description) }) : null,
    labelled("Capabilities", capabilities),
    labelled("Contact", str(company.contact)),
  );
}

/** The turn's citations; before those are merged in, the web search result's own. */
function sources(result) {
  if (Array.isArray(result.citations) && result.citations.length) return result.citations;
  const results = Array.isArray(result.tool_results) ? result.tool_results : [];
  const web = results.find((r) => r?.tool === "web_search");
  return Array.isArray(web?.citations) ? web.citations : [];
}

function citations(list) {
  if (list.length === 0) return null;
  const items = list.map((citation, i) => {
    const index = Number.isInteger(citation?.index) ? citation.index : i + 1;
    const href = safeHref(citation?.url);
    const title = str(citation?.title) || str(citation?.url) || "source";
    return el(
      "li",
      { value: String(index) },
      href ? externalLink(href, title) : el("span", { text: title }),
      href ? el("span", { class: "muted small host", text: ` ${new URL(href).host}` }) : null,
      citation?.snippet ? el("p", { class: "small snippet", text: str(citation.snippet) }) : null,
    );
  });
  return el(
    "section",
    { class: "citations" },
    el("h3", { class: "extras-title", text: "Sources" }),
    el("ol", {}, ...items),
  );
}
