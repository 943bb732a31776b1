// The chat page: signs in, lists chats, sends messages and streams the replies, all
// through the public /v1 API (see README "Talking to it").

import { Api, ApiError, tokenStore } from "./api.js";
import { BranchBar, editable } from "./branches.js";
import { byId, el, safeHref, str } from "./dom.js";
import { Rating } from "./feedback.js";
import { HandoffView } from "./handoff.js";
import { AssistantMessage, historyMessages, storedReply, userMessage } from "./messages.js";
import { SessionList, sessionTitle } from "./sessions.js";
import { describeUsage } from "./usage.js";
import { ReplyVersions } from "./versions.js";

const ui = {
  app: byId("app"),
  who: byId("who"),
  devMode: byId("dev-mode"),
  devModeNote: byId("dev-mode-note"),
  usage: byId("usage"),
  signOut: byId("sign-out"),
  openSidebar: byId("open-sidebar"),
  closeSidebar: byId("close-sidebar"),
  scrim: byId("scrim"),
  newSession: byId("new-session"),
  title: byId("session-title"),
  temporalLink: byId("temporal-link"),
  rename: byId("rename-session"),
  askPerson: byId("ask-person"),
  handoffBanner: byId("handoff-banner"),
  remove: byId("delete-session"),
  alerts: byId("alerts"),
  messages: byId("messages"),
  list: byId("message-list"),
  older: byId("older-messages"),
  emptyChat: byId("empty-chat"),
  composer: byId("composer"),
  input: byId("message-input"),
  send: byId("send"),
  stop: byId("stop"),
  status: byId("status"),
  signInDialog: byId("sign-in-dialog"),
  signInForm: byId("sign-in-form"),
  tokenInput: byId("token-input"),
  signInError: byId("sign-in-error"),
  renameDialog: byId("rename-dialog"),
  renameForm: byId("rename-form"),
  renameInput: byId("rename-input"),
  renameCancel: byId("rename-cancel"),
  deleteDialog: byId("delete-dialog"),
  deleteName: byId("delete-name"),
};

const state = {
  me: null,
  session: null, // the open session (SessionPublic), or null for a chat not yet started
  olderBefore: null, // history: `before` for the previous page
  turn: null, // the running turn: {sessionId, turnId, abort, view, mine}
  pinned: true, // the conversation is scrolled to its end, so new text keeps it there
  ready: false, // signed in and a chat is open: until then a message would have nowhere to go
};

// A first visit without a token is no error: it just asks for one.
const api = new Api({ onUnauthorized: (err) => askForToken(tokenStore.get() ? err.message : "") });
const handoff = new HandoffView({
  api,
  banner: byId("handoff-banner"),
  button: byId("ask-person"),
  list: byId("message-list"),
  onChange: () => scrollToEnd(),
});
const branchBar = new BranchBar({ api, bar: byId("branch-bar"), list: byId("message-list") });
const sessions = new SessionList(api, {
  list: byId("session-list"),
  more: byId("more-sessions"),
  empty: byId("sessions-empty"),
  onOpen: (id) => {
    closeSidebar();
    openSession(id);
  },
  onError: showError,
});

// ---- messages to the person -------------------------------------------------------------

function showError(err) {
  if (err?.name === "AbortError") return;
  const text =
    err instanceof ApiError
      ? err.readable
      : `Something went wrong in this page: ${str(err?.message ?? err)}`;
  if (!(err instanceof ApiError)) console.error(err); // a bug here, not an API answer
  const close = el("button", { type: "button", class: "btn icon", "aria-label": "Dismiss", text: "\u00D7" });
  const alert = el(
    "div",
    { class: "alert", dataset: { code: err?.code ?? "page" } },
    el("span", { class: "alert-text", text }),
    close,
  );
  close.addEventListener("click", () => alert.remove());
  ui.alerts.replaceChildren(alert); // the newest error replaces older ones
}

function clearAlerts() {
  ui.alerts.replaceChildren();
}

function setStatus(text) {
  ui.status.textContent = text;
}

