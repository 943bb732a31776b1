// The public /v1 API as the page uses it: JSON calls with the bearer token, every error as
// an ApiError with a sentence a person can act on, and a turn's event stream that
// resumes after a dropped connection instead of losing the reply.

import { readEvents } from "./sse.js";

const TOKEN_KEY = "chatbot.token";
// Waits before each attempt to resume a dropped stream; progress resets the count.
const RESUME_DELAYS_MS = [0, 250, 500, 1000, 2000, 4000, 8000, 8000];

export const tokenStore = {
  get: () => localStorage.getItem(TOKEN_KEY),
  set: (token) => localStorage.setItem(TOKEN_KEY, token),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0: no answer from the server
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from Retry-After
  }

  /** The gateway's `{"error": {"code", "message"}}`, or whatever a proxy sent instead. */
  static async fromResponse(response) {
    let code = `http_${response.status}`;
    let message = "";
    try {
      const body = await response.json();
      code = body?.error?.code ?? code;
      message = body?.error?.message ?? "";
    } catch {
      // Not JSON (a proxy's HTML page, an empty body): the status line has to do.
    }
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    return new ApiError(
      response.status,
      code,
      message || response.statusText || "no details given",
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
    );
  }

  static unreachable() {
    return new ApiError(
      0,
      "network",
      "the server could not be reached; check the connection and try again",
    );
  }

  /** One line for the page: what happened and, where it helps, what to do. */
  get readable() {
    const saysWhen = /retry|try again/i.test(this.message);
    const later = this.retryAfter && !saysWhen ? ` Try again in ${this.retryAfter} s.` : "";
    const prefix = {
      0: "No connection",
      400: "Bad request",
      401: "Please sign in",
      403: "Not allowed",
      404: "Not found",
      409: "Conflict",
      413: "Too long",
      422: "Not accepted",
      429: "Too many messages",
      502: "The model provider failed",
      503: "The service is unavailable right now",
    }[this.status] ?? `Error ${this.status}`;
    if (this.code === "budget_exceeded") return `Budget used up: ${this.message}`;
    return `${prefix}: ${this.message}.${later}`.replace(/\.\.(?= |$)/, ".");
  }
}

function isAbort(err) {
  return err?.name === "AbortError";
}

