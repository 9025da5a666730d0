/*
 * The form: the change to make (the prompt), model, temperature, max tokens and API key,
 * Generate and Stop, and the keys that reach them (Ctrl/⌘+K, Ctrl/⌘+Enter, Escape). Generate
 * submits an edit of the document: the prompt, the selection (or the cursor) as the target, and
 * the document as it is now (docs/protocol.md, "Edits"). The model picker follows what the
 * gateway offers (GET /v1/meta); the settings are kept in localStorage between visits. A job
 * opened from a share link or the history fills the form with its own settings.
 */

import { cancelJob, createJob, describeFailure, eventsUrl } from './api.js';
import { currentDocument, jobLanguage, showingDocument } from './document.js';
import {
  currentJob,
  onRecord,
  releaseEditor,
  showJob,
  startPendingEdit,
  updateButtons,
} from './job.js';
import { rememberJob, refreshSoon } from './history.js';
import { jobInFragment } from './share.js';
import { clearError, showError } from './status.js';

// Used when /v1/meta cannot be read.
export const FALLBACK_LANGUAGES = [
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
const STORAGE_KEYS = {
  apiKey: 'tokenrelay.apiKey',
  model: 'tokenrelay.model',
  temperature: 'tokenrelay.temperature',
  maxTokens: 'tokenrelay.maxTokens',
};

// Imported by the page's module script, which runs once the document is parsed.
const ui = {
  jobForm: document.getElementById('job-form'),
  prompt: document.getElementById('prompt'),
  targetHint: document.getElementById('target-hint'),
  modelSlot: document.getElementById('model-slot'),
  model: document.getElementById('model'), // replaced by renderModelField
  temperature: document.getElementById('temperature'),
  maxTokens: document.getElementById('max-tokens'),
  apiKey: document.getElementById('api-key'),
  apiKeyField: document.getElementById('api-key-field'),
  generate: document.getElementById('generate'),
  stop: document.getElementById('stop'),
  editor: document.getElementById('editor'),
  diff: document.getElementById('diff'),
  simBadge: document.getElementById('sim-badge'),
  settings: document.getElementById('settings'),
};
// The settings stay open where there is room; on a phone they fold away behind "Settings".
const ROOMY = window.matchMedia('(min-width: 601px)');

let monaco = null;
let editor = null;
let meta = {
  languages: FALLBACK_LANGUAGES,
  models: [],
  default_model: '',
  auth: false,
  simulated_upstream: false,
};

/** Listens to the form; Generate stays disabled until enableGenerate(). */
export function wireControls() {
  ui.jobForm.addEventListener('submit', (event) => {
    event.preventDefault(); // never a native submit (the CSP's form-action forbids it anyway)
    submitJob();
  });
  document.addEventListener('keydown', onShortcut);
  ui.prompt.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && editor) {
      event.preventDefault();
      editor.focus(); // back where the selection is
    }
  });
  ui.stop.addEventListener('click', stopJob);
  for (const [field, key] of [
    [ui.apiKey, STORAGE_KEYS.apiKey],
    [ui.temperature, STORAGE_KEYS.temperature],
    [ui.maxTokens, STORAGE_KEYS.maxTokens],
  ]) {
    field.value = loadSetting(key);
    field.addEventListener('input', () => saveSetting(key, field.value.trim()));
  }
  onRecord(showJobSettings);
  ui.settings.open = ROOMY.matches;
  ROOMY.addEventListener('change', () => {
    ui.settings.open = ROOMY.matches;
  });
}

/** Takes the body of GET /v1/meta, before the pickers are filled. */
export function useMeta(body) {
  meta = {
    languages:
      Array.isArray(body.languages) && body.languages.length ? body.languages : FALLBACK_LANGUAGES,
    models: Array.isArray(body.models) ? body.models : [],
    default_model: typeof body.default_model === 'string' ? body.default_model : '',
    auth: Boolean(body.auth),
    simulated_upstream: body.simulated_upstream === true,
  };
  ui.simBadge.hidden = !meta.simulated_upstream;
}

/** The languages a job may name (from /v1/meta). */
export function jobLanguages() {
  return meta.languages;
}

