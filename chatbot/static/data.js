// A query_data result on its reply: the query's first rows as a table, its chart, the SQL
// it ran, and a download button per file (the CSV, the PNG). The files need the bearer
// token, so they are fetched as blobs (`fetchArtifact(id)`), never linked to directly.

import { el, str } from "./dom.js";

/** The section for one query_data result; `fetchArtifact(id)` resolves to a Blob. */
export function dataResult(result, fetchArtifact) {
  const attempts = Array.isArray(result.attempts) ? result.attempts : [];
  const columns = Array.isArray(result.columns) ? result.columns.map(str) : null;
  const head = el(
    "h3",
    { class: "extras-title" },
    "Data",
    result.sample
      ? el("span", {
          class: "pill warn",
          title: "From the built-in sample maintenance data, not a real plant",
          text: "sample data",
        })
      : null,
    timing(result),
  );
  if (!columns) {
    const last = attempts.length ? str(attempts[attempts.length - 1]?.error) : str(result.error);
    const text = `The data could not be read${last ? `: ${last}` : "."}`;
    return el("section", { class: "data" }, head, el("p", { class: "notice warn", text }), sql(attempts));
  }
  const files = Array.isArray(result.artifacts) ? result.artifacts : [];
  const chart = files.find((f) => f?.media_type === "image/png");
  return el(
    "section",
    { class: "data" },
    head,
    table(columns, Array.isArray(result.rows) ? result.rows : [], result),
    chart ? chartFigure(chart, fetchArtifact) : null,
    files.length ? el("p", { class: "downloads" }, ...files.map((f) => download(f, fetchArtifact))) : null,
    sql(attempts),
  );
}

function timing(result) {
  const parts = [];
  if (typeof result.sql_ms === "number") parts.push(`query ${Math.round(result.sql_ms)} ms`);
  if (result.sql_attempts > 1) parts.push(`${result.sql_attempts} attempts`);
  if (typeof result.chart_ms === "number") parts.push(`chart ${Math.round(result.chart_ms)} ms`);
  return parts.length ? el("span", { class: "small", text: parts.join(" \u00B7 ") }) : null;
}

function table(columns, rows, result) {
  const count = Number.isInteger(result.row_count) ? result.row_count : rows.length;
  const total = `${count} row${count === 1 ? "" : "s"}`;
  const shown = rows.length < count ? `The first ${rows.length} of ${total}` : total;
  const cut = result.truncated ? " (the query had more; it was cut at the row limit)" : "";
  const cell = (tag, value) =>
    el(tag, typeof value === "number" ? { class: "num" } : {}, value === null ? "\u2014" : str(value));
  return el(
    "div",
    { class: "data-table" },
    el(
      "table",
      {},
      el("caption", { class: "small muted", text: `${shown}${cut}` }),
      el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col", text: c })))),
      el(
        "tbody",
        {},
        ...rows.map((row) => el("tr", {}, ...(Array.isArray(row) ? row : []).map((v) => cell("td", v)))),
      ),
    ),
  );
}

function chartFigure(file, fetchArtifact) {
  const img = el("img", { class: "chart", alt: `Chart of the result (${str(file.name)})` });
  const note = el("figcaption", { class: "small muted", text: "Loading the chart\u2026" });
  fetchArtifact(file.id).then(
    (blob) => {
      img.src = URL.createObjectURL(blob);
      note.remove();
    },
    (err) => {
      img.remove();
      note.textContent = `The chart could not be loaded: ${err?.message ?? err}`;
    },
  );
  return el("figure", { class: "data-chart" }, img, note);
}

function download(file, fetchArtifact) {
  const name = str(file.name) || "download";
  const label = `Download ${name} (${size(file.size_bytes)})`;
  const button = el("button", { type: "button", class: "btn download", text: label });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const url = URL.createObjectURL(await fetchArtifact(file.id));
      const link = el("a", { href: url, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      // The download has its own copy once it started; the URL can go after a moment.
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      button.title = "";
      button.textContent = label;
    } catch (err) {
      button.title = `The download failed: ${err?.message ?? err}`;
      button.textContent = `Download ${name} failed; try again`;
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function size(bytes) {
  if (!Number.isFinite(bytes)) return "?";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function sql(attempts) {
  const written = attempts.filter((a) => a?.sql);
  if (!written.length) return null;
  const tries = written.map((a, i) =>
    el(
      "div",
      { class: "sql-attempt" },
      written.length > 1 ? el("p", { class: "small muted", text: `Attempt ${i + 1}` }) : null,
      el("pre", {}, el("code", { text: str(a.sql) })),
      a.error ? el("p", { class: "small warn-text", text: str(a.error) }) : null,
    ),
  );
  const label = written.length > 1 ? `SQL (${written.length} attempts)` : "SQL";
  return el("details", { class: "data-sql" }, el("summary", { class: "small", text: label }), ...tries);
}
