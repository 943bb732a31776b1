// DOM helpers. Strings passed as children become Text nodes and `text` sets textContent,
// so untrusted strings are never parsed as HTML anywhere in the page.

/** `el("a", {class: "x", href: url, text: "label"}, child, "more text")` */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
}

/** A value from the server as display text: strings as they are, nothing for null. */
export function str(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : String(value);
}

/** The URL if it is absolute http(s), else null: no javascript:, data: or relative links. */
export function safeHref(raw) {
  if (typeof raw !== "string") return null;
  try {
    const url = new URL(raw.trim());
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** An external link that cannot reach back into this page (no opener, no referrer). */
export function externalLink(href, ...children) {
  return el("a", { href, target: "_blank", rel: "noopener noreferrer" }, ...children);
}

const SVG = "http://www.w3.org/2000/svg";

/**
 * A 24x24 line icon drawn from an SVG path (`d`), in the text's colour; decorative, so
 * the button holding it needs an aria-label. No icon font or emoji font is needed.
 */
export function icon(d) {
  const svg = document.createElementNS(SVG, "svg");
  const attributes = {
    viewBox: "0 0 24 24",
    width: "16",
    height: "16",
    fill: "none",
    stroke: "currentColor",
    "stroke-width": "2",
    "stroke-linecap": "round",
    "stroke-linejoin": "round",
    "aria-hidden": "true",
    focusable: "false",
  };
  for (const [name, value] of Object.entries(attributes)) svg.setAttribute(name, value);
  const shape = document.createElementNS(SVG, "path");
  shape.setAttribute("d", d);
  svg.append(shape);
  return svg;
}
