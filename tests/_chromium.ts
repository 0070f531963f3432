// Drives a real headless Chromium over the Chrome DevTools Protocol, with no dependencies:
// Deno.Command for the process, Deno's WebSocket client for CDP. For tests only.
//
//   await using browser = await Chromium.launch();
//   const page = await browser.newPage(`http://127.0.0.1:${port}/`);
//   await page.waitFor(`window.result === "done"`);
//   assert.equal(await page.evaluate<number>("1 + 1"), 2);
//   await page.screenshot(`${dir}/page.png`);
//
// Every timer is cleared and every process, stream and socket is closed, so tests using it
// pass Deno's ops and resources sanitizers. `.ci/install_chromium.sh` installs the browser.

/** Where `findChromium` looks, after `$CHROMIUM`. */
export const CHROMIUM_PATHS: readonly string[] = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];

/** The path of a Chromium binary: `$CHROMIUM` if set, else the first of `CHROMIUM_PATHS`. */
export function findChromium(): string | undefined {
  const candidates = [...CHROMIUM_PATHS];
  try {
    const fromEnv = Deno.env.get("CHROMIUM");
    if (fromEnv) candidates.unshift(fromEnv);
  } catch {
    // No --allow-env: only the fixed paths.
  }
  for (const path of candidates) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Missing or unreadable: try the next one.
    }
  }
  return undefined;
}

/** Options for `Chromium.launch`. */
export interface LaunchOptions {
  /** The binary; default `findChromium()`. */
  path?: string;
  /** Extra command-line flags, after the default ones. */
  args?: string[];
  /** How long to wait for the browser to start and accept a DevTools connection; ms. */
  timeout?: number;
}

/** Options for `Page.evaluate`. */
export interface EvaluateOptions {
  /** Await a returned promise and return its value (default true). */
  awaitPromise?: boolean;
  /** Milliseconds before the call fails (default 10 s). */
  timeout?: number;
}

/** A CDP params or result object. */
export type Json = Record<string, unknown>;

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Json;
  result?: Json;
  error?: { code: number; message: string; data?: string };
  sessionId?: string;
}

/** A CDP event: its method, params and (for page events) the session it came from. */
export interface CdpEvent {
  method: string;
  params: Json;
  sessionId?: string;
}

interface RemoteObject {
  type: string;
  subtype?: string;
  value?: unknown;
  unserializableValue?: string;
  description?: string;
}

interface ExceptionDetails {
  text: string;
  lineNumber?: number;
  columnNumber?: number;
  url?: string;
  exception?: RemoteObject;
}

interface Pending {
  method: string;
  resolve: (result: Json) => void;
  reject: (error: Error) => void;
}

const DEFAULT_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-extensions",
  "--disable-dev-shm-usage",
  "--mute-audio",
  "--password-store=basic",
  "--remote-debugging-port=0",
];

const DEVTOOLS_LINE = /DevTools listening on (ws:\/\/\S+)/;
const LOG_LIMIT = 64 * 1024;

/** Resolves after `ms`; its timer always fires, so nothing is left behind. */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** `promise`, or a rejection naming `what` after `ms`; the timer is cleared either way. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** True if `promise` settles within `ms`; the timer is cleared either way. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

function shorten(text: string, max = 120): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

