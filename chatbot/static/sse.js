// A text/event-stream parser over a fetch() body. EventSource cannot send a POST body or
// an Authorization header, so the page reads the stream itself.

/**
 * Read `body` (a ReadableStream of bytes) to its end, calling `onEvent({id, type, data})`
 * for each event whose data is JSON. Resolves when the server closes the stream; rejects
 * when the connection breaks (the caller then resumes with the last id it saw).
 */
export async function readEvents(body, onEvent, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const abort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", abort, { once: true });
  const parser = new EventParser(onEvent);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.push(value);
    }
  } finally {
    signal?.removeEventListener("abort", abort);
  }
}

class EventParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.type = "";
    this.id = null;
    this.data = [];
  }

  push(text) {
    let pending = this.buffer + text;
    // A trailing "\r" may be the first half of a "\r\n" split across two chunks: hold it.
    const held = pending.endsWith("\r") ? "\r" : "";
    if (held) pending = pending.slice(0, -1);
    const lines = pending.split(/\r\n|\n|\r/);
    this.buffer = lines.pop() + held; // the last piece has no line end yet
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return; // a comment: the server's keep-alive
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") this.type = value;
    else if (name === "data") this.data.push(value);
    else if (name === "id") this.id = value;
    // "retry" is ignored: reconnecting is the caller's job, with its own backoff.
  }

  dispatch() {
    const { type, id, data } = this;
    this.reset();
    if (data.length === 0) return;
    let parsed;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      throw new Error(`the server sent an event that is not JSON: ${data.join("\n").slice(0, 200)}`);
    }
    this.onEvent({ id, type: type || "message", data: parsed });
  }
}