/** Once Monaco is up: the model picker, the API key field and the editor's own keys. */
export function attachEditor(monacoNamespace, codeEditor) {
  monaco = monacoNamespace;
  editor = codeEditor;
  renderModelField(meta.models, meta.default_model);
  ui.apiKeyField.hidden = !meta.auth;
  // Ctrl/⌘+K in the editor: describe a change to the selection (also in its context menu).
  editor.addAction({
    id: 'tokenrelay.describe-change',
    label: 'Describe a change…',
    keybindings: [monaco.KeyMod.CtrlCmd | monaco.KeyCode.KeyK],
    contextMenuGroupId: 'navigation',
    contextMenuOrder: 0,
    run: () => focusPrompt(),
  });
  editor.onDidChangeCursorSelection(renderTargetHint);
  editor.onDidChangeModel(renderTargetHint);
  editor.onDidChangeModelContent(renderTargetHint);
  renderTargetHint();
}

export function enableGenerate() {
  ui.generate.disabled = false;
}

/** The Authorization header when the gateway asks for a key and one is given. */
export function authHeaders() {
  const key = ui.apiKey.value.trim();
  return meta.auth && key ? { Authorization: `Bearer ${key}` } : {};
}

// Ctrl/⌘+Enter generates from anywhere but the editors (Monaco owns the key there); Ctrl/⌘+K
// goes from the page to the prompt and from the prompt back to the editor.
function onShortcut(event) {
  if (!(event.ctrlKey || event.metaKey) || event.altKey || event.shiftKey) return;
  const inEditors = ui.editor.contains(event.target) || ui.diff.contains(event.target);
  if (event.key === 'Enter' && !inEditors) {
    event.preventDefault();
    if (!ui.generate.disabled) submitJob();
  } else if ((event.key === 'k' || event.key === 'K') && !inEditors) {
    event.preventDefault(); // the browser's own Ctrl+K (search) stays out of the way
    if (event.target === ui.prompt && editor) editor.focus();
    else focusPrompt();
  }
}

function focusPrompt() {
  ui.prompt.focus();
  ui.prompt.select();
}

