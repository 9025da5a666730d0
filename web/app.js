'use strict';
/*
 * tokenrelay page: submit a prompt, stream the job's events (DESIGN.md) into a Monaco editor,
 * follow the same job from a share link, and show the state of the connection honestly.
 *
 * One module script with no build step (the gateway serves exactly app.js and app.css from web/).
 * It runs under the strict CSP in CSP.txt, so nothing here writes HTML: every text goes in
 * through textContent, value or Monaco's model. Sections, in order: the HTTP API, loading
 * Monaco, streaming text into the editor, and the page itself (which starts at the end).
 */

// ===============================================================================================
// The HTTP API
// ===============================================================================================

/*
 * The gateway's HTTP API (DESIGN.md, "Public contract"), as the page uses it. Every function
 * throws an HttpError for an answer that is not 2xx and a TypeError when the network fails.
 */

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
  }

  // Asking again will not change a 4xx, except a timeout or a rate limit.
  get final() {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

// What each status means to the person at the page; the server's own message follows it.
const STATUS_HINTS = {
  400: 'The request was refused',
  401: 'An API key is needed',
  403: 'Not allowed',
  404: 'No such job (it may have expired)',
  413: 'The prompt is too large',
  429: 'Too many requests: wait a moment and try again',
  503: 'The service is not ready',
};

/** GET /v1/meta: languages, models, default_model, auth. */
async function readMeta() {
  return requestJson('/v1/meta', { method: 'GET' });
}

/** POST /v1/jobs: answers 202 with id, status, events_url, viewer_token. */
async function createJob({ prompt, language, model }, headers) {
  return requestJson('/v1/jobs', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify({ prompt, language, model }),
  });
}

