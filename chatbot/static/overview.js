// The admins' overview in the console (GET /v1/admin/overview), as a few small tables.
// Every value is inserted as text.

import { el, str } from "./dom.js";

function table(caption, head, rows) {
  return el(
    "div",
    { class: "data-table" },
    el(
      "table",
      {},
      el("caption", { class: "small muted", text: caption }),
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col", text: h })))),
      el(
        "tbody",
        {},
        ...(rows.length
          ? rows.map((r) =>
              el("tr", {}, ...r.map((v) => el("td", typeof v === "number" ? { class: "num" } : {}, str(v)))),
            )
          : [el("tr", {}, el("td", { colspan: String(head.length), class: "muted", text: "none" }))]),
      ),
    ),
  );
}

/** The overview's sections: counts, then usage, errors and breakers. */
export function overview(data) {
  const status = Object.entries(data.sessions_by_status ?? {});
  const handoffs = Object.entries(data.handoffs ?? {});
  const esc = data.escalations ?? { sessions: 0, escalated: 0, rate: 0 };
  const days = Math.round((Date.now() - Date.parse(data.since)) / 86_400_000);
  return [
    table("Sessions by status", ["status", "sessions"], status),
    table("Handed to a person now", ["state", "sessions"], handoffs),
    table(`Escalations, last ${days} days`, ["active sessions", "escalated", "rate"], [
      [esc.sessions, esc.escalated, `${(100 * esc.rate).toFixed(1)} %`],
    ]),
    table(
      "Usage today, by user",
      ["user", "tokens", "cost (USD)", "daily budget"],
      (data.usage_today ?? []).map((u) => [
        u.user_id,
        u.tokens,
        u.cost_usd.toFixed(4),
        u.limit_tokens == null ? "none" : u.limit_tokens,
      ]),
    ),
    table(`Failed turns by kind, last ${days} days`, ["kind", "turns"], (data.errors ?? []).map((e) => [e.kind, e.turns])),
    data.breakers == null
      ? el("p", { class: "notice warn", text: "Breaker states unknown: Redis is unreachable." })
      : table(
          "Provider circuit breakers",
          ["provider", "state", "failures", "open for"],
          data.breakers.map((b) => [b.provider, b.state, b.failures, b.state === "open" ? `${Math.round(b.retry_after)} s` : ""]),
        ),
  ];
}