// ---- signing in ---------------------------------------------------------------------------

function askForToken(message = "") {
  ui.who.textContent = "Not signed in";
  ui.signInError.textContent = message;
  if (!ui.signInDialog.open) {
    ui.tokenInput.value = "";
    ui.signInDialog.showModal();
  }
}

async function signIn(event) {
  event.preventDefault();
  const token = ui.tokenInput.value.trim().replace(/^Bearer\s+/i, "");
  if (!token) {
    ui.signInError.textContent = "Paste a token first.";
    return;
  }
  tokenStore.set(token);
  try {
    await start();
  } catch (err) {
    tokenStore.clear();
    ui.signInError.textContent =
      err instanceof ApiError && err.status === 401
        ? `That token was not accepted: ${err.message}.`
        : (err.readable ?? String(err));
  }
}

/** Who am I (and is the gateway in dev mode)? Then the chat list and a chat. */
async function start() {
  state.ready = false;
  updateComposer();
  const me = await api.me();
  state.me = me;
  if (ui.signInDialog.open) ui.signInDialog.close();
  ui.who.textContent = me.dev_mode
    ? `Signed in automatically as ${me.user_id}`
    : `Signed in as ${me.user_id}`;
  ui.devMode.hidden = !me.dev_mode;
  ui.devModeNote.hidden = !me.dev_mode;
  ui.signOut.hidden = me.dev_mode;
  refreshUsage();
  await sessions.reload();
  const fromUrl = sessionIdFromUrl();
  if (fromUrl) await openSession(fromUrl);
  else if (sessions.newest) await openSession(sessions.newest.id);
  else openNewChat();
  state.ready = true;
  updateComposer();
}

/** The usage line; a failure to read it hides the line and leaves the chat as it is. */
async function refreshUsage() {
  try {
    const usage = describeUsage(await api.usage());
    ui.usage.textContent = usage.text;
    ui.usage.title = usage.title;
    ui.usage.classList.toggle("over", usage.over);
    ui.usage.hidden = false;
  } catch {
    ui.usage.hidden = true;
  }
}

function signOut() {
  tokenStore.clear();
  state.me = null;
  state.ready = false;
  detachTurn();
  sessions.items = [];
  sessions.render();
  openNewChat();
  ui.who.textContent = "Signed out";
  ui.usage.hidden = true;
  ui.signOut.hidden = true;
  askForToken();
}

// ---- the open chat ----------------------------------------------------------------------

function sessionIdFromUrl() {
  const match = /^#s\/(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

function showSession(session) {
  state.session = session;
  ui.title.textContent = session ? sessionTitle(session) : "New chat";
  document.title = session ? `${sessionTitle(session)} \u2013 Chat` : "Chat";
  const href = session ? safeHref(session.temporal_ui_url) : null;
  ui.temporalLink.hidden = !href;
  if (href) ui.temporalLink.setAttribute("href", href);
  else ui.temporalLink.removeAttribute("href");
  ui.rename.hidden = ui.remove.hidden = !session;
  const id = session?.id ?? null;
  if (handoff.sessionId !== id) handoff.open(id, session?.handoff);
  else if (session) handoff.show(session.handoff ?? null);
  if (branchBar.sessionId !== id) branchBar.show(session).catch(showError);
  sessions.setActive(session?.id ?? null);
  const hash = session ? `#s/${encodeURIComponent(session.id)}` : "";
  if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname);
}

function clearConversation() {
  detachTurn();
  ui.list.replaceChildren();
  ui.older.hidden = true;
  state.olderBefore = null;
  updateEmptyHint();
}

function openNewChat() {
  clearConversation();
  clearAlerts();
  showSession(null);
  ui.input.focus();
}

async function openSession(id) {
  clearConversation();
  clearAlerts();
  try {
    showSession(await api.getSession(id));
    await loadHistory();
  } catch (err) {
    if (err.status === 404) sessions.remove(id);
    showSession(null);
    showError(err);
    return;
  }
  state.pinned = true;
  scrollToEnd();
  resumeWaitingTurn().catch(showError); // the history is there whatever this finds
  if (matchMedia("(min-width: 721px)").matches) ui.input.focus();
}