/** DELETE /v1/jobs/{id}: the stream then ends with `cancelled`. */
async function cancelJob(id, headers) {
  return requestJson(`/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE', headers });
}

/** GET /v1/jobs/{id}: the job's record (status, prompt, language, model, output, viewers...). */
async function readJob(id, token, headers) {
  return requestJson(`/v1/jobs/${encodeURIComponent(id)}?token=${encodeURIComponent(token)}`, {
    method: 'GET',
    headers,
  });
}

/** The event stream of a job from its start (EventSource cannot send headers: token in query). */
function eventsUrl(id, token) {
  return `/v1/jobs/${encodeURIComponent(id)}/events?token=${encodeURIComponent(token)}`;
}

/** The same stream resumed after `lastEventId`, for a resume the page starts itself. */
function resumeUrl(url, lastEventId) {
  if (!lastEventId) return url;
  return `${url}${url.includes('?') ? '&' : '?'}last_event_id=${encodeURIComponent(lastEventId)}`;
}

async function requestJson(url, { method, headers = {}, body }) {
  const response = await fetch(url, {
    method,
    headers: { Accept: 'application/json', ...headers },
    body,
  });
  if (!response.ok) throw new HttpError(response.status, await describeHttpError(response));
  return response.status === 204 ? {} : response.json();
}

// Turns the contract's {"error": {"code", "message"}} (or a proxy's HTML page) into one line.
async function describeHttpError(response) {
  let code = '';
  let message = '';
  try {
    const body = await response.json();
    if (body && body.error) ({ code = '', message = '' } = body.error);
  } catch {
    // Not JSON: the status line below says all we know.
  }
  const hint =
    STATUS_HINTS[response.status] || `HTTP ${response.status} ${response.statusText}`.trim();
  const details = [message, code && `(${code})`].filter(Boolean).join(' ');
  return details ? `${hint}: ${details}` : hint;
}

// ===============================================================================================
// Monaco
// ===============================================================================================

/*
 * Loads Monaco's AMD build (served by the gateway from node_modules/monaco-editor/min/vs) under
 * the page's strict CSP (CSP.txt): no blob: workers, no eval, and every script URL given to the
 * DOM made by a Trusted Types policy that only accepts Monaco's own files.
 */

const MONACO_VS = '/vendor/monaco/vs';

// monaco-editor 0.57.0's AMD build starts its workers from blob: URLs. We start them from their
// own same-origin files instead, so the CSP can say `worker-src 'self'`. The file names carry
// content hashes of that exact version (package.json pins it): update this table when upgrading
// Monaco (the files are in node_modules/monaco-editor/min/vs/assets/).
const WORKER_FILES = {
  editor: 'assets/editor.worker-_vAIFJDs.js',
  json: 'assets/json.worker-Csf_TLih.js',
  css: 'assets/css.worker-BpD9FCKP.js',
  html: 'assets/html.worker-CLuInTTy.js',
  typescript: 'assets/ts.worker-g3pjEjl4.js',
};

// Monaco asks for a worker by label; these are the labels its own getWorker maps.
const WORKER_FOR_LABEL = {
  json: 'json',
  css: 'css',
  scss: 'css',
  less: 'css',
  html: 'html',
  handlebars: 'html',
  razor: 'html',
  typescript: 'typescript',
  javascript: 'typescript',
};

// The policy name is listed in CSP.txt's `trusted-types`, next to the names Monaco uses.
const POLICY_NAME = 'tokenrelay-monaco';

/** Resolves with the `monaco` namespace once editor.main and its CSS are loaded. */
function loadMonaco() {
  const policy = createTrustedScriptPolicy();
  return new Promise((resolve, reject) => {
    if (typeof window.require !== 'function' || !window.require.config) {
      reject(new Error(`${MONACO_VS}/loader.js did not load`));
      return;
    }
    window.require.config({ paths: { vs: MONACO_VS }, trustedTypesPolicy: policy });
    window.require(
      ['vs/editor/editor.main'],
      () => {
        useSameOriginWorkers(policy);
        resolve(window.monaco);
      },
      (error) => reject(new Error(describeLoadError(error))),
    );
  });
}

// Under `require-trusted-types-for 'script'` a script or worker URL must be a TrustedScriptURL.
// This policy makes one only for Monaco's files, so nothing else can be loaded through it.
function createTrustedScriptPolicy() {
  if (!window.trustedTypes) return undefined; // browsers without Trusted Types take strings
  return window.trustedTypes.createPolicy(POLICY_NAME, {
    createScriptURL(url) {
      const parsed = new URL(url, document.baseURI);
      if (parsed.origin !== location.origin || !parsed.pathname.startsWith(`${MONACO_VS}/`)) {
        throw new TypeError(`refusing to load script from ${url}`);
      }
      return parsed.href;
    },
  });
}

// editor.main replaces self.MonacoEnvironment with a getWorker that builds blob: workers, so this
// must run after it has loaded; workers start lazily, when a model first needs one.
function useSameOriginWorkers(policy) {
  self.MonacoEnvironment = {
    getWorker(_moduleId, label) {
      const url = `${MONACO_VS}/${WORKER_FILES[WORKER_FOR_LABEL[label] || 'editor']}`;
      return new Worker(policy ? policy.createScriptURL(url) : url, { name: label });
    },
  };
}

function describeLoadError(error) {
  if (error && error.requireModules) return `could not load ${error.requireModules.join(', ')}`;
  return error && error.message ? error.message : String(error);
}

// ===============================================================================================
// Streaming text into the editor
// ===============================================================================================

/*
 * Appends streamed text at the end of a Monaco model: one edit per animation frame however many
 * tokens arrived in it, exact up to the one EOL sequence Monaco keeps per model, and following
 * the end only while the user is there.
 */

const FLUSH_FALLBACK_MS = 250; // rAF does not run in background tabs; a timer still does

class StreamingText {
  /**
   * @param monaco the monaco namespace
   * @param editor the editor whose model receives the text
   * @param onFlush called after each write, to refresh counters once per frame
   */
  constructor(monaco, editor, onFlush) {
    this.monaco = monaco;
    this.editor = editor;
    this.onFlush = onFlush;
    this.pending = '';
    this.frame = 0;
    this.timer = 0;
  }

  /** Queues text; it reaches the editor with everything else that arrives in this frame. */
  append(text) {
    this.pending += text;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => this.flush(false));
    this.timer = setTimeout(() => this.flush(false), FLUSH_FALLBACK_MS);
  }

  /** Writes what is queued. `final` once the stream has ended: nothing more will follow. */
  flush(final) {
    this.cancelScheduled();
    let text = this.pending;
    // A CRLF can be split across two tokens. Monaco takes a lone CR at the end as a line break of
    // its own and the LF after it as another, so keep a trailing CR until the next piece comes.
    if (!final && text.endsWith('\r')) {
      text = text.slice(0, -1);
      this.pending = '\r';
    } else {
      this.pending = '';
    }
    if (text) this.write(text);
    this.onFlush();
  }

  /** Empties the editor and drops anything queued. */
  clear() {
    this.cancelScheduled();
    this.pending = '';
    const model = this.editor.getModel();
    model.setValue('');
    // An emptied model takes the platform's EOL (CRLF on Windows); keep one everywhere.
    model.setEOL(this.monaco.editor.EndOfLineSequence.LF);
  }

  cancelScheduled() {
    cancelAnimationFrame(this.frame);
    clearTimeout(this.timer);
    this.frame = 0;
    this.timer = 0;
  }

  // applyEdits at the very end, never setValue: the cost stays per piece, not per document, and
  // the user's selection and scroll position elsewhere are left alone.
  write(text) {
    const model = this.editor.getModel();
    const follow = this.isScrolledToEnd();
    const line = model.getLineCount();
    const column = model.getLineMaxColumn(line);
    model.applyEdits([{ range: new this.monaco.Range(line, column, line, column), text }]);
    if (follow) {
      this.editor.revealLine(model.getLineCount(), this.monaco.editor.ScrollType.Immediate);
    }
  }

  // True when the last line is (about) in view. Needs scrollBeyondLastLine: false to be exact.
  isScrolledToEnd() {
    const editor = this.editor;
    const lineHeight = editor.getOption(this.monaco.editor.EditorOption.lineHeight);
    const endOfText = editor.getBottomForLineNumber(editor.getModel().getLineCount());
    const endOfView = editor.getScrollTop() + editor.getLayoutInfo().height;
    return endOfText <= endOfView + 2 * lineHeight;
  }
}

// ===============================================================================================
// The page
// ===============================================================================================

// Used when /v1/meta cannot be read, so the page still works against an older gateway.
const FALLBACK_LANGUAGES = [
  'python',
  'javascript',
  'typescript',
  'go',
  'rust',
  'java',
  'c',
  'cpp',
  'csharp',
  'ruby',
  'php',
  'kotlin',
  'swift',
  'sql',
  'shell',
  'html',
  'css',
  'markdown',
  'plaintext',
];
const SERVER_EVENTS = ['status', 'token', 'reset', 'done', 'failed', 'cancelled'];
const TERMINAL_STATES = new Set(['done', 'failed', 'cancelled']);
const VIEWER_POLL_MS = 3000;
const MAX_MANUAL_RESUMES = 5;
const CONN_LABELS = {
  idle: 'idle',
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  closed: 'closed',
};
const STORAGE_KEYS = {
  apiKey: 'tokenrelay.apiKey',
  language: 'tokenrelay.language',
  model: 'tokenrelay.model',
};

const ui = {};
let monaco = null;
let editor = null;
let stream = null; // StreamingText: how token text reaches the editor
let meta = { languages: FALLBACK_LANGUAGES, models: [], default_model: '', auth: false };
let current = null; // the job on screen (see newView); events for any other are ignored

// -----------------------------------------------------------------------------------------------
// Start-up (called at the end of this module, once every constant here is defined)

// Module scripts run after the document is parsed, so the elements are there.
async function boot() {
  collectElements();
  wireControls();
  const [metaResult, monacoResult] = await Promise.allSettled([readMeta(), loadMonaco()]);
  if (metaResult.status === 'fulfilled') {
    meta = normaliseMeta(metaResult.value);
  } else {
    showError(`Could not read /v1/meta (${metaResult.reason.message}); using defaults.`);
  }
  if (monacoResult.status === 'rejected') {
    showError(`The editor failed to load: ${monacoResult.reason.message}`);
    return;
  }
  monaco = monacoResult.value;
  createEditor();
  applyMeta(meta);
  exposeTestApi();
  ui.generate.disabled = false;
  openJobFromFragment(0); // a share link's clock starts at page open
  window.addEventListener('hashchange', () => openJobFromFragment(performance.now()));
}

function collectElements() {
  for (const id of [
    'prompt',
    'language',
    'generate',
    'stop',
    'share',
    'share-link',
    'copy-share',
    'status',
    'detail',
    'conn',
    'ttft',
    'rate',
    'chars',
    'viewers',
    'error',
    'editor',
    'job-form',
    'model-slot',
    'model',
    'api-key',
    'api-key-field',
  ]) {
    ui[id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = document.getElementById(id);
  }
}

function wireControls() {
  ui.jobForm.addEventListener('submit', (event) => {
    event.preventDefault(); // never a native submit (the CSP's form-action forbids it anyway)
    submitJob();
  });
  document.addEventListener('keydown', onShortcut);
  ui.stop.addEventListener('click', stopJob);
  ui.copyShare.addEventListener('click', copyShareLink);
  ui.shareLink.addEventListener('focus', () => ui.shareLink.select());
  ui.language.addEventListener('change', () => {
    saveSetting(STORAGE_KEYS.language, ui.language.value);
    if (editor) monaco.editor.setModelLanguage(editor.getModel(), ui.language.value);
  });
  ui.apiKey.value = loadSetting(STORAGE_KEYS.apiKey);
  ui.apiKey.addEventListener('input', () =>
    saveSetting(STORAGE_KEYS.apiKey, ui.apiKey.value.trim()),
  );
}

// Ctrl/Cmd+Enter generates from anywhere except inside the editor, where Monaco owns the key.
function onShortcut(event) {
  if (event.key !== 'Enter' || !(event.ctrlKey || event.metaKey)) return;
  if (ui.editor.contains(event.target)) return;
  event.preventDefault();
  if (!ui.generate.disabled) submitJob();
}

function normaliseMeta(body) {
  return {
    languages:
      Array.isArray(body.languages) && body.languages.length ? body.languages : FALLBACK_LANGUAGES,
    models: Array.isArray(body.models) ? body.models : [],
    default_model: typeof body.default_model === 'string' ? body.default_model : '',
    auth: Boolean(body.auth),
  };
}

// Storage can be off (privacy modes); the page then just forgets between visits.
function loadSetting(key) {
  try {
    return localStorage.getItem(key) || '';
  } catch {
    return '';
  }
}

function saveSetting(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch (error) {
    console.warn(`tokenrelay: cannot keep ${key}:`, error.message);
  }
}

// -----------------------------------------------------------------------------------------------
// The editor

function createEditor() {
  ui.editor.replaceChildren();
  editor = monaco.editor.create(ui.editor, {
    value: '',
    language: 'plaintext',
    theme: 'vs-dark',
    automaticLayout: true,
    scrollBeyondLastLine: false, // so "at the end" means the last line is in view
    // Keep U+2028, U+2029 and U+0085 as received: 'auto' would delete them, 'prompt' would ask.
    unusualLineTerminators: 'off',
    fontSize: 13,
    tabSize: 4,
    renderWhitespace: 'selection',
    fixedOverflowWidgets: true,
    ...sizeOptions(),
  });
  stream = new StreamingText(monaco, editor, () => renderStats(current));
  stream.clear();
  window.addEventListener('resize', () => editor.updateOptions(sizeOptions()));
}

// The minimap and a wide gutter cost too much of a phone's width.
function sizeOptions() {
  const wide = window.innerWidth >= 900;
  const narrow = window.innerWidth < 600;
  return {
    minimap: { enabled: wide },
    lineNumbersMinChars: narrow ? 3 : 5,
    lineDecorationsWidth: narrow ? 14 : 10,
    folding: !narrow,
  };
}

// -----------------------------------------------------------------------------------------------
// Pickers from /v1/meta

function applyMeta(info) {
  fillLanguagePicker(info.languages);
  renderModelField(info.models, info.default_model);
  ui.apiKeyField.hidden = !info.auth;
  monaco.editor.setModelLanguage(editor.getModel(), ui.language.value);
}

function fillLanguagePicker(languages) {
  const names = monacoLanguageNames();
  ui.language.replaceChildren(...languages.map((id) => new Option(names.get(id) || id, id)));
  const saved = loadSetting(STORAGE_KEYS.language);
  ui.language.value = languages.includes(saved)
    ? saved
    : languages.includes('python')
      ? 'python'
      : languages[0];
}

// Monaco's display names ("C++", "C#", "Shell Script") read better than the ids.
function monacoLanguageNames() {
  const names = new Map();
  for (const language of monaco.languages.getLanguages()) {
    if (language.aliases && language.aliases.length) names.set(language.id, language.aliases[0]);
  }
  return names;
}

function selectLanguage(id) {
  if (!id) return;
  if (![...ui.language.options].some((option) => option.value === id)) {
    ui.language.append(new Option(monacoLanguageNames().get(id) || id, id));
  }
  ui.language.value = id;
  monaco.editor.setModelLanguage(editor.getModel(), id);
}

// A select when the gateway names its models, else free text prefilled with the default.
function renderModelField(models, defaultModel) {
  const saved = loadSetting(STORAGE_KEYS.model);
  let field;
  if (models.length) {
    field = document.createElement('select');
    const choices =
      !defaultModel || models.includes(defaultModel) ? models : [defaultModel, ...models];
    field.replaceChildren(...choices.map((name) => new Option(name, name)));
    field.value = choices.includes(saved) ? saved : defaultModel || choices[0];
  } else {
    field = document.createElement('input');
    field.type = 'text';
    field.autocomplete = 'off';
    field.spellcheck = false;
    field.placeholder = 'model';
    field.value = defaultModel;
  }
  field.id = 'model';
  field.addEventListener('change', () => saveSetting(STORAGE_KEYS.model, field.value));
  ui.modelSlot.replaceChildren(field);
  ui.model = field;
}

function selectModel(name) {
  if (!name) return;
  if (
    ui.model.tagName === 'SELECT' &&
    ![...ui.model.options].some((option) => option.value === name)
  ) {
    ui.model.append(new Option(name, name));
  }
  ui.model.value = name;
}

function authHeaders() {
  const key = ui.apiKey.value.trim();
  return meta.auth && key ? { Authorization: `Bearer ${key}` } : {};
}

// -----------------------------------------------------------------------------------------------
// Generate, Stop, share

async function submitJob() {
  const prompt = ui.prompt.value;
  if (!prompt.trim()) {
    showError('Write a prompt first.');
    ui.prompt.focus();
    return;
  }
  const clickedAt = performance.now(); // time to first token counts from the click
  clearError();
  ui.generate.disabled = true;
  let job;
  try {
    job = await createJob(
      { prompt, language: ui.language.value, model: ui.model.value.trim() },
      authHeaders(),
    );
  } catch (error) {
    showError(describeFailure(error));
    return;
  } finally {
    ui.generate.disabled = false;
  }
  showJob({
    id: job.id,
    token: job.viewer_token,
    eventsUrl: job.events_url,
    state: job.status || 'queued',
    startedAt: clickedAt,
  });
}

async function stopJob() {
  const view = current;
  if (!view || view.terminal) return;
  ui.stop.disabled = true;
  try {
    await cancelJob(view.id, authHeaders());
    // Nothing else to do: the stream itself ends with `cancelled`.
  } catch (error) {
    showError(`Stop failed: ${describeFailure(error)}`);
  } finally {
    updateButtons();
  }
}

function describeFailure(error) {
  return error instanceof HttpError
    ? error.message
    : `Could not reach the server (${error.message})`;
}

// The viewer token rides in the fragment, which browsers put in no request and no referrer.
function jobFragment(view) {
  return `#job=${encodeURIComponent(view.id)}&token=${encodeURIComponent(view.token)}`;
}

function shareUrlFor(view) {
  return `${location.origin}/${jobFragment(view)}`;
}

async function copyShareLink() {
  try {
    await navigator.clipboard.writeText(ui.shareLink.value);
  } catch {
    // The async clipboard needs a secure context; plain http to a LAN address is not one.
    ui.shareLink.select();
    if (!document.execCommand('copy')) {
      showError('Copy failed: select the link and copy it by hand.');
      return;
    }
  }
  flashLabel(ui.copyShare, 'Copied');
}

function flashLabel(button, text) {
  button.dataset.label = button.dataset.label || button.textContent;
  button.textContent = text;
  setTimeout(() => {
    button.textContent = button.dataset.label;
  }, 1200);
}

// Opens the job the fragment names, from the start of its stream (no Last-Event-ID).
function openJobFromFragment(startedAt) {
  const params = new URLSearchParams(location.hash.slice(1));
  const id = params.get('job');
  const token = params.get('token');
  if (!id || !token || (current && current.id === id && current.token === token)) return;
  clearError();
  const view = showJob({
    id,
    token,
    eventsUrl: eventsUrl(id, token),
    state: 'connecting',
    startedAt,
  });
  showJobSettings(view);
}

// Shows the prompt, language and model of a job this page did not submit, from its record.
async function showJobSettings(view) {
  let record;
  try {
    record = await readJob(view.id, view.token, authHeaders());
  } catch (error) {
    // A job that does not exist is reported once, by the stream's end (settleFromRecord).
    if (view === current && !(error instanceof HttpError && error.final)) {
      showError(`Could not read the job: ${describeFailure(error)}`);
    }
    return;
  }
  if (view !== current) return;
  if (typeof record.prompt === 'string') ui.prompt.value = record.prompt;
  selectLanguage(record.language);
  selectModel(record.model);
  if (!TERMINAL_STATES.has(record.status)) showViewers(record);
}

// -----------------------------------------------------------------------------------------------
// One job on screen

function newView({ id, token, eventsUrl, state, startedAt }) {
  return {
    id,
    token,
    eventsUrl,
    state,
    startedAt,
    es: null,
    lastEventId: '',
    terminal: false,
    attempt: 1,
    text: '', // the exact output since the last reset, as received
    firstTokenAt: null,
    endedAt: null,
    chunks: 0, // token events: the server may merge several tokens into one
    chars: 0,
    reconnects: 0,
    manualResumes: 0,
    viewerTimer: 0,
  };
}

function showJob(options) {
  if (current) leaveView(current);
  const view = newView(options);
  current = view;
  stream.clear();
  editor.updateOptions({ readOnly: true }); // appends go to the end; typing would interleave
  history.replaceState(null, '', jobFragment(view)); // a reload shows the same job again
  ui.shareLink.value = shareUrlFor(view);
  ui.share.hidden = false;
  ui.detail.textContent = '';
  ui.viewers.hidden = true;
  setState(view, view.state);
  renderStats(view);
  openStream(view, view.eventsUrl);
  pollViewers(view);
  return view;
}

// Stops everything that still works for a job we no longer show.
function leaveView(view) {
  view.terminal = true;
  if (view.es) view.es.close();
  clearTimeout(view.viewerTimer);
}

function finishView(view, state) {
  view.terminal = true;
  view.endedAt = performance.now();
  if (view.es) view.es.close();
  clearTimeout(view.viewerTimer);
  stream.flush(true);
  setState(view, state);
  setConn('closed');
  editor.updateOptions({ readOnly: false });
}

function setState(view, state) {
  view.state = state;
  ui.status.textContent = state;
  ui.status.dataset.state = state;
  updateButtons();
}

function updateButtons() {
  ui.stop.disabled = !current || current.terminal;
}

function setConn(state) {
  ui.conn.textContent = CONN_LABELS[state];
  ui.conn.dataset.state = state;
}

// -----------------------------------------------------------------------------------------------
// The event stream

// The native EventSource reconnects by itself and sends Last-Event-ID, from which the server
// resumes exactly; the page only watches it.
function openStream(view, url) {
  const es = new EventSource(url);
  view.es = es;
  setConn('connecting');
  es.addEventListener('open', () => onStreamOpen(view, es));
  es.addEventListener('error', () => onStreamError(view, es));
  for (const name of SERVER_EVENTS) {
    es.addEventListener(name, (event) => onServerEvent(view, es, name, event));
  }
}

function isStale(view, es) {
  return view !== current || view.terminal || es !== view.es;
}

function onStreamOpen(view, es) {
  if (isStale(view, es)) return;
  view.manualResumes = 0;
  setConn('live');
}

// EventSource's own `error` is about the connection, never a server event (that one is `failed`).
function onStreamError(view, es) {
  if (isStale(view, es)) return;
  if (es.readyState === EventSource.CONNECTING) {
    view.reconnects += 1;
    setConn('reconnecting');
    return;
  }
  // CLOSED: the browser gave up (204 after the end, 404, a proxy's 502...). Ask the record.
  setConn('closed');
  settleFromRecord(view);
}

function onServerEvent(view, es, name, event) {
  if (isStale(view, es)) return;
  if (event.lastEventId) view.lastEventId = event.lastEventId;
  let data;
  try {
    data = event.data ? JSON.parse(event.data) : {};
  } catch (error) {
    console.error(`tokenrelay: ${name} event ${event.lastEventId} has bad data:`, error.message);
    return;
  }
  EVENT_HANDLERS[name](view, data);
}

const EVENT_HANDLERS = {
  status(view, data) {
    if (data.attempt) view.attempt = data.attempt;
    setState(view, data.status);
  },
  token(view, data) {
    addText(view, typeof data.text === 'string' ? data.text : '');
  },
  reset(view, data) {
    // A retried attempt starts over: the text so far is not part of the output.
    view.attempt = data.attempt || view.attempt + 1;
    view.text = '';
    view.chars = 0;
    stream.clear();
    setState(view, 'running');
    const reason = data.reason ? `: ${data.reason}` : '';
    ui.detail.textContent = `retrying (attempt ${view.attempt})${reason}`;
    renderStats(view);
  },
  done(view, data) {
    finishView(view, 'done');
    ui.detail.textContent = describeDone(data);
  },
  failed(view, data) {
    finishView(view, 'failed');
    showError(describeJobError(data));
  },
  cancelled(view) {
    finishView(view, 'cancelled');
  },
};

function addText(view, text) {
  if (view.state !== 'running') setState(view, 'running');
  if (view.firstTokenAt === null) view.firstTokenAt = performance.now();
  view.chunks += 1;
  view.chars += countCodePoints(text);
  view.text += text;
  stream.append(text);
}

function describeDone(data) {
  const parts = [];
  if (data.finish_reason) parts.push(`finish: ${data.finish_reason}`);
  const tokens = data.usage && data.usage.completion_tokens;
  if (Number.isFinite(tokens)) parts.push(`${tokens} tokens`);
  return parts.join(' · ');
}

function describeJobError(error) {
  const code = error.code ? ` (${error.code})` : '';
  return `Generation failed: ${error.message || 'no message'}${code}`;
}

// The browser stopped reconnecting. The record says whether the job ended (then it holds the
// whole output) or is still going (then we resume by hand, with ?last_event_id=).
async function settleFromRecord(view) {
  let record;
  try {
    record = await readJob(view.id, view.token, authHeaders());
  } catch (error) {
    if (view !== current || view.terminal) return;
    if (error instanceof HttpError && error.final) {
      showError(error.message);
      finishView(view, 'unavailable');
    } else {
      resumeByHand(view); // the network or the gateway is down for now
    }
    return;
  }
  if (view !== current || view.terminal) return;
  if (!TERMINAL_STATES.has(record.status)) {
    resumeByHand(view);
    return;
  }
  catchUpWith(view, record.output);
  finishView(view, record.status);
  if (record.status === 'done') ui.detail.textContent = describeDone(record);
  if (record.status === 'failed' && record.error) showError(describeJobError(record.error));
}

// The record's output is the truth: add what we missed, or start over where it differs.
function catchUpWith(view, output) {
  if (typeof output !== 'string' || output === view.text) return;
  if (!output.startsWith(view.text)) {
    view.text = '';
    view.chars = 0;
    stream.clear();
  }
  addText(view, output.slice(view.text.length));
}

function resumeByHand(view) {
  if (view.manualResumes >= MAX_MANUAL_RESUMES) {
    showError('Lost the event stream; reload the page to try again.');
    finishView(view, view.state);
    return;
  }
  view.manualResumes += 1;
  view.reconnects += 1;
  setConn('reconnecting');
  setTimeout(
    () => {
      if (view === current && !view.terminal)
        openStream(view, resumeUrl(view.eventsUrl, view.lastEventId));
    },
    1000 * 2 ** (view.manualResumes - 1),
  );
}

// Characters as people count them: code points, not UTF-16 units (an emoji is one).
function countCodePoints(text) {
  let count = 0;
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit < 0xdc00 || unit > 0xdfff) count += 1; // skip the low half of a pair
  }
  return count;
}