function decodeBase64(data: string): Uint8Array {
  const binary = atob(data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The value of a RemoteObject fetched with returnByValue, including NaN, -0 and bigints. */
function remoteValue(object: RemoteObject): unknown {
  const u = object.unserializableValue;
  if (u === undefined) return object.value;
  if (u === "NaN") return NaN;
  if (u === "Infinity") return Infinity;
  if (u === "-Infinity") return -Infinity;
  if (u === "-0") return -0;
  if (u.endsWith("n")) return BigInt(u.slice(0, -1));
  return u;
}

/** How the page's console would print one argument. */
function consoleText(object: RemoteObject): string {
  if (object.type === "string") return String(object.value);
  if (object.unserializableValue !== undefined) return object.unserializableValue;
  if (object.type === "undefined") return "undefined";
  if (object.value !== undefined) return JSON.stringify(object.value);
  return object.description ?? object.type;
}

/** E.g. "Uncaught Error: boom\n    at <anonymous>:1:7". */
function exceptionText(details: ExceptionDetails): string {
  const e = details.exception;
  let what: string | undefined;
  if (e?.description !== undefined) what = e.description;
  else if (e && (e.value !== undefined || e.unserializableValue !== undefined)) {
    what = e.type === "string" ? String(e.value) : consoleText(e);
  }
  const where = details.url
    ? ` (${details.url}:${(details.lineNumber ?? 0) + 1}:${(details.columnNumber ?? 0) + 1})`
    : "";
  // A description (an Error's stack) already says where; a thrown primitive does not.
  if (e?.description !== undefined) return `${details.text} ${what}`;
  return what === undefined ? `${details.text}${where}` : `${details.text} ${what}${where}`;
}

/** Drains a child's output stream, keeping the last LOG_LIMIT characters. */
class StreamDrain {
  text = "";
  readonly done: Promise<void>;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #onText: ((text: string) => void) | undefined;

  constructor(stream: ReadableStream<Uint8Array>, onText?: (text: string) => void) {
    this.#reader = stream.getReader();
    this.#onText = onText;
    this.done = this.#pump();
  }

  async #pump(): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        this.text += decoder.decode(value, { stream: true });
        this.#onText?.(this.text);
        if (this.text.length > LOG_LIMIT) this.text = this.text.slice(-LOG_LIMIT);
      }
    } catch {
      // Cancelled, or the pipe broke: either way there is nothing more to read.
    }
  }

  /** Stops reading (closing the pipe) and waits for the pump to end. */
  async cancel(): Promise<void> {
    try {
      await this.#reader.cancel();
    } catch {
      // Already closed.
    }
    await this.done;
  }
}

/** The browser process with its output pipes and its profile directory. */
class BrowserProcess {
  readonly child: Deno.ChildProcess;
  readonly userDataDir: string;
  readonly stdout: StreamDrain;
  readonly stderr: StreamDrain;
  readonly status: Promise<Deno.CommandStatus>;
  exited = false;

  constructor(
    child: Deno.ChildProcess,
    userDataDir: string,
    onStderr: (text: string) => void,
  ) {
    this.child = child;
    this.userDataDir = userDataDir;
    this.stdout = new StreamDrain(child.stdout);
    this.stderr = new StreamDrain(child.stderr, onStderr);
    this.status = child.status.then((status) => {
      this.exited = true;
      return status;
    });
  }

  /** Waits up to `graceMs` for the process to exit, then kills it; then frees everything. */
  async stop(graceMs: number): Promise<Deno.CommandStatus> {
    if (!this.exited && !(await settlesWithin(this.status, graceMs))) {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // It exited meanwhile.
      }
    }
    const status = await this.status;
    // Helper processes may hold the pipes a moment longer; then stop waiting for them.
    await settlesWithin(Promise.all([this.stdout.done, this.stderr.done]), 2_000);
    await Promise.all([this.stdout.cancel(), this.stderr.cancel()]);
    await removeDir(this.userDataDir);
    return status;
  }

  get log(): string {
    return [this.stderr.text, this.stdout.text].filter(Boolean).join("\n");
  }
}

async function removeDir(path: string): Promise<void> {
  for (let attempt = 0;; attempt++) {
    try {
      await Deno.remove(path, { recursive: true });
      return;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      // A helper process may still be writing into the profile; try again shortly.
      if (attempt >= 10) throw error;
      await delay(100);
    }
  }
}

/** A headless Chromium driven over the DevTools Protocol. Close it (or `await using` it). */
export class Chromium implements AsyncDisposable {
  /** The browser's DevTools WebSocket URL. */
  readonly wsUrl: string;
  /** The binary that was launched. */
  readonly path: string;
  #process: BrowserProcess;
  #ws: WebSocket;
  #wsClosed: Promise<void>;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #listeners = new Set<(event: CdpEvent) => void>();
  #pages = new Set<Page>();
  #closing: Promise<void> | undefined;

  private constructor(
    path: string,
    wsUrl: string,
    process: BrowserProcess,
    ws: WebSocket,
    wsClosed: Promise<void>,
  ) {
    this.path = path;
    this.wsUrl = wsUrl;
    this.#process = process;
    this.#ws = ws;
    this.#wsClosed = wsClosed.then(() => this.#rejectAll("DevTools connection closed"));
    ws.onmessage = (event) => {
      if (typeof event.data === "string") this.#receive(event.data);
    };
  }

