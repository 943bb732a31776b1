// A small markdown renderer for model replies. It never parses HTML: all text ends up in
// Text nodes, so "<script>" in a reply is shown as those characters, never run. That is
// "escape first" by construction. Supported: paragraphs (a single newline is a line
// break, as chat replies mean it), headings, **bold**, *italic*, `code`, fenced code
// blocks, bulleted and numbered lists, and links, for http(s) URLs only.

import { el, externalLink, safeHref } from "./dom.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const LIST_ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;
const MAX_NESTING = 4; // bold in italic in a link ...; deeper markup stays literal text

// One alternative per inline construct; the group that matched tells which.
const INLINE = new RegExp(
  [
    /`([^`\n]+)`/.source, // 1: code
    /\*\*(?=\S)([\s\S]*?\S)\*\*(?!\*)/.source, // 2: bold ("***" ends bold and italic)
    /(?<!\w)__(?=\S)([\s\S]*?\S)__(?!\w)/.source, // 3: bold
    /(?<!\w)\*([^\s*](?:[^*]*?[^\s*])?)\*(?!\w)/.source, // 4: italic (2*3*4 is no italic)
    /(?<!\w)_([^\s_](?:[^_]*?[^\s_])?)_(?!\w)/.source, // 5: italic (not inside snake_case)
    /\[([^\]\n]+)\]\(\s*<?([^\s<>]+?)>?(?:\s+"[^"\n]*")?\s*\)/.source, // 6, 7: [text](url)
    /\bhttps?:\/\/[^\s<>"'`]+/.source, // a bare URL
  ].join("|"),
  "g",
);

/** Render `text` as a DocumentFragment of safe elements. */
export function renderMarkdown(text) {
  const root = document.createDocumentFragment();
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    const heading = HEADING.exec(line);
    if (fence) i = codeBlock(lines, i, fence, root);
    else if (line.trim() === "") i += 1;
    else if (heading) {
      // Replies sit under the page's own headings: # becomes h3, ## h4, and so on.
      const level = Math.min(heading[1].length + 2, 6);
      root.append(inline(el(`h${level}`), heading[2]));
      i += 1;
    } else if (LIST_ITEM.test(line)) i = list(lines, i, root);
    else i = paragraph(lines, i, root);
  }
  return root;
}

function isBlockStart(line) {
  return FENCE.test(line) || HEADING.test(line) || LIST_ITEM.test(line);
}

function codeBlock(lines, start, fence, root) {
  const marker = fence[1];
  const closing = new RegExp(`^ {0,3}${marker[0] === "`" ? "`" : "~"}{${marker.length},}\\s*$`);
  const body = [];
  let i = start + 1;
  // A reply still streaming may not have its closing fence yet: the rest is code.
  while (i < lines.length && !closing.test(lines[i])) body.push(lines[i++]);
  const code = el("code", { text: body.join("\n"), dataset: fence[2] ? { lang: fence[2] } : null });
  root.append(el("pre", {}, code));
  return i + 1;
}

function paragraph(lines, start, root) {
  const p = el("p");
  let i = start;
  while (i < lines.length && lines[i].trim() !== "" && (i === start || !isBlockStart(lines[i]))) {
    if (i > start) p.append(el("br"));
    inline(p, lines[i].trim());
    i += 1;
  }
  root.append(p);
  return i;
}

function list(lines, start, root) {
  const ordered = (item) => /\d/.test(item[1]);
  const first = LIST_ITEM.exec(lines[start]);
  const kind = ordered(first);
  const node = el(kind ? "ol" : "ul");
  const number = Number.parseInt(first[1], 10);
  if (kind && number !== 1) node.setAttribute("start", String(number));
  let i = start;
  let current = null;
  while (i < lines.length) {
    const line = lines[i];
    const item = LIST_ITEM.exec(line);
    if (item && ordered(item) === kind) {
      current = inline(el("li"), item[2]);
      node.append(current);
      i += 1;
    } else if (item) {
      break; // a list of the other kind starts
    } else if (line.trim() === "") {
      // A blank line between items keeps the list going; anything else after it ends it.
      const next = LIST_ITEM.exec(lines[i + 1] ?? "");
      if (!next || ordered(next) !== kind) break;
      i += 1;
    } else if (/^\s+\S/.test(line) && !FENCE.test(line)) {
      current.append(el("br")); // an indented line continues the item
      inline(current, line.trim());
      i += 1;
    } else {
      break;
    }
  }
  root.append(node);
  return i;
}

/** Append `text`'s inline markup to `parent` and return `parent`. */
function inline(parent, text, depth = 0, inLink = false) {
  if (depth >= MAX_NESTING) {
    parent.append(text);
    return parent;
  }
  const matches = [...text.matchAll(INLINE)];
  let at = 0;
  for (const m of matches) {
    parent.append(text.slice(at, m.index));
    at = m.index + m[0].length;
    const [whole, code, bold1, bold2, em1, em2, linkText, linkUrl] = m;
    if (code !== undefined) parent.append(el("code", { text: code }));
    else if (bold1 !== undefined || bold2 !== undefined) {
      parent.append(inline(el("strong"), bold1 ?? bold2, depth + 1, inLink));
    } else if (em1 !== undefined || em2 !== undefined) {
      parent.append(inline(el("em"), em1 ?? em2, depth + 1, inLink));
    } else if (linkText !== undefined) {
      const href = inLink ? null : safeHref(linkUrl);
      // Not http(s) (javascript:, data:, relative): show the markup as text, hide nothing.
      parent.append(href ? inline(externalLink(href), linkText, depth + 1, true) : whole);
    } else {
      const [url, trailing] = splitTrailing(whole);
      const href = inLink ? null : safeHref(url);
      parent.append(href ? externalLink(href, url) : url, trailing);
    }
  }
  parent.append(text.slice(at));
  return parent;
}

/** "https://x.org/a)." -> ["https://x.org/a", ")."]: sentence punctuation is not the URL's. */
function splitTrailing(url) {
  const count = (s, ch) => s.split(ch).length - 1;
  let end = url.length;
  while (end > 0 && /[.,;:!?)\]}*_]/.test(url[end - 1])) {
    const head = url.slice(0, end);
    if (head.endsWith(")") && count(head, "(") >= count(head, ")")) break; // wiki-style (x)
    end -= 1;
  }
  return [url.slice(0, end), url.slice(end)];
}