// -----------------------------------------------------------------------------------------------
// Status bar

function renderStats(view) {
  if (!view) return;
  ui.ttft.textContent =
    view.firstTokenAt === null
      ? 'TTFT –'
      : `TTFT ${formatDuration(view.firstTokenAt - view.startedAt)}`;
  ui.rate.textContent = `${formatRate(view)} chunks/s`;
  const unit = view.chars === 1 ? 'char' : 'chars';
  ui.chars.textContent = `${view.chars.toLocaleString('en-US')} ${unit}`;
}

// Token events per second since the first one. Events, not model tokens, hence "chunks".
function formatRate(view) {
  if (view.firstTokenAt === null) return '–';
  const seconds = ((view.endedAt ?? performance.now()) - view.firstTokenAt) / 1000;
  return seconds < 0.05 ? '–' : (view.chunks / seconds).toFixed(1);
}

function formatDuration(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

// `viewers` in the record is optional: the count shows only when the gateway reports it.
function pollViewers(view) {
  view.viewerTimer = setTimeout(async () => {
    if (view !== current || view.terminal) return;
    try {
      showViewers(await readJob(view.id, view.token, authHeaders()));
    } catch (error) {
      console.warn('tokenrelay: viewer count unavailable:', error.message);
    }
    if (view === current && !view.terminal) pollViewers(view);
  }, VIEWER_POLL_MS);
}

function showViewers(record) {
  const count = record && record.viewers;
  ui.viewers.hidden = !Number.isFinite(count);
  if (Number.isFinite(count))
    ui.viewers.textContent = `${count} ${count === 1 ? 'viewer' : 'viewers'}`;
}

// -----------------------------------------------------------------------------------------------
// Errors and the handle for tests

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.textContent = '';
  ui.error.hidden = true;
}

function exposeTestApi() {
  window.tokenrelay = Object.freeze({
    editor,
    getText: () => editor.getModel().getValue(),
    state: () => (current ? current.state : 'idle'),
    jobId: () => (current ? current.id : null),
    reconnects: () => (current ? current.reconnects : 0),
    shareUrl: () => (current ? shareUrlFor(current) : null),
  });
}

boot();