  /** Starts a headless Chromium with a fresh profile and connects to it. */
  static async launch(options: LaunchOptions = {}): Promise<Chromium> {
    const path = options.path ?? findChromium();
    if (path === undefined) {
      throw new Error(
        `No Chromium found (looked at $CHROMIUM, ${
          CHROMIUM_PATHS.join(", ")
        }); run .ci/install_chromium.sh`,
      );
    }
    const timeout = options.timeout ?? 30_000;
    const userDataDir = await Deno.makeTempDir({ prefix: "comet_chromium_" });
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(path, {
        args: [...DEFAULT_ARGS, `--user-data-dir=${userDataDir}`, ...(options.args ?? [])],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      await removeDir(userDataDir);
      throw error;
    }

    let foundUrl: (url: string) => void = () => {};
    const urlPromise = new Promise<string>((resolve) => (foundUrl = resolve));
    const proc = new BrowserProcess(child, userDataDir, (text) => {
      const match = DEVTOOLS_LINE.exec(text);
      if (match) foundUrl(match[1]!);
    });

    let ws: WebSocket | undefined;
    let wsClosed: Promise<void> | undefined;
    try {
      const exitedEarly = proc.status.then((status) => {
        throw new Error(`Chromium exited with code ${status.code} before DevTools listened`);
      });
      exitedEarly.catch(() => {}); // Only matters while racing below.
      const wsUrl = await withTimeout(
        Promise.race([urlPromise, exitedEarly]),
        timeout,
        `waiting for "DevTools listening on" from ${path}`,
      );

      const socket = new WebSocket(wsUrl);
      ws = socket;
      wsClosed = new Promise<void>((resolve) => {
        socket.addEventListener("close", () => resolve(), { once: true });
      });
      socket.addEventListener("error", () => {
        // Followed by "close", which is what we act on.
      });
      const opened = new Promise<void>((resolve, reject) => {
        socket.addEventListener("open", () => resolve(), { once: true });
        wsClosed!.then(() =>
          reject(new Error(`DevTools WebSocket ${wsUrl} closed before opening`))
        );
      });
      await withTimeout(opened, timeout, `connecting to ${wsUrl}`);
      return new Chromium(path, wsUrl, proc, socket, wsClosed);
    } catch (error) {
      if (ws && wsClosed) {
        if (ws.readyState !== WebSocket.CLOSED) ws.close();
        await proc.stop(0);
        await settlesWithin(wsClosed, 5_000);
      } else {
        await proc.stop(0);
      }
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`Could not launch Chromium: ${message}\n${proc.log}`, { cause: error });
    }
  }

  /** The browser's process id. */
  get pid(): number {
    return this.#process.child.pid;
  }

  /** Everything the browser printed so far (last 64 KiB of stderr and stdout). */
  get log(): string {
    return this.#process.log;
  }

  /** Whether `close()` was called or the connection is gone. */
  get closed(): boolean {
    return this.#closing !== undefined || this.#ws.readyState !== WebSocket.OPEN;
  }