async function loadHistory() {
  const sessionId = state.session.id;
  const page = await api.history(sessionId, state.olderBefore);
  if (state.session?.id !== sessionId) return; // another chat was opened meanwhile
  const keep = ui.messages.scrollHeight - ui.messages.scrollTop;
  ui.list.prepend(...historyMessages(page.items, fetchArtifact, decorations(sessionId)));
  branchBar.mark();
  markLatest();
  state.olderBefore = page.next_before;
  ui.older.hidden = !page.next_before;
  // Earlier messages go above what the reader is looking at, without moving it.
  ui.messages.scrollTop = ui.messages.scrollHeight - keep;
  updateEmptyHint();
}

function updateEmptyHint() {
  ui.emptyChat.hidden = ui.list.childElementCount > 0;
}

function scrollToEnd() {
  if (state.pinned) ui.messages.scrollTop = ui.messages.scrollHeight;
}

// ---- sending and streaming --------------------------------------------------------------

/** One turn at a time: Send waits while a reply streams, and Stop is there meanwhile. */
function updateComposer() {
  const busy = state.turn !== null;
  ui.input.disabled = !state.ready;
  ui.send.disabled = !state.ready || busy;
  ui.stop.hidden = !busy;
  ui.stop.disabled = !state.turn?.turnId; // enabled once the turn id is known
  markLatest();
}

/** Stop following the running turn (another chat was opened); it still runs on the server. */
function detachTurn() {
  if (state.turn) {
    state.turn.abort.abort();
    state.turn = null;
    updateComposer();
    setStatus("");
  }
}

function titleFrom(text) {
  const line = text.trim().split("\n")[0];
  return line.length > 60 ? `${line.slice(0, 57).trimEnd()}\u2026` : line;
}

/** A file a turn made (a query's CSV or chart), as a Blob. */
const fetchArtifact = (id) => api.artifact(id);

/** A turn the page follows, with the reply it renders (whose cards decide on its calls). */
function newTurn(sessionId = null, turnId = null) {
  const turn = { sessionId, turnId, abort: new AbortController(), view: null };
  turn.view = new AssistantMessage({
    onChange: scrollToEnd,
    decide: (callId, decision, note) =>
      api.decideApproval(turn.sessionId, turn.turnId, callId, decision, note),
    fetchArtifact,
  });
  return turn;
}

/** What `api.sendMessage` / `api.watchTurn` report, shown on the turn's reply. */
function turnHandlers(turn, started) {
  return {
    turn: (turnId) => {
      turn.turnId = turnId;
      updateComposer();
    },
    event: (event) => {
      onTurnEvent(turn.view, event, started);
      if (event.type === "final") decorateTurn(turn);
    },
    reconnecting: (attempt) =>
      setStatus(`Connection lost; resuming the reply (attempt ${attempt})\u2026`),
    reconnected: () => setStatus(""),
  };
}

function endTurn(turn) {
  if (state.turn === turn) {
    state.turn = null;
    updateComposer();
  }
}

/**
 * The chat was (re)opened while its turn waits for a decision, which history does not
 * list yet: show that reply with its approval cards and follow its stream from the start,
 * so decisions, tokens and the final reply render as in a live turn.
 */
async function resumeWaitingTurn() {
  const sessionId = state.session.id;
  const { items } = await api.pendingApprovals(sessionId);
  if (state.session?.id !== sessionId || state.turn || !items?.length) return;
  const turn = newTurn(sessionId, items[0].turn_id);
  for (const item of items) onToolEvent(turn.view, "approval_required", item.call);
  ui.list.append(turn.view.li);
  updateEmptyHint();
  scrollToEnd();
  state.turn = turn;
  updateComposer();
  try {
    await api.watchTurn(turn.turnId, turnHandlers(turn, null), turn.abort.signal);
  } catch (err) {
    if (err?.name === "AbortError") return;
    turn.view.fail(err.readable ?? String(err));
    throw err;
  } finally {
    endTurn(turn);
  }
}

