// The operators' console: the sessions handed to a person (waiting ones first), a
// session's transcript with its tool calls, and claim / reply / hand back / close, all
// through the /v1 API, which checks the agent role on every call.

import { Api, tokenStore } from "./api.js";
import { byId, el, str } from "./dom.js";
import { agentMessage, historyMessages } from "./messages.js";
import { overview } from "./overview.js";

const REFRESH_MS = 5000; // the queue and the open transcript, while the tab is visible

const ui = {
  queue: byId("queue"),
  queueEmpty: byId("queue-empty"),
  refresh: byId("refresh"),
  who: byId("who"),
  tokenForm: byId("token-form"),
  tokenInput: byId("token-input"),
  title: byId("session-title"),
  state: byId("handoff-state"),
  reason: byId("handoff-reason"),
  claim: byId("claim"),
  handBack: byId("hand-back"),
  close: byId("close-session"),
  alerts: byId("alerts"),
  transcript: byId("transcript"),
  replyForm: byId("reply-form"),
  replyInput: byId("reply-input"),
  replySend: byId("reply-send"),
  overview: byId("overview"),
  showOverview: byId("show-overview"),
};

const state = { me: null, agent: false, items: [], open: null }; // open: the selected item

const api = new Api({ onUnauthorized: () => askForToken() });
const fetchArtifact = (id) => api.artifact(id);

function alert(text) {
  ui.alerts.replaceChildren(text ? el("p", { class: "notice warn", text }) : "");
}

function askForToken() {
  ui.tokenForm.hidden = false;
  ui.who.textContent = "Sign in with an agent's token.";
}

ui.tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  tokenStore.set(ui.tokenInput.value.trim());
  ui.tokenForm.hidden = true;
  start().catch(showError);
});

function showError(err) {
  alert(err?.readable ?? String(err?.message ?? err));
}

function since(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

function statePill(handoff) {
  if (handoff.state === "claimed") return { text: `claimed by ${str(handoff.agent_id)}`, cls: "pill" };
  return { text: handoff.sla_missed ? "waiting, past the SLA" : "waiting", cls: "pill warn" };
}

function renderQueue() {
  ui.queueEmpty.hidden = state.items.length > 0;
  ui.queue.replaceChildren(
    ...state.items.map((item) => {
      const pill = statePill(item.handoff);
      const button = el(
        "button",
        {
          type: "button",
          class: "queue-item",
          "aria-current": state.open?.session_id === item.session_id ? "true" : "false",
          dataset: { session: item.session_id },
        },
        el("strong", { text: str(item.title) || item.session_id }),
        el("span", { class: pill.cls, text: pill.text }),
        el("br"),
        el("span", {
          class: "muted small",
          text: `${item.user_id} \u00B7 ${item.handoff.source} \u00B7 ${since(item.handoff.requested_at)} ago`,
        }),
      );
      button.addEventListener("click", () => open(item).catch(showError));
      return el("li", {}, button);
    }),
  );
}

async function loadQueue() {
  const page = await api.handoffQueue();
  state.items = page.items;
  if (state.open) {
    // The open session's handoff as the queue now has it (gone: handed back or closed).
    state.open = state.items.find((i) => i.session_id === state.open.session_id) ?? null;
    renderOpen();
  }
  renderQueue();
}

async function open(item) {
  ui.overview.hidden = true;
  state.open = item;
  renderQueue();
  renderOpen();
  await loadTranscript();
}

function renderOpen() {
  const item = state.open;
  const mine = item?.handoff.state === "claimed" && item.handoff.agent_id === state.me?.user_id;
  ui.title.textContent = item ? `${str(item.title) || item.session_id} \u2014 ${item.user_id}` : "Pick a session from the queue";
  ui.state.hidden = !item;
  if (item) {
    const pill = statePill(item.handoff);
    ui.state.className = pill.cls;
    ui.state.textContent = pill.text;
  }
  ui.reason.hidden = !item?.handoff.reason;
  ui.reason.textContent = item?.handoff.reason ? `Reason: ${item.handoff.reason}` : "";
  ui.claim.hidden = !item || item.handoff.state !== "waiting";
  ui.handBack.hidden = !mine;
  ui.close.hidden = !mine;
  ui.replyForm.hidden = !mine;
}

async function loadTranscript() {
  const item = state.open;
  if (!item) {
    ui.transcript.replaceChildren();
    return;
  }
  const page = await api.transcript(item.session_id);
  if (state.open?.session_id !== item.session_id) return; // another one was opened
  ui.transcript.replaceChildren(...historyMessages(page.items, fetchArtifact));
  ui.transcript.lastElementChild?.scrollIntoView({ block: "end" });
}

async function act(button, action) {
  button.disabled = true;
  alert("");
  try {
    await action();
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
  await loadQueue().catch(showError);
}

ui.claim.addEventListener("click", () =>
  act(ui.claim, async () => {
    state.open.handoff = await api.claimHandoff(state.open.session_id);
    renderOpen();
    ui.replyInput.focus();
  }),
);

ui.handBack.addEventListener("click", () =>
  act(ui.handBack, () => api.releaseHandoff(state.open.session_id, "bot")),
);

ui.close.addEventListener("click", () =>
  act(ui.close, () => api.releaseHandoff(state.open.session_id, "closed")),
);

ui.replyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.replyInput.value.trim();
  if (!text) return;
  act(ui.replySend, async () => {
    const sent = await api.writeToUser(state.open.session_id, text);
    ui.replyInput.value = "";
    ui.transcript.append(agentMessage(str(sent.reply), sent.agent_id));
  });
});

ui.replyInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    ui.replyForm.requestSubmit();
  }
});

ui.refresh.addEventListener("click", () => loadQueue().catch(showError));

async function showOverview() {
  const data = await api.adminOverview(7);
  state.open = null;
  renderQueue();
  renderOpen();
  ui.transcript.replaceChildren();
  ui.title.textContent = "Overview";
  ui.overview.replaceChildren(...overview(data));
  ui.overview.hidden = false;
}

ui.showOverview.addEventListener("click", () => showOverview().catch(showError));

async function start() {
  state.me = await api.me();
  const roles = Array.isArray(state.me.roles) ? state.me.roles : [];
  if (!roles.includes("agent") && !roles.includes("admin")) {
    ui.who.textContent = `Signed in as ${state.me.user_id}`;
    alert(`The console needs the agent role; ${state.me.user_id} does not have it.`);
    askForToken();
    return;
  }
  state.agent = true;
  ui.showOverview.hidden = !roles.includes("admin");
  ui.who.textContent = `Signed in as ${state.me.user_id} (${roles.filter((r) => r !== "user").join(", ")})`;
  alert("");
  await loadQueue();
}

setInterval(() => {
  if (document.visibilityState !== "visible" || !state.agent) return;
  loadQueue()
    .then(() => (state.open && ui.replyInput.value === "" ? loadTranscript() : null))
    .catch(showError);
}, REFRESH_MS);

start().catch(showError);