// What Generate will do, in words: replace the selection, insert at the cursor, or fill the
// empty document.
function renderTargetHint() {
  if (!editor) return;
  const doc = currentDocument();
  if (!doc) return;
  const name = doc.name || 'the document';
  if (!showingDocument()) {
    ui.targetHint.textContent = `This is a shared edit; Generate works on your own ${name}.`;
    return;
  }
  const selection = editor.getSelection();
  if (!doc.model.getValueLength()) {
    ui.targetHint.textContent = `Generates into the empty document.`;
  } else if (!selection || selection.isEmpty()) {
    const where = selection
      ? `line ${selection.positionLineNumber}, column ${selection.positionColumn}`
      : 'the start';
    ui.targetHint.textContent = `Inserts at ${where} of ${name} (select code to change it).`;
  } else {
    const first = selection.startLineNumber;
    const last = selection.endColumn === 1 ? selection.endLineNumber - 1 : selection.endLineNumber;
    const lines = last > first ? `lines ${first}–${last}` : `line ${first}`;
    ui.targetHint.textContent = `Replaces ${lines} of ${name}.`;
  }
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

// Temperature and max tokens as the API takes them; empty = the upstream's default.
function readNumbers() {
  const temperatureText = ui.temperature.value.trim();
  const maxTokensText = ui.maxTokens.value.trim();
  const temperature = temperatureText === '' ? undefined : Number(temperatureText);
  const maxTokens = maxTokensText === '' ? undefined : Number(maxTokensText);
  if (temperature !== undefined && !(temperature >= 0 && temperature <= 2)) {
    return { error: 'Temperature is a number from 0 to 2 (or empty for the default).' };
  }
  if (maxTokens !== undefined && !(Number.isInteger(maxTokens) && maxTokens >= 1)) {
    return { error: 'Max tokens is a whole number from 1 (or empty for the default).' };
  }
  return { temperature, maxTokens };
}

async function submitJob() {
  const prompt = ui.prompt.value;
  if (!prompt.trim()) {
    showError('Describe the change first.');
    ui.prompt.focus();
    return;
  }
  const numbers = readNumbers();
  if (numbers.error) {
    showError(numbers.error);
    return;
  }
  const clickedAt = performance.now(); // time to first token counts from the click
  clearError();
  releaseEditor(); // the person's document, with its selection
  const doc = currentDocument();
  const { model } = doc;
  const selection = editor.getSelection() || new monaco.Selection(1, 1, 1, 1);
  const range = monaco.Range.lift(selection);
  const target = {
    document_id: doc.id,
    version: model.getAlternativeVersionId(),
    range: {
      start_line: range.startLineNumber,
      start_column: range.startColumn,
      end_line: range.endLineNumber,
      end_column: range.endColumn,
    },
    base: model.getValue(),
    name: doc.name || undefined,
  };
  // Tracked from now: edits while the request is on its way move the target too.
  const pending = startPendingEdit(model, range);
  ui.generate.disabled = true;
  let job;
  try {
    job = await createJob(
      {
        prompt,
        language: jobLanguage(),
        model: ui.model.value.trim() || undefined,
        temperature: numbers.temperature,
        max_tokens: numbers.maxTokens,
        // One session per tab: a new Generate replaces (cancels) this tab's running job.
        session: tabSession(),
        target,
      },
      authHeaders(),
    );
  } catch (error) {
    pending.dispose();
    showError(describeFailure(error));
    return;
  } finally {
    ui.generate.disabled = false;
  }
  rememberCancelToken(job.id, job.cancel_token);
  rememberJob({
    id: job.id,
    token: job.viewer_token,
    prompt,
    name: doc.name,
    status: job.status || 'queued',
  });
  refreshSoon();
  showJob({
    id: job.id,
    token: job.viewer_token,
    cancelToken: job.cancel_token,
    eventsUrl: job.events_url,
    state: job.status || 'queued',
    startedAt: clickedAt,
    pending,
    target,
    name: doc.name,
  });
}

// This tab's session id, kept across reloads of the tab (sessionStorage), new in every tab.
function tabSession() {
  try {
    let id = sessionStorage.getItem('tokenrelay.session');
    if (!id) {
      id = `tab-${crypto.randomUUID()}`;
      sessionStorage.setItem('tokenrelay.session', id);
    }
    return id;
  } catch {
    return undefined; // no storage: every job stands alone
  }
}

// Cancel tokens of the jobs this tab submitted: sessionStorage, so a reload keeps them and a
// share link opened anywhere else (another tab included) does not get them.
function rememberCancelToken(id, cancelToken) {
  if (!cancelToken) return;
  try {
    sessionStorage.setItem(`tokenrelay.cancel.${id}`, cancelToken);
  } catch {
    // Storage refused (private mode, quota): Stop works until the page is reloaded.
  }
}

function cancelTokenOf(id) {
  try {
    return sessionStorage.getItem(`tokenrelay.cancel.${id}`);
  } catch {
    return null;
  }
}

async function stopJob() {
  const view = currentJob();
  if (!view || view.terminal) return;
  ui.stop.disabled = true;
  try {
    await cancelJob(view.id, { ...authHeaders(), 'X-Cancel-Token': view.cancelToken });
    // Nothing else to do: the stream itself ends with `cancelled`.
  } catch (error) {
    showError(`Stop failed: ${describeFailure(error)}`);
  } finally {
    updateButtons();
  }
}

/** Opens the job the URL's fragment names, from the start of its stream (no Last-Event-ID). */
export function openJobFromFragment(startedAt) {
  const named = jobInFragment();
  const current = currentJob();
  if (!named || (current && current.id === named.id && current.token === named.token)) return;
  openJob(named, startedAt);
}

/** Reopens a job of the history (live if it still runs). */
export function openJobFromHistory(entry) {
  const current = currentJob();
  if (current && current.id === entry.id && current.host) return; // it is on screen
  openJob(entry, performance.now());
}

function openJob({ id, token }, startedAt) {
  clearError();
  showJob({
    id,
    token,
    cancelToken: cancelTokenOf(id), // only in the tab that submitted it (a reload keeps it)
    eventsUrl: eventsUrl(id, token),
    state: 'connecting',
    startedAt,
  });
  refreshSoon();
}

// Shows the prompt, model, temperature and max tokens of the job on screen, from its record.
function showJobSettings(record) {
  if (typeof record.prompt === 'string') ui.prompt.value = record.prompt;
  selectModel(record.model);
  if (Number.isFinite(record.temperature)) ui.temperature.value = String(record.temperature);
  if (Number.isFinite(record.max_tokens)) ui.maxTokens.value = String(record.max_tokens);
}