async function send() {
  const text = ui.input.value;
  if (!text.trim() || state.turn || !state.ready) return;
  clearAlerts();
  ui.input.value = "";
  autosize();
  const mine = userMessage(text);
  const turn = newTurn();
  turn.mine = mine;
  const { view } = turn;
  ui.list.append(mine);
  updateEmptyHint();
  state.pinned = true;
  scrollToEnd();
  state.turn = turn;
  updateComposer();
  const started = performance.now();
  try {
    if (!state.session) {
      // A new chat becomes a session with its first message, titled by that message.
      const session = await api.createSession(titleFrom(text));
      sessions.upsert(session);
      if (turn.abort.signal.aborted) return; // another chat was opened meanwhile
      showSession(session);
    }
    turn.sessionId = state.session.id;
    ui.list.append(view.li);
    await api.sendMessage(turn.sessionId, text, turnHandlers(turn, started), turn.abort.signal);
  } catch (err) {
    if (err?.name === "AbortError") return;
    if (turn.turnId === null) {
      // Refused before anything was sent: put the text back so nothing typed is lost.
      mine.remove();
      view.li.remove();
      if (!ui.input.value) ui.input.value = text;
      autosize();
      updateEmptyHint();
    } else {
      view.fail(err.readable ?? String(err));
    }
    showError(err);
  } finally {
    endTurn(turn);
  }
}

// ---- a message's actions: edit (a branch), versions (regenerate), rating ----------------

const replyVersions = new WeakMap(); // a reply's li -> its ReplyVersions

/** What the messages of `sessionId`'s history get: Edit, versions, thumbs. */
function decorations(sessionId) {
  return {
    user: (li) => editable(li, (text) => branchFrom(sessionId, li.dataset.turnId, text)),
    reply: (view, item) => decorateReply(view, sessionId, item.feedback ?? null),
  };
}

/** A turn this page followed has its final result: its messages get their actions. */
function decorateTurn(turn) {
  const { view, mine, sessionId } = turn;
  if (!view.turnId || !view.li.isConnected) return; // e.g. no reply while a person has it
  decorateReply(view, sessionId, null);
  if (mine && !mine.dataset.turnId) {
    mine.dataset.turnId = view.turnId;
    decorations(sessionId).user(mine);
  }
}

/** The actions under a reply, made once (a regenerated reply keeps its rating). */
function decorateReply(view, sessionId, feedback) {
  const turnId = view.turnId;
  if (!turnId) return;
  let versions = replyVersions.get(view.li);
  if (!versions) {
    versions = new ReplyVersions({
      load: () => api.replyVersions(sessionId, turnId),
      pick: (version) => api.pickVersion(sessionId, turnId, version),
      show: (item) => view.replace({ ...storedReply(item), intent: view.result?.intent }),
      regenerate: () => regenerate(view),
      onError: showError,
    });
    const rating = new Rating({
      rate: (value, reason) => api.rate(sessionId, turnId, value, reason),
      feedback,
      onError: showError,
    });
    view.actions.replaceChildren(versions.node, rating.node);
    replyVersions.set(view.li, versions);
  }
  versions.update(view.result ?? {});
  markLatest();
}

/** Only the session's latest reply can be regenerated (and its version picked). */
function markLatest() {
  const all = [...ui.list.querySelectorAll(".msg.assistant")];
  const replies = all.map((li) => replyVersions.get(li)).filter(Boolean);
  replies.forEach((r, i) => r.setLatest(i === replies.length - 1, state.turn !== null));
}

