// Edit and branch: "Edit" on a user message opens an inline editor whose "Save as a
// branch" makes a new session from that point (the original stays as it was), and the
// links between a session and its branches: "Branched from <parent>" and "Branches: …"
// above the conversation, and on each edited message the branch it led to.

import { el, icon } from "./dom.js";
import { sessionTitle } from "./sessions.js";

const PENCIL = "M17 3a2.83 2.83 0 1 1 4 4L7.5 20.5 2 22l1.5-5.5L17 3z"; // Feather's edit-2 (MIT)

function sessionLink(session) {
  return el("a", { href: `#s/${encodeURIComponent(session.id)}`, text: sessionTitle(session) });
}

/** The row under a message that holds its actions (made on first use). */
function actionsOf(li) {
  let row = li.querySelector(":scope > .msg-actions");
  if (!row) {
    row = el("div", { class: "msg-actions" });
    li.append(row);
  }
  return row;
}

/**
 * Give a user message (`li`, with its `.bubble`) an "Edit" action. `save(text)` makes the
 * branch and resolves once the page shows it, or rejects with the error the editor shows.
 */
export function editable(li, save) {
  const row = actionsOf(li);
  if (row.querySelector(".edit-message")) return;
  // An icon, not a word: the message's text stays what the person wrote.
  const edit = el(
    "button",
    {
      type: "button",
      class: "btn subtle icon edit-message",
      "aria-label": "Edit",
      title: "Edit this message: the chat goes on from here in a new branch",
    },
    icon(PENCIL),
  );
  edit.addEventListener("click", () => openEditor(li, row, edit, save));
  row.prepend(edit);
}

function openEditor(li, row, edit, save) {
  const bubble = li.querySelector(":scope > .bubble");
  const box = el("textarea", {
    class: "edit-input",
    rows: "3",
    maxlength: "8000",
    "aria-label": "Edit your message",
  });
  box.value = bubble.textContent;
  const error = el("p", { class: "form-error", role: "alert" });
  const cancel = el("button", { type: "button", class: "btn subtle", text: "Cancel" });
  const submit = el("button", { type: "submit", class: "btn primary", text: "Save as a branch" });
  const form = el(
    "form",
    { class: "edit-form" },
    box,
    error,
    el("div", { class: "edit-actions" }, cancel, submit),
  );
  const close = () => {
    form.remove();
    bubble.hidden = row.hidden = false;
    if (li.isConnected) edit.focus();
  };
  const enable = (on) => {
    box.disabled = cancel.disabled = submit.disabled = !on;
  };
  bubble.hidden = row.hidden = true;
  li.insertBefore(form, row);
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
  cancel.addEventListener("click", close);
  box.addEventListener("keydown", (event) => {
    // As in the composer: Enter saves, Shift+Enter is a new line, Escape gives up.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "Escape") {
      event.preventDefault();
      close();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = box.value;
    if (!text.trim()) {
      error.textContent = "Write the message first.";
      return;
    }
    error.textContent = "";
    enable(false);
    try {
      await save(text);
      close();
    } catch (err) {
      enable(true);
      error.textContent = err?.readable ?? String(err?.message ?? err);
      box.focus();
    }
  });
}

/**
 * The open session's branch links: `bar` shows where it was branched from and the
 * branches made from it; `list` is the conversation, whose edited messages link to theirs.
 */
export class BranchBar {
  constructor({ api, bar, list }) {
    this.api = api;
    this.bar = bar;
    this.list = list;
    this.sessionId = null;
    this.branches = [];
    this.asked = 0; // only the latest show() renders
  }

  /** A session was opened (null: a new chat): read its parent and its branches. */
  async show(session) {
    const asked = ++this.asked;
    this.sessionId = session?.id ?? null;
    this.branches = [];
    this.bar.hidden = true;
    this.bar.replaceChildren();
    this.mark();
    if (!session) return;
    const parentId = session.parent_session_id;
    const [parent, page] = await Promise.all([
      parentId ? this.api.getSession(parentId).catch((err) => missing(err)) : null,
      this.api.branches(session.id),
    ]);
    if (asked !== this.asked) return;
    this.branches = Array.isArray(page?.items) ? page.items : [];
    const lines = [];
    if (parentId) {
      lines.push(
        el(
          "p",
          {},
          "Branched from ",
          parent ? sessionLink(parent) : el("span", { class: "muted", text: "a deleted chat" }),
        ),
      );
    }
    if (this.branches.length) {
      const links = this.branches.flatMap((b, i) => (i ? [", ", sessionLink(b)] : [sessionLink(b)]));
      lines.push(el("p", {}, "Branches: ", ...links));
    }
    this.bar.replaceChildren(...lines);
    this.bar.hidden = lines.length === 0;
    this.mark();
  }

  /** Each edited message on the page links to the branch made from it. */
  mark() {
    for (const old of this.list.querySelectorAll(".branch-marker")) old.remove();
    for (const branch of this.branches) {
      const turnId = String(branch.branched_at_turn ?? "");
      if (!turnId) continue;
      const li = [...this.list.querySelectorAll(".msg.user")].find(
        (node) => node.dataset.turnId === turnId,
      );
      if (!li) continue; // on an earlier page of the history, not loaded
      const link = sessionLink(branch);
      link.textContent = `Edited in \u201C${sessionTitle(branch)}\u201D`;
      link.classList.add("branch-marker");
      actionsOf(li).append(link);
    }
  }
}

/** A parent deleted since is no error: the branch says so. */
function missing(err) {
  if (err?.status === 404) return null;
  throw err;
}