  /** Sends one CDP command (to a page when `sessionId` is given) and resolves with its result. */
  send<T = Json>(
    method: string,
    params: Json = {},
    options: { sessionId?: string; timeout?: number } = {},
  ): Promise<T> {
    if (this.#ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error(`DevTools connection is closed (sending ${method})`));
    }
    const timeout = options.timeout ?? 30_000;
    const id = this.#nextId++;
    const message: CdpMessage = { id, method, params };
    if (options.sessionId !== undefined) message.sessionId = options.sessionId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`CDP ${method} got no answer in ${timeout} ms`));
      }, timeout);
      this.#pending.set(id, {
        method,
        resolve: (result) => {
          clearTimeout(timer);
          resolve(result as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#ws.send(JSON.stringify(message));
    });
  }

  /** Calls `listener` for every CDP event; returns a function that unsubscribes it. */
  onEvent(listener: (event: CdpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Opens a new tab, attaches to it (flat session), enables Runtime and Page, loads `url`. */
  async newPage(url: string, options: { timeout?: number } = {}): Promise<Page> {
    const timeout = options.timeout ?? 30_000;
    const { targetId } = await this.send<{ targetId: string }>(
      "Target.createTarget",
      { url: "about:blank" },
      { timeout },
    );
    const { sessionId } = await this.send<{ sessionId: string }>(
      "Target.attachToTarget",
      { targetId, flatten: true },
      { timeout },
    );
    const page = new Page(this, targetId, sessionId, () => this.#pages.delete(page));
    this.#pages.add(page);
    try {
      await Promise.all([
        page.send("Runtime.enable", {}, timeout),
        page.send("Page.enable", {}, timeout),
        page.send("Page.setLifecycleEventsEnabled", { enabled: true }, timeout),
      ]);
      await page.navigate(url, timeout);
    } catch (error) {
      await page.close().catch(() => {});
      throw error;
    }
    return page;
  }

  /**
   * Closes the browser: Browser.close, SIGKILL if it has not exited within 3 s, then waits
   * for the process and the WebSocket, drains its output and removes the profile directory.
   * Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    for (const page of this.#pages) page.detach();
    // The browser may drop the connection before answering: that is fine too.
    const asked = this.#ws.readyState === WebSocket.OPEN
      ? this.send("Browser.close", {}, { timeout: 3_000 }).catch(() => {})
      : Promise.resolve();
    await this.#process.stop(3_000);
    await asked;
    if (this.#ws.readyState !== WebSocket.CLOSED && this.#ws.readyState !== WebSocket.CLOSING) {
      this.#ws.close();
    }
    // The process is gone, so the socket closes promptly; don't hang if it somehow doesn't.
    await settlesWithin(this.#wsClosed, 5_000);
    this.#rejectAll("Chromium closed");
    this.#listeners.clear();
  }

  #rejectAll(reason: string): void {
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      pending.reject(new Error(`${reason} (while waiting for ${pending.method})`));
    }
  }

  #receive(data: string): void {
    let message: CdpMessage;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.id !== undefined) {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      if (message.error) {
        const { message: text, data: detail } = message.error;
        pending.reject(
          new Error(`CDP ${pending.method} failed: ${text}${detail ? ` (${detail})` : ""}`),
        );
      } else {
        pending.resolve(message.result ?? {});
      }
    } else if (message.method !== undefined) {
      const event: CdpEvent = { method: message.method, params: message.params ?? {} };
      if (message.sessionId !== undefined) event.sessionId = message.sessionId;
      for (const listener of [...this.#listeners]) listener(event);
    }
  }
}

/** One tab of a `Chromium`, attached with a flat CDP session. */
export class Page implements AsyncDisposable {
  readonly targetId: string;
  readonly sessionId: string;
  /** Texts of console.log/info/warn/error/... calls, arguments joined by spaces. */
  readonly consoleMessages: string[] = [];
  /** Uncaught exceptions and unhandled rejections reported by the page. */
  readonly errors: string[] = [];
  #browser: Chromium;
  #off: () => void;
  #onClose: () => void;
  #loads: { frameId: string; loaderId: string }[] = [];
  #loadWaiters = new Set<() => void>();
  #closed = false;

  /** Made by `Chromium.newPage`. */
  constructor(browser: Chromium, targetId: string, sessionId: string, onClose: () => void) {
    this.#browser = browser;
    this.targetId = targetId;
    this.sessionId = sessionId;
    this.#onClose = onClose;
    this.#off = browser.onEvent((event) => {
      if (event.sessionId === sessionId) this.#event(event);
    });
  }

  /** Sends a CDP command to this page's session. */
  send<T = Json>(method: string, params: Json = {}, timeout = 30_000): Promise<T> {
    return this.#browser.send<T>(method, params, { sessionId: this.sessionId, timeout });
  }

  /** Navigates to `url` and waits for its load event. */
  async navigate(url: string, timeout = 30_000): Promise<void> {
    const deadline = Date.now() + timeout;
    const nav = await this.send<{ frameId: string; loaderId?: string; errorText?: string }>(
      "Page.navigate",
      { url },
      timeout,
    );
    if (nav.errorText) throw new Error(`Navigating to ${url} failed: ${nav.errorText}`);
    if (nav.loaderId === undefined) return; // Same-document navigation: no load event.
    const loaderId = nav.loaderId;
    const loaded = () =>
      this.#loads.some((l) => l.frameId === nav.frameId && l.loaderId === loaderId);
    let wake: () => void = () => {};
    try {
      while (!loaded()) {
        if (this.#closed) throw new Error(`Page closed while loading ${url}`);
        const woken = new Promise<void>((resolve) => {
          wake = resolve;
          this.#loadWaiters.add(resolve);
        });
        await withTimeout(woken, Math.max(1, deadline - Date.now()), `load event of ${url}`);
      }
    } finally {
      this.#loadWaiters.delete(wake);
    }
  }

  /**
   * Evaluates `expression` in the page and returns its value (by JSON-like value; promises
   * are awaited unless `awaitPromise: false`). Throws an Error with the page's exception text
   * when the expression throws or its promise rejects.
   */
  async evaluate<T = unknown>(expression: string, options: EvaluateOptions = {}): Promise<T> {
    const { awaitPromise = true, timeout = 10_000 } = options;
    let reply: { result: RemoteObject; exceptionDetails?: ExceptionDetails };
    try {
      reply = await this.send("Runtime.evaluate", {
        expression,
        returnByValue: true,
        awaitPromise,
        userGesture: true,
      }, timeout);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`Evaluating ${shorten(expression)}: ${message}`, { cause: error });
    }
    if (reply.exceptionDetails) {
      throw new Error(
        `Page threw evaluating ${shorten(expression)}: ${exceptionText(reply.exceptionDetails)}`,
      );
    }
    return remoteValue(reply.result) as T;
  }

  /**
   * Polls `expression` (truthy = done) every `interval` ms until it holds; throws after
   * `timeout` ms with the last result, the console messages and the page's errors.
   */
  async waitFor(expression: string, timeout = 10_000, interval = 50): Promise<void> {
    const deadline = Date.now() + timeout;
    let last = "false";
    for (;;) {
      try {
        const ok = await this.evaluate<boolean>(`Boolean((${expression}\n))`, {
          timeout: Math.max(500, deadline - Date.now()),
        });
        if (ok) return;
        last = "false";
      } catch (error) {
        if (this.#closed || this.#browser.closed) throw error;
        last = error instanceof Error ? error.message : String(error);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `Timed out after ${timeout} ms waiting for ${shorten(expression)} (last: ${last})` +
            `\nconsole: ${JSON.stringify(this.consoleMessages)}` +
            `\nerrors: ${JSON.stringify(this.errors)}`,
        );
      }
      await delay(Math.min(interval, left));
    }
  }

  /** Captures the viewport as PNG, writes it to `path` and returns the bytes. */
  async screenshot(path: string | URL): Promise<Uint8Array> {
    const { data } = await this.send<{ data: string }>("Page.captureScreenshot", {
      format: "png",
    });
    const png = decodeBase64(data);
    await Deno.writeFile(path, png);
    return png;
  }

  /** Closes the tab (Target.closeTarget). Safe to call more than once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.detach();
    if (!this.#browser.closed) {
      await this.#browser.send("Target.closeTarget", { targetId: this.targetId }).catch(() => {});
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Stops listening to the browser (used when the page or the browser closes). */
  detach(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#off();
    this.#onClose();
    for (const wake of this.#loadWaiters) wake();
    this.#loadWaiters.clear();
  }

  #event(event: CdpEvent): void {
    const p = event.params;
    switch (event.method) {
      case "Runtime.consoleAPICalled": {
        const args = (p.args as RemoteObject[] | undefined) ?? [];
        this.consoleMessages.push(args.map(consoleText).join(" "));
        break;
      }
      case "Runtime.exceptionThrown":
        this.errors.push(exceptionText(p.exceptionDetails as ExceptionDetails));
        break;
      case "Page.lifecycleEvent":
        if (p.name === "load") {
          this.#loads.push({ frameId: String(p.frameId), loaderId: String(p.loaderId) });
          for (const wake of this.#loadWaiters) wake();
          this.#loadWaiters.clear();
        }
        break;
    }
  }
}
