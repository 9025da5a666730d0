'use strict';
/*
 * tokenrelay page: submit a prompt, stream the job's events (DESIGN.md) into a Monaco editor,
 * follow the same job from a share link, and show the connection honestly.
 *
 * Plain script, no build step: Monaco comes from its AMD build, served by the gateway under
 * /vendor/monaco/vs. The page runs under the strict CSP in CSP.txt, so: no inline code, no
 * blob: workers, and every script URL handed to the DOM goes through a Trusted Types policy.
 */
(() => {
  const MONACO_VS = '/vendor/monaco/vs';

  // monaco-editor 0.57.0's AMD build starts its workers from blob: URLs. We start them from
  // their own same-origin files instead, so the CSP can say `worker-src 'self'`. The file names
  // carry content hashes of that exact version (package.json pins it): update this table when
  // upgrading Monaco (the files are in node_modules/monaco-editor/min/vs/assets/).
  const MONACO_WORKER_FILES = {
    editor: 'assets/editor.worker-_vAIFJDs.js',
    json: 'assets/json.worker-Csf_TLih.js',
    css: 'assets/css.worker-BpD9FCKP.js',
    html: 'assets/html.worker-CLuInTTy.js',
    typescript: 'assets/ts.worker-g3pjEjl4.js',
  };
  // Monaco asks for a worker by label; these are the labels its own getWorker maps.
  const WORKER_FOR_LABEL = {
    json: 'json',
    css: 'css', scss: 'css', less: 'css',
    html: 'html', handlebars: 'html', razor: 'html',
    typescript: 'typescript', javascript: 'typescript',
  };

  // Used when /v1/meta cannot be read, so the page still works against an older gateway.
  const FALLBACK_LANGUAGES = [
    'python', 'javascript', 'typescript', 'go', 'rust', 'java', 'c', 'cpp', 'csharp', 'ruby',
    'php', 'kotlin', 'swift', 'sql', 'shell', 'html', 'css', 'markdown', 'plaintext',
  ];

  const SERVER_EVENTS = ['status', 'token', 'reset', 'done', 'failed', 'cancelled'];
  const TERMINAL_STATES = new Set(['done', 'failed', 'cancelled']);
  const VIEWER_POLL_MS = 3000;
  const FLUSH_FALLBACK_MS = 250;      // rAF does not run in background tabs; a timer still does
  const MAX_MANUAL_RESUMES = 5;
  const STORAGE = { apiKey: 'tokenrelay.apiKey', language: 'tokenrelay.language', model: 'tokenrelay.model' };

  const ui = {};
  let monaco = null;
  let editor = null;
  let meta = { languages: FALLBACK_LANGUAGES, models: [], default_model: '', auth: false };
  let current = null;        // the job this page shows (see newView)
  let trustedScriptPolicy;   // Trusted Types policy for Monaco's script and worker URLs

  // ---------------------------------------------------------------------------------------
  // Start-up

  document.addEventListener('DOMContentLoaded', boot);

  async function boot() {
    collectElements();
    wireControls();
    const [metaResult, monacoResult] = await Promise.allSettled([loadMeta(), loadMonaco()]);
    if (metaResult.status === 'fulfilled') {
      meta = metaResult.value;
    } else {
      showError(`Could not read /v1/meta (${metaResult.reason.message}); using defaults.`);
    }
    if (monacoResult.status === 'rejected') {
      showError(`The editor failed to load: ${describeLoadError(monacoResult.reason)}`);
      return;
    }
    monaco = monacoResult.value;
    createEditor();
    applyMeta(meta);
    exposeTestApi();
    ui.generate.disabled = false;
    // A share link opened in a new tab: its clock starts at page open, not now.
    openJobFromFragment(0);
    window.addEventListener('hashchange', () => openJobFromFragment(performance.now()));
  }

  function collectElements() {
    for (const id of ['prompt', 'language', 'generate', 'stop', 'share', 'share-link', 'copy-share',
      'status', 'detail', 'conn', 'ttft', 'rate', 'chars', 'viewers', 'error', 'editor',
      'job-form', 'model-slot', 'api-key', 'api-key-field']) {
      ui[toCamel(id)] = document.getElementById(id);
    }
  }

  function toCamel(id) {
    return id.replace(/-(\w)/g, (_, c) => c.toUpperCase());
  }

  function wireControls() {
    ui.jobForm.addEventListener('submit', (event) => {
      event.preventDefault();   // never a native submit: the CSP forbids it anyway
      submitJob();
    });
    document.addEventListener('keydown', onShortcut);
    ui.stop.addEventListener('click', cancelJob);
    ui.copyShare.addEventListener('click', copyShareLink);
    ui.language.addEventListener('change', () => {
      localStorage.setItem(STORAGE.language, ui.language.value);
      if (editor) monaco.editor.setModelLanguage(editor.getModel(), ui.language.value);
    });
    ui.apiKey.value = localStorage.getItem(STORAGE.apiKey) || '';
    ui.apiKey.addEventListener('input', () => localStorage.setItem(STORAGE.apiKey, ui.apiKey.value.trim()));
  }

  // Ctrl/Cmd+Enter generates from anywhere except inside the editor, where Monaco owns the key.
  function onShortcut(event) {
    if (event.key !== 'Enter' || !(event.ctrlKey || event.metaKey)) return;
    if (ui.editor.contains(event.target)) return;
    event.preventDefault();
    if (!ui.generate.disabled) submitJob();
  }

  async function loadMeta() {
    const response = await fetch('/v1/meta', { headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    return {
      languages: Array.isArray(body.languages) && body.languages.length ? body.languages : FALLBACK_LANGUAGES,
      models: Array.isArray(body.models) ? body.models : [],
      default_model: typeof body.default_model === 'string' ? body.default_model : '',
      auth: Boolean(body.auth),
    };
  }

  // ---------------------------------------------------------------------------------------
  // Monaco

  function loadMonaco() {
    trustedScriptPolicy = createTrustedScriptPolicy();
    return new Promise((resolve, reject) => {
      if (typeof window.require !== 'function') {
        reject(new Error(`${MONACO_VS}/loader.js did not load`));
        return;
      }
      window.require.config({ paths: { vs: MONACO_VS }, trustedTypesPolicy: trustedScriptPolicy });
      window.require(['vs/editor/editor.main'], () => {
        useSameOriginWorkers();
        resolve(window.monaco);
      }, reject);
    });
  }

  // Under `require-trusted-types-for 'script'` a script or worker URL must be a TrustedScriptURL.
  // This policy makes one only for Monaco's own files, so nothing else can be loaded through it.
  function createTrustedScriptPolicy() {
    if (!window.trustedTypes) return undefined;   // browsers without Trusted Types take strings
    return window.trustedTypes.createPolicy('tokenrelay-monaco', {
      createScriptURL(url) {
        const parsed = new URL(url, document.baseURI);
        if (parsed.origin !== location.origin || !parsed.pathname.startsWith(`${MONACO_VS}/`)) {
          throw new TypeError(`refusing to load script from ${url}`);
        }
        return parsed.href;
      },
    });
  }

  function trustedScriptUrl(url) {
    return trustedScriptPolicy ? trustedScriptPolicy.createScriptURL(url) : url;
  }

  // editor.main replaces self.MonacoEnvironment with a getWorker that builds blob: workers, so
  // this must run after it has loaded (workers start lazily, when a model needs one).
  function useSameOriginWorkers() {
    self.MonacoEnvironment = {
      getWorker(_moduleId, label) {
        const file = MONACO_WORKER_FILES[WORKER_FOR_LABEL[label] || 'editor'];
        return new Worker(trustedScriptUrl(`${MONACO_VS}/${file}`), { name: label });
      },
    };
  }

  function describeLoadError(error) {
    if (error && error.requireModules) return `could not load ${error.requireModules.join(', ')}`;
    return error && error.message ? error.message : String(error);
  }

  function createEditor() {
    ui.editor.replaceChildren();
    editor = monaco.editor.create(ui.editor, {
      value: '',
      language: 'plaintext',
      theme: 'vs-dark',
      automaticLayout: true,
      scrollBeyondLastLine: false,     // "at the bottom" then means the last line is in view
      // Keep U+2028/U+2029/U+0085 as received: 'auto' would delete them and 'prompt' asks.
      unusualLineTerminators: 'off',
      minimap: { enabled: isWideWindow() },
      fontSize: 13,
      tabSize: 4,
      renderWhitespace: 'selection',
      fixedOverflowWidgets: true,
    });
    // Monaco keeps one EOL per model; pin it so the result does not depend on the first token.
    editor.getModel().setEOL(monaco.editor.EndOfLineSequence.LF);
    window.addEventListener('resize', () => editor.updateOptions({ minimap: { enabled: isWideWindow() } }));
  }

  function isWideWindow() {
    return window.innerWidth >= 900;
  }

  // ---------------------------------------------------------------------------------------
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
    const saved = localStorage.getItem(STORAGE.language);
    ui.language.value = languages.includes(saved) ? saved : (languages.includes('python') ? 'python' : languages[0]);
  }

  // Monaco's own display names ("C++", "C#", "Shell") read better than the ids.
  function monacoLanguageNames() {
    const names = new Map();
    for (const language of monaco.languages.getLanguages()) {
      if (language.aliases && language.aliases.length) names.set(language.id, language.aliases[0]);
    }
    return names;
  }

  function ensureLanguageOption(id) {
    if (!id || [...ui.language.options].some((option) => option.value === id)) return;
    ui.language.append(new Option(monacoLanguageNames().get(id) || id, id));
  }

  // A select when the gateway names its models, else free text prefilled with the default.
  function renderModelField(models, defaultModel) {
    const saved = localStorage.getItem(STORAGE.model);
    let field;
    if (models.length) {
      field = document.createElement('select');
      const choices = models.includes(defaultModel) || !defaultModel ? models : [defaultModel, ...models];
      field.replaceChildren(...choices.map((name) => new Option(name, name)));
      field.value = choices.includes(saved) ? saved : (defaultModel || choices[0]);
    } else {
      field = document.createElement('input');
      field.type = 'text';
      field.autocomplete = 'off';
      field.spellcheck = false;
      field.placeholder = 'model';
      field.value = defaultModel;
    }
    field.id = 'model';
    field.addEventListener('change', () => localStorage.setItem(STORAGE.model, field.value));
    ui.modelSlot.replaceChildren(field);
    ui.model = field;
  }

  function setModelField(name) {
    if (!name) return;
    if (ui.model.tagName === 'SELECT' && ![...ui.model.options].some((option) => option.value === name)) {
      ui.model.append(new Option(name, name));
    }
    ui.model.value = name;
  }

  // ---------------------------------------------------------------------------------------
  // HTTP

  function authHeaders() {
    const key = ui.apiKey.value.trim();
    return meta.auth && key ? { Authorization: `Bearer ${key}` } : {};
  }

  // Turns the contract's {"error": {"code", "message"}} (or anything else) into one line.
  async function describeHttpError(response) {
    let code = '';
    let message = '';
    try {
      const body = await response.json();
      if (body && body.error) ({ code = '', message = '' } = body.error);
    } catch {
      // not JSON (a proxy's page, say): fall back to the status line below
    }
    const hint = {
      400: 'The request was refused',
      401: 'An API key is needed',
      403: 'Not allowed',
      404: 'No such job (it may have expired)',
      413: 'The prompt is too large',
      429: 'Too many requests: wait a moment and try again',
      503: 'The service is not ready',
    }[response.status] || `HTTP ${response.status} ${response.statusText}`.trim();
    const details = [message, code && `(${code})`].filter(Boolean).join(' ');
    return details ? `${hint}: ${details}` : hint;
  }

  function recordUrl(view) {
    return `/v1/jobs/${encodeURIComponent(view.id)}?token=${encodeURIComponent(view.token)}`;
  }

  // Throws an HttpError for an answer that is not 2xx, a TypeError when the network fails.
  async function fetchRecord(view) {
    const response = await fetch(recordUrl(view), { headers: { Accept: 'application/json', ...authHeaders() } });
    if (!response.ok) throw new HttpError(response.status, await describeHttpError(response));
    return response.json();
  }

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }

    // 4xx other than 408/429 will not change by asking again.
    get final() {
      return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Submit, cancel, share

  async function submitJob() {
    const prompt = ui.prompt.value;
    if (!prompt.trim()) {
      showError('Write a prompt first.');
      ui.prompt.focus();
      return;
    }
    const clickedAt = performance.now();   // TTFT counts from the click, network included
    clearError();
    ui.generate.disabled = true;
    let response;
    try {
      response = await fetch('/v1/jobs', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...authHeaders() },
        body: JSON.stringify({ prompt, language: ui.language.value, model: ui.model.value.trim() }),
      });
    } catch (error) {
      showError(`Could not reach the server: ${error.message}`);
      return;
    } finally {
      ui.generate.disabled = false;
    }
    if (!response.ok) {
      showError(await describeHttpError(response));
      return;
    }
    const job = await response.json();
    showJob({
      id: job.id,
      token: job.viewer_token,
      eventsUrl: job.events_url,
      state: job.status || 'queued',
      startedAt: clickedAt,
    });
  }

  async function cancelJob() {
    const view = current;
    if (!view || view.terminal) return;
    ui.stop.disabled = true;
    try {
      const response = await fetch(`/v1/jobs/${encodeURIComponent(view.id)}`, {
        method: 'DELETE',
        headers: { Accept: 'application/json', ...authHeaders() },
      });
      // Success changes nothing here: the stream itself ends with `cancelled`.
      if (!response.ok) showError(`Stop failed: ${await describeHttpError(response)}`);
    } catch (error) {
      showError(`Stop failed: ${error.message}`);
    } finally {
      updateButtons();
    }
  }

  // The viewer token travels in the fragment, which browsers send in neither requests nor referrers.
  function shareUrlFor(view) {
    return `${location.origin}/#job=${encodeURIComponent(view.id)}&token=${encodeURIComponent(view.token)}`;
  }

  async function copyShareLink() {
    const url = ui.shareLink.value;
    try {
      await navigator.clipboard.writeText(url);
    } catch {
      // The async clipboard needs a secure context; plain http on a LAN address is not one.
      ui.shareLink.select();
      if (!document.execCommand('copy')) {
        showError('Copy failed: select the link and copy it by hand.');
        return;
      }
    }
    flashButton(ui.copyShare, 'Copied');
  }

  function flashButton(button, text) {
    const original = button.dataset.label || button.textContent;
    button.dataset.label = original;
    button.textContent = text;
    setTimeout(() => { button.textContent = original; }, 1200);
  }

  function readFragment() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    const id = params.get('job');
    const token = params.get('token');
    return id && token ? { id, token } : null;
  }

  // Opens the job named in the fragment from the start of its stream (no Last-Event-ID).
  function openJobFromFragment(startedAt) {
    const shared = readFragment();
    if (!shared || (current && current.id === shared.id && current.token === shared.token)) return;
    clearError();
    const view = showJob({
      id: shared.id,
      token: shared.token,
      eventsUrl: `/v1/jobs/${encodeURIComponent(shared.id)}/events?token=${encodeURIComponent(shared.token)}`,
      state: 'connecting',
      startedAt,
    });
    showJobSettings(view);
  }

  // Fills the prompt, language and model from the job's record, for someone who did not submit it.
  async function showJobSettings(view) {
    let record;
    try {
      record = await fetchRecord(view);
    } catch (error) {
      // A job that does not exist is reported once, by the stream (settleFromRecord).
      if (view === current && !(error instanceof HttpError && error.final)) {
        showError(`Could not read the job: ${error.message}`);
      }
      return;
    }
    if (view !== current) return;
    if (typeof record.prompt === 'string') ui.prompt.value = record.prompt;
    if (record.language) {
      ensureLanguageOption(record.language);
      ui.language.value = record.language;
      monaco.editor.setModelLanguage(editor.getModel(), record.language);
    }
    setModelField(record.model);
    if (!TERMINAL_STATES.has(record.status)) showViewers(record);
  }

  // ---------------------------------------------------------------------------------------
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
      text: '',              // exact output since the last reset, as received
      pending: '',           // received but not yet in the editor (applied once per frame)
      flushFrame: 0,
      flushTimer: 0,
      firstTokenAt: null,
      endedAt: null,
      chunks: 0,
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
    clearEditor();
    history.replaceState(null, '', `#job=${encodeURIComponent(view.id)}&token=${encodeURIComponent(view.token)}`);
    ui.shareLink.value = shareUrlFor(view);
    ui.share.hidden = false;
    ui.detail.textContent = '';
    ui.viewers.hidden = true;
    setState(view, view.state);
    renderStats(view);
    openStream(view, view.eventsUrl);
    pollViewers(view);
    editor.updateOptions({ readOnly: true });   // appends go to the end; typing would interleave
    return view;
  }

  // Stops everything that still points at a job we no longer show.
  function leaveView(view) {
    if (view.es) view.es.close();
    cancelFlush(view);
    clearTimeout(view.viewerTimer);
    view.terminal = true;
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
    const labels = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', closed: 'closed' };
    ui.conn.textContent = labels[state] || state;
    ui.conn.dataset.state = state;
  }

  // ---------------------------------------------------------------------------------------
  // The event stream

  // The native EventSource reconnects by itself and sends Last-Event-ID, which the server
  // resumes from exactly; we only watch it.
  function openStream(view, url) {
    const es = new EventSource(url);
    view.es = es;
    setConn('connecting');
    es.addEventListener('open', () => onStreamOpen(view));
    es.addEventListener('error', () => onStreamError(view, es));
    for (const name of SERVER_EVENTS) {
      es.addEventListener(name, (event) => onServerEvent(view, name, event));
    }
  }

  function onStreamOpen(view) {
    if (view !== current) return;
    view.manualResumes = 0;
    setConn('live');
  }

  // EventSource's own `error` is about the connection, never a server event (that is `failed`).
  function onStreamError(view, es) {
    if (view !== current || view.terminal || es !== view.es) return;
    if (es.readyState === EventSource.CONNECTING) {
      view.reconnects += 1;
      setConn('reconnecting');
      return;
    }
    // CLOSED: the browser gave up (204 after the end, 404, a proxy's 5xx...). Ask the record.
    setConn('closed');
    settleFromRecord(view);
  }

  function onServerEvent(view, name, event) {
    if (view !== current || view.terminal) return;
    if (event.lastEventId) view.lastEventId = event.lastEventId;
    let data;
    try {
      data = event.data ? JSON.parse(event.data) : {};
    } catch (error) {
      console.error(`tokenrelay: bad ${name} event data`, event.data, error);
      return;
    }
    HANDLERS[name](view, data);
  }

  const HANDLERS = {
    status(view, data) {
      if (data.attempt) view.attempt = data.attempt;
      setState(view, data.status);
    },
    token(view, data) {
      if (view.state !== 'running') setState(view, 'running');
      if (view.firstTokenAt === null) view.firstTokenAt = performance.now();
      const text = typeof data.text === 'string' ? data.text : '';
      view.chunks += 1;
      view.chars += countCodePoints(text);
      view.text += text;
      view.pending += text;
      scheduleFlush(view);
    },
    reset(view, data) {
      // A retried attempt starts over: what we have shown so far is not part of the output.
      view.attempt = data.attempt || view.attempt + 1;
      cancelFlush(view);
      view.text = '';
      view.pending = '';
      view.chars = 0;
      clearEditor();
      setState(view, 'running');
      ui.detail.textContent = `retrying (attempt ${view.attempt})${data.reason ? `: ${data.reason}` : ''}`;
      renderStats(view);
    },
    done(view, data) {
      finishView(view, 'done');
      ui.detail.textContent = describeDone(data);
    },
    failed(view, data) {
      finishView(view, 'failed');
      showError(`Generation failed: ${data.message || 'no message'}${data.code ? ` (${data.code})` : ''}`);
    },
    cancelled(view) {
      finishView(view, 'cancelled');
    },
  };

  function describeDone(data) {
    const parts = [];
    if (data.finish_reason) parts.push(`finish: ${data.finish_reason}`);
    const usage = data.usage || {};
    if (Number.isFinite(usage.completion_tokens)) parts.push(`${usage.completion_tokens} tokens`);
    return parts.join(' · ');
  }

  function finishView(view, state) {
    view.terminal = true;
    view.endedAt = performance.now();
    if (view.es) view.es.close();
    flushText(view, true);
    clearTimeout(view.viewerTimer);
    setState(view, state);
    setConn('closed');
    renderStats(view);
    editor.updateOptions({ readOnly: false });
  }

  // The browser stopped reconnecting. The record says whether the job ended (then it holds the
  // whole output) or is still live (then we resume by hand with ?last_event_id=).
  async function settleFromRecord(view) {
    let record;
    try {
      record = await fetchRecord(view);
    } catch (error) {
      if (view !== current || view.terminal) return;
      if (error instanceof HttpError && error.final) {
        showError(error.message);
        finishView(view, 'unavailable');
      } else {
        resumeByHand(view);   // the network or the gateway is down for now: try again later
      }
      return;
    }
    if (view !== current || view.terminal) return;
    if (TERMINAL_STATES.has(record.status)) {
      catchUpWithOutput(view, record.output);
      finishView(view, record.status);
      if (record.status === 'failed' && record.error) {
        showError(`Generation failed: ${record.error.message || ''}${record.error.code ? ` (${record.error.code})` : ''}`);
      }
      if (record.status === 'done') ui.detail.textContent = describeDone(record);
      return;
    }
    resumeByHand(view);
  }

  // The record's output is authoritative: add what we missed, or replace what differs.
  function catchUpWithOutput(view, output) {
    if (typeof output !== 'string' || output === view.text) return;
    if (output.startsWith(view.text)) {
      HANDLERS.token(view, { text: output.slice(view.text.length) });
      return;
    }
    HANDLERS.reset(view, { attempt: view.attempt, reason: '' });
    ui.detail.textContent = '';
    HANDLERS.token(view, { text: output });
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
    const delay = 1000 * 2 ** (view.manualResumes - 1);
    setTimeout(() => {
      if (view !== current || view.terminal) return;
      const separator = view.eventsUrl.includes('?') ? '&' : '?';
      const url = view.lastEventId
        ? `${view.eventsUrl}${separator}last_event_id=${encodeURIComponent(view.lastEventId)}`
        : view.eventsUrl;
      openStream(view, url);
    }, delay);
  }

  // ---------------------------------------------------------------------------------------
  // Text into the editor

  // Tokens that arrive within one frame become one edit: a 100 KB output is a few hundred
  // edits, not tens of thousands.
  function scheduleFlush(view) {
    if (view.flushFrame) return;
    view.flushFrame = requestAnimationFrame(() => flushText(view, false));
    view.flushTimer = setTimeout(() => flushText(view, false), FLUSH_FALLBACK_MS);
  }

  function cancelFlush(view) {
    cancelAnimationFrame(view.flushFrame);
    clearTimeout(view.flushTimer);
    view.flushFrame = 0;
    view.flushTimer = 0;
  }

  function flushText(view, final) {
    cancelFlush(view);
    if (view !== current) return;
    let text = view.pending;
    // A CRLF can be split across two tokens. Monaco would take a lone trailing CR as a line
    // break of its own and the LF as another, so hold the CR back until the next piece.
    if (!final && text.endsWith('\r')) {
      text = text.slice(0, -1);
      view.pending = '\r';
    } else {
      view.pending = '';
    }
    if (text) appendToEditor(text);
    renderStats(view);
  }

  // Appends at the very end of the model; follows the end only if the user was already there,
  // so selecting or scrolling up while text streams is not disturbed.
  function appendToEditor(text) {
    const model = editor.getModel();
    const follow = isScrolledToEnd();
    const line = model.getLineCount();
    const column = model.getLineMaxColumn(line);
    model.applyEdits([{ range: new monaco.Range(line, column, line, column), text }]);
    if (follow) editor.revealLine(model.getLineCount(), monaco.editor.ScrollType.Immediate);
  }

  function isScrolledToEnd() {
    const model = editor.getModel();
    const lineHeight = editor.getOption(monaco.editor.EditorOption.lineHeight);
    const endOfText = editor.getBottomForLineNumber(model.getLineCount());
    const endOfView = editor.getScrollTop() + editor.getLayoutInfo().height;
    return endOfText <= endOfView + 2 * lineHeight;
  }

  function clearEditor() {
    const model = editor.getModel();
    model.setValue('');
    model.setEOL(monaco.editor.EndOfLineSequence.LF);
  }

  // Characters as people count them in code points, not UTF-16 units: an emoji is one.
  function countCodePoints(text) {
    let count = 0;
    for (let i = 0; i < text.length; i += 1) {
      const unit = text.charCodeAt(i);
      if (unit < 0xdc00 || unit > 0xdfff) count += 1;   // skip the second half of a pair
    }
    return count;
  }

  // ---------------------------------------------------------------------------------------
  // Status bar

  function renderStats(view) {
    ui.ttft.textContent = view.firstTokenAt === null
      ? 'TTFT –'
      : `TTFT ${formatDuration(view.firstTokenAt - view.startedAt)}`;
    ui.rate.textContent = `${formatRate(view)} chunks/s`;
    ui.chars.textContent = `${view.chars.toLocaleString('en-US')} chars`;
  }

  // Counts events, not model tokens: the server may merge several tokens into one event.
  function formatRate(view) {
    if (view.firstTokenAt === null) return '–';
    const seconds = ((view.endedAt ?? performance.now()) - view.firstTokenAt) / 1000;
    if (seconds < 0.05) return '–';
    return (view.chunks / seconds).toFixed(1);
  }

  function formatDuration(ms) {
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }

  // The record's `viewers` is optional: the count shows only when the gateway reports it.
  function pollViewers(view) {
    view.viewerTimer = setTimeout(async () => {
      if (view !== current || view.terminal) return;
      try {
        showViewers(await fetchRecord(view));
      } catch (error) {
        console.warn('tokenrelay: viewer count unavailable:', error.message);
      }
      if (view === current && !view.terminal) pollViewers(view);
    }, VIEWER_POLL_MS);
  }

  function showViewers(record) {
    const count = record && record.viewers;
    if (!Number.isFinite(count)) {
      ui.viewers.hidden = true;
      return;
    }
    ui.viewers.hidden = false;
    ui.viewers.textContent = `${count} ${count === 1 ? 'viewer' : 'viewers'}`;
  }

  // ---------------------------------------------------------------------------------------
  // Errors and the test handle

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
})();