/** Answer the latest turn again: the new version streams into the same reply. */
async function regenerate(view) {
  if (state.turn || !state.session || !view.turnId) return;
  clearAlerts();
  const turn = { sessionId: state.session.id, turnId: null, abort: new AbortController(), view };
  const before = view.result;
  view.onChange = scrollToEnd;
  view.reset({
    decide: (callId, decision, note) =>
      api.decideApproval(turn.sessionId, turn.turnId, callId, decision, note),
  });
  state.turn = turn;
  updateComposer();
  try {
    const on = turnHandlers(turn, performance.now());
    await api.regenerate(turn.sessionId, view.turnId, on, turn.abort.signal);
  } catch (err) {
    if (err?.name === "AbortError") return;
    if (turn.turnId === null && before) view.replace(before); // refused: the reply as it was
    else view.fail(err.readable ?? String(err));
    showError(err);
  } finally {
    endTurn(turn);
  }
}

/** Save an edited message as a branch, then move to it; a refusal stays in the editor. */
async function branchFrom(sessionId, turnId, text) {
  const made = await api.branch(sessionId, turnId, text);
  sessions.upsert(made.session);
  openBranch(made, text).catch(showError);
}

/** The new branch, its history (the turns before the edit) and its answer streaming. */
async function openBranch(made, text) {
  const id = made.session.id;
  clearConversation();
  clearAlerts();
  showSession(made.session);
  await loadHistory();
  if (state.session?.id !== id || state.turn) return;
  state.pinned = true;
  const answered = [...ui.list.querySelectorAll(".msg.user")].some(
    (li) => li.dataset.turnId === made.turn_id,
  );
  if (answered) {
    scrollToEnd(); // it finished before the history was read: the history has it
    return;
  }
  const turn = newTurn(id, made.turn_id);
  turn.mine = userMessage(text);
  ui.list.append(turn.mine, turn.view.li);
  updateEmptyHint();
  scrollToEnd();
  state.turn = turn;
  updateComposer();
  try {
    await api.watchTurn(turn.turnId, turnHandlers(turn, performance.now()), turn.abort.signal);
  } catch (err) {
    if (err?.name === "AbortError") return;
    turn.view.fail(err.readable ?? String(err));
    throw err;
  } finally {
    endTurn(turn);
  }
}

const TOOL_EVENTS = new Set(["tool_call", "approval_required", "approval_decided", "tool_result"]);

/** `started`: when this page sent the message (null for a turn it only follows). */
function onTurnEvent(view, event, started) {
  const { type, data } = event;
  if (type === "token") view.append(str(data.text));
  else if (TOOL_EVENTS.has(type)) onToolEvent(view, type, data.call);
  else if (type === "restart") {
    const keep = Number(data.keep_chars) || 0;
    view.restart(keep);
    setStatus(
      keep > 0
        ? "The model was asked again; its last step starts over."
        : "The model was asked again; the reply starts over.",
    );
  } else if (type === "final") {
    const result = data.result ?? {};
    view.finish(result, started === null ? null : performance.now() - started);
    if ("handoff" in result) handoff.show(result.handoff ?? null);
    // A message while a person has the chat: nobody answered it yet, so no reply bubble.
    if (result.handoff && !result.agent_id && !str(result.reply)) view.li.remove();
    setStatus(result.status === "cancelled" ? "Stopped; the partial reply was kept." : "");
    refreshUsage();
  } else if (type === "error") {
    const prefix =
      {
        LLMRequestRejected: "The model provider rejected the request",
        BudgetExceeded: "Budget used up",
        ProviderUnavailable: "The model provider is unavailable",
      }[data.error_type] ?? "The reply failed";
    view.fail(`${prefix}: ${str(data.error) || "no details given"}`);
    setStatus("");
    refreshUsage();
  }
}

/** A call of a tool-calling turn: shown on the reply; a wait for approval is announced. */
function onToolEvent(view, type, call) {
  view.toolCall(call);
  if (type === "approval_required") {
    setStatus(`Waiting for your approval to run ${str(call?.name) || "a tool"}.`);
  } else if (type === "approval_decided" && !view.tools.waiting) {
    setStatus("");
  }
}