function wait(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

/** An idempotency key: a retried POST with it yields the same turn, never a second one. */
function newMessageId() {
  // getRandomValues works on plain http too, where crypto.randomUUID does not exist.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

const enc = encodeURIComponent;

export class Api {
  /** `onUnauthorized(error)` runs on every 401, so the page can ask for a token. */
  constructor({ onUnauthorized }) {
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, { body, headers = {}, signal } = {}) {
    const all = { ...headers };
    const token = tokenStore.get();
    if (token) all.Authorization = `Bearer ${token}`;
    if (body !== undefined) all["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(`/v1${path}`, {
        method,
        headers: all,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (err) {
      throw isAbort(err) ? err : ApiError.unreachable();
    }
    if (!response.ok) {
      const error = await ApiError.fromResponse(response);
      if (error.status === 401) this.onUnauthorized?.(error);
      throw error;
    }
    return response;
  }

  async json(method, path, options) {
    const response = await this.request(method, path, options);
    return response.status === 204 ? null : response.json();
  }

  me() {
    return this.json("GET", "/me");
  }

  usage() {
    return this.json("GET", "/me/usage");
  }

  listSessions(cursor = null, limit = 20) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return this.json("GET", `/sessions?${query}`);
  }

  getSession(id) {
    return this.json("GET", `/sessions/${enc(id)}`);
  }

  createSession(title) {
    return this.json("POST", "/sessions", { body: { title } });
  }

  renameSession(id, title) {
    return this.json("PATCH", `/sessions/${enc(id)}`, { body: { title } });
  }

  deleteSession(id) {
    return this.json("DELETE", `/sessions/${enc(id)}`);
  }

  history(id, before = null, limit = 50) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before) query.set("before", String(before));
    return this.json("GET", `/sessions/${enc(id)}/messages?${query}`);
  }

  cancelTurn(sessionId, turnId) {
    return this.json("POST", `/sessions/${enc(sessionId)}/turns/${enc(turnId)}/cancel`);
  }

  /**
   * Approve or deny a tool call the turn waits on (its `approval_required` event). The
   * same decision again answers as recorded; 409 when the turn has moved on.
   */
  decideApproval(sessionId, turnId, callId, decision, note = "") {
    const path = `/sessions/${enc(sessionId)}/turns/${enc(turnId)}/approvals/${enc(callId)}`;
    return this.json("POST", path, { body: { decision, note } });
  }

  /** A file a turn made (`GET /artifacts/{id}`), as a Blob; another user's is a 404. */
  async artifact(id) {
    const response = await this.request("GET", `/artifacts/${enc(id)}`);
    return response.blob();
  }

  /** Hand the session to a person (the assistant stops answering). */
  askForPerson(sessionId, reason = "") {
    return this.json("POST", `/sessions/${enc(sessionId)}/handoff`, { body: { reason } });
  }

  /** While waiting for a person: leave the chat as a ticket instead (one per handoff). */
  leaveTicket(sessionId, note = "") {
    return this.json("POST", `/sessions/${enc(sessionId)}/handoff/ticket`, { body: { note } });
  }

  // ---- the console (the agent role) ----

  adminOverview(days = 7) {
    return this.json("GET", `/admin/overview?days=${encodeURIComponent(String(days))}`);
  }

  handoffQueue() {
    return this.json("GET", "/handoffs");
  }

  claimHandoff(sessionId) {
    return this.json("POST", `/handoffs/${enc(sessionId)}/claim`);
  }

  transcript(sessionId, before = null, limit = 100) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before) query.set("before", String(before));
    return this.json("GET", `/handoffs/${enc(sessionId)}/messages?${query}`);
  }

  writeToUser(sessionId, text) {
    return this.json("POST", `/handoffs/${enc(sessionId)}/messages`, {
      body: { text, client_message_id: newMessageId() },
    });
  }

  releaseHandoff(sessionId, outcome) {
    return this.json("POST", `/handoffs/${enc(sessionId)}/release`, { body: { outcome } });
  }

  /** The tool calls the session's running turn waits on a decision for: `{items}`. */
  pendingApprovals(sessionId) {
    return this.json("GET", `/sessions/${enc(sessionId)}/approvals`);
  }

  /** Follow a turn that already runs (a chat reopened), from its first event, like `sendMessage`. */
  async watchTurn(turnId, on, signal) {
    const response = await this.request("GET", `/turns/${enc(turnId)}/events`, {
      headers: { Accept: "text/event-stream" },
      signal,
    });
    await this.follow(turnId, response, on, signal);
  }

  /**
   * Send `text` to a session and follow the reply until its `final` or `error` event.
   * `on.turn(turnId)` as soon as the turn exists; `on.event({id, type, data})` for each
   * event; `on.reconnecting(attempt)` / `on.reconnected()` around a resume. Rejects with
   * an ApiError when the message is refused (nothing was sent then) or the stream is lost.
   */
  sendMessage(sessionId, text, on, signal) {
    const path = `/sessions/${enc(sessionId)}/messages`;
    return this.streamTurn(path, { text, client_message_id: newMessageId() }, on, signal);
  }

  /**
   * Answer the session's latest turn again, followed as `sendMessage` follows a reply: its
   * new version's tokens, then a `final` whose result has the turn's id, `version` and
   * `versions`. A fresh client_message_id per call, so a retried request is the same one.
   */
  regenerate(sessionId, turnId, on, signal) {
    const path = `/sessions/${enc(sessionId)}/turns/${enc(turnId)}/regenerate`;
    return this.streamTurn(path, { client_message_id: newMessageId() }, on, signal);
  }

  /** Every version of a turn's reply and the one in use: `{turn_id, version, items}`. */
  replyVersions(sessionId, turnId) {
    return this.json("GET", `/sessions/${enc(sessionId)}/turns/${enc(turnId)}/versions`);
  }

  /** Use another version of the latest turn's reply (409 for an earlier turn). */
  pickVersion(sessionId, turnId, version) {
    const path = `/sessions/${enc(sessionId)}/turns/${enc(turnId)}/version`;
    return this.json("PUT", path, { body: { version } });
  }

  /**
   * Edit the message of `turnId`: a new session with the turns before it, whose first
   * turn answers `text`. Answers at once (`{session, turn_id, events_url}`); follow the
   * answer with `watchTurn(turn_id)`.
   */
  branch(sessionId, turnId, text) {
    const path = `/sessions/${enc(sessionId)}/turns/${enc(turnId)}/branch?wait=false`;
    return this.json("POST", path, { body: { text } });
  }

  /** The sessions branched from this one: `{items}`. */
  branches(sessionId) {
    return this.json("GET", `/sessions/${enc(sessionId)}/branches`);
  }

  /** Rate a reply, "up" or "down" with an optional reason; `null` removes the rating. */
  rate(sessionId, turnId, rating, reason = null) {
    const path = `/sessions/${enc(sessionId)}/turns/${enc(turnId)}/feedback`;
    return rating === null
      ? this.json("DELETE", path)
      : this.json("PUT", path, { body: { rating, reason } });
  }

  /** POST `body` to `path` asking for the turn's event stream, and follow it. */
  async streamTurn(path, body, on, signal) {
    const response = await this.request("POST", path, {
      body,
      headers: { Accept: "text/event-stream" },
      signal,
    });
    if (!(response.headers.get("Content-Type") ?? "").startsWith("text/event-stream")) {
      // A turn that already ran for this client_message_id comes back as plain JSON.
      const result = await response.json();
      on.event({ id: null, type: "final", data: { result } });
      return;
    }
    const turnId = response.headers.get("X-Turn-Id");
    on.turn?.(turnId);
    await this.follow(turnId, response, on, signal);
  }

  /** Read a turn's events from `response`, resuming with Last-Event-ID when it drops. */
  async follow(turnId, response, on, signal) {
    let lastId = null;
    let finished = false;
    let resumeAfterMs = 0; // what a resumable error asked to wait
    const onEvent = (event) => {
      if (event.id) lastId = event.id;
      if (event.type === "error" && event.data?.resumable) {
        // The stream broke, not the turn (Redis restarting): resume below.
        resumeAfterMs = 1000 * (Number(event.data.retry_after) || 1);
        return;
      }
      if (event.type === "final" || event.type === "error") finished = true;
      on.event(event);
    };
    let current = response;
    for (let attempt = 0; ; attempt += 1) {
      if (current) {
        const before = lastId;
        try {
          await readEvents(current.body, onEvent, signal);
        } catch (err) {
          if (signal?.aborted) throw err;
          // The connection broke mid-stream: resume below.
        }
        if (finished) return;
        if (signal?.aborted) throw signal.reason; // the page stopped following this turn
        if (lastId !== before) attempt = 0; // it was making progress: a fresh allowance
      }
      if (attempt >= RESUME_DELAYS_MS.length) {
        throw new ApiError(
          0,
          "stream_lost",
          "lost the reply's stream; the turn still runs on the server, so reload this chat " +
            "in a moment to see the reply",
        );
      }
      on.reconnecting?.(attempt + 1);
      await wait(Math.max(RESUME_DELAYS_MS[attempt], resumeAfterMs), signal);
      resumeAfterMs = 0;
      current = null;
      try {
        current = await this.request("GET", `/turns/${enc(turnId)}/events`, {
          headers: { Accept: "text/event-stream", ...(lastId ? { "Last-Event-ID": lastId } : {}) },
          signal,
        });
        on.reconnected?.();
      } catch (err) {
        // Retrying cannot help when the turn is unknown (streams are kept for an hour)
        // or the token is no longer accepted; a network error or a 503 may pass.
        if (isAbort(err) || [400, 401, 403, 404].includes(err.status)) throw err;
      }
    }
  }
}