async function stop() {
  const turn = state.turn;
  if (!turn?.turnId) return;
  ui.stop.disabled = true;
  setStatus("Stopping\u2026");
  try {
    await api.cancelTurn(turn.sessionId, turn.turnId);
  } catch (err) {
    // 409: the turn finished on its own meanwhile; its final event is on the way.
    if (err.status !== 409) {
      ui.stop.disabled = false;
      setStatus("");
      showError(err);
    }
  }
}

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

// ---- renaming and deleting ----------------------------------------------------------------

function openRename() {
  if (!state.session) return;
  ui.renameInput.value = state.session.title;
  ui.renameDialog.showModal();
  ui.renameInput.select();
}

async function rename(event) {
  event.preventDefault();
  const title = ui.renameInput.value.trim();
  if (!title || !state.session) return;
  try {
    const session = await api.renameSession(state.session.id, title);
    sessions.upsert(session);
    showSession(session);
    ui.renameDialog.close();
  } catch (err) {
    ui.renameDialog.close();
    showError(err);
  }
}

function openDelete() {
  if (!state.session) return;
  ui.deleteName.textContent = sessionTitle(state.session);
  ui.deleteDialog.returnValue = "";
  ui.deleteDialog.showModal();
}

async function onDeleteClosed() {
  if (ui.deleteDialog.returnValue !== "delete" || !state.session) return;
  const id = state.session.id;
  try {
    await api.deleteSession(id);
  } catch (err) {
    showError(err);
    return;
  }
  sessions.remove(id);
  if (sessions.newest) await openSession(sessions.newest.id);
  else openNewChat();
  setStatus("Chat deleted.");
}

// ---- narrow screens: the chat list slides over the conversation -------------------------

function openSidebar() {
  ui.app.classList.add("sidebar-open");
  ui.scrim.hidden = false;
  ui.openSidebar.setAttribute("aria-expanded", "true");
  ui.newSession.focus();
}

function closeSidebar() {
  if (!ui.app.classList.contains("sidebar-open")) return;
  ui.app.classList.remove("sidebar-open");
  ui.scrim.hidden = true;
  ui.openSidebar.setAttribute("aria-expanded", "false");
}

// ---- wiring -------------------------------------------------------------------------------

function wire() {
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  ui.input.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter is a new line; not while an input method composes text.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    } else if (event.key === "Escape" && state.turn) {
      stop();
    }
  });
  ui.input.addEventListener("input", autosize);
  ui.stop.addEventListener("click", stop);
  ui.messages.addEventListener("scroll", () => {
    const { scrollHeight, scrollTop, clientHeight } = ui.messages;
    state.pinned = scrollHeight - scrollTop - clientHeight < 80;
  });
  ui.older.addEventListener("click", () => loadHistory().catch(showError));
  ui.newSession.addEventListener("click", () => {
    closeSidebar();
    openNewChat();
  });
  ui.rename.addEventListener("click", openRename);
  ui.renameForm.addEventListener("submit", rename);
  ui.renameCancel.addEventListener("click", () => ui.renameDialog.close());
  ui.remove.addEventListener("click", openDelete);
  ui.deleteDialog.addEventListener("close", onDeleteClosed);
  ui.signInForm.addEventListener("submit", signIn);
  // Without a token nothing works, so Escape does not dismiss the sign-in dialog.
  ui.signInDialog.addEventListener("cancel", (event) => event.preventDefault());
  ui.signOut.addEventListener("click", signOut);
  ui.openSidebar.addEventListener("click", openSidebar);
  ui.closeSidebar.addEventListener("click", closeSidebar);
  ui.scrim.addEventListener("click", closeSidebar);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeSidebar();
  });
  window.addEventListener("hashchange", () => {
    const id = sessionIdFromUrl();
    if (id && id !== state.session?.id) openSession(id);
  });
  // A bug in this page must not fail silently either.
  window.addEventListener("unhandledrejection", (event) => showError(event.reason));
}

wire();
start().catch((err) => {
  // A 401 already opened the sign-in dialog; anything else is shown as it is.
  if (err.status !== 401) {
    ui.who.textContent = "Not connected";
    showError(err);
  }
});
