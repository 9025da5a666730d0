/*
 * The form: prompt, language, model and API key, Generate and Stop. The pickers follow what the
 * gateway says it offers (GET /v1/meta) and fall back to a fixed list, so the page still works
 * against an older gateway; the choices are kept in localStorage between visits. A job opened
 * from a share link fills the form with its own settings, so the person sees what produced it.
 */

import {
  cancelJob,
  createJob,
  describeFailure,
  eventsUrl,
  HttpError,
  readJob,
  TERMINAL_STATES,
} from './api.js';
import { languageNames } from './editor.js';
import { currentJob, showJob, updateButtons } from './job.js';
import { jobInFragment } from './share.js';
import { clearError, showError, showViewers } from './status.js';

// Used when /v1/meta cannot be read.
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
const STORAGE_KEYS = {
  apiKey: 'tokenrelay.apiKey',
  language: 'tokenrelay.language',
  model: 'tokenrelay.model',
};

// Imported by the page's module script, which runs once the document is parsed.
const ui = {
  jobForm: document.getElementById('job-form'),
  prompt: document.getElementById('prompt'),
  language: document.getElementById('language'),
  modelSlot: document.getElementById('model-slot'),
  model: document.getElementById('model'), // replaced by renderModelField
  apiKey: document.getElementById('api-key'),
  apiKeyField: document.getElementById('api-key-field'),
  generate: document.getElementById('generate'),
  stop: document.getElementById('stop'),
  editor: document.getElementById('editor'),
};

let monaco = null;
let editor = null;
let meta = { languages: FALLBACK_LANGUAGES, models: [], default_model: '', auth: false };

/** Listens to the form; Generate stays disabled until enableGenerate(). */
export function wireControls() {
  ui.jobForm.addEventListener('submit', (event) => {
    event.preventDefault(); // never a native submit (the CSP's form-action forbids it anyway)
    submitJob();
  });
  document.addEventListener('keydown', onShortcut);
  ui.stop.addEventListener('click', stopJob);
  ui.language.addEventListener('change', () => {
    saveSetting(STORAGE_KEYS.language, ui.language.value);
    if (editor) monaco.editor.setModelLanguage(editor.getModel(), ui.language.value);
  });
  ui.apiKey.value = loadSetting(STORAGE_KEYS.apiKey);
  ui.apiKey.addEventListener('input', () =>
    saveSetting(STORAGE_KEYS.apiKey, ui.apiKey.value.trim()),
  );
}

/** Takes the body of GET /v1/meta, before the pickers are filled. */
export function useMeta(body) {
  meta = {
    languages:
      Array.isArray(body.languages) && body.languages.length ? body.languages : FALLBACK_LANGUAGES,
    models: Array.isArray(body.models) ? body.models : [],
    default_model: typeof body.default_model === 'string' ? body.default_model : '',
    auth: Boolean(body.auth),
  };
}

/** Once Monaco is up: fills the pickers and gives the editor the chosen language. */
export function attachEditor(monacoNamespace, codeEditor) {
  monaco = monacoNamespace;
  editor = codeEditor;
  fillLanguagePicker(meta.languages);
  renderModelField(meta.models, meta.default_model);
  ui.apiKeyField.hidden = !meta.auth;
  monaco.editor.setModelLanguage(editor.getModel(), ui.language.value);
}

export function enableGenerate() {
  ui.generate.disabled = false;
}

/** The Authorization header when the gateway asks for a key and one is given. */
export function authHeaders() {
  const key = ui.apiKey.value.trim();
  return meta.auth && key ? { Authorization: `Bearer ${key}` } : {};
}

// Ctrl/Cmd+Enter generates from anywhere except inside the editor, where Monaco owns the key.
function onShortcut(event) {
  if (event.key !== 'Enter' || !(event.ctrlKey || event.metaKey)) return;
  if (ui.editor.contains(event.target)) return;
  event.preventDefault();
  if (!ui.generate.disabled) submitJob();
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

function fillLanguagePicker(languages) {
  const names = languageNames(monaco);
  ui.language.replaceChildren(...languages.map((id) => new Option(names.get(id) || id, id)));
  const saved = loadSetting(STORAGE_KEYS.language);
  ui.language.value = languages.includes(saved)
    ? saved
    : languages.includes('python')
      ? 'python'
      : languages[0];
}

function selectLanguage(id) {
  if (!id) return;
  if (![...ui.language.options].some((option) => option.value === id)) {
    ui.language.append(new Option(languageNames(monaco).get(id) || id, id));
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
  rememberCancelToken(job.id, job.cancel_token);
  showJob({
    id: job.id,
    token: job.viewer_token,
    cancelToken: job.cancel_token,
    eventsUrl: job.events_url,
    state: job.status || 'queued',
    startedAt: clickedAt,
  });
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
  const { id, token } = named;
  clearError();
  const view = showJob({
    id,
    token,
    cancelToken: cancelTokenOf(id), // only in the tab that submitted it (a reload keeps it)
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
    // A job that does not exist is reported once, by the stream's end (JobStream).
    if (view === currentJob() && !(error instanceof HttpError && error.final)) {
      showError(`Could not read the job: ${describeFailure(error)}`);
    }
    return;
  }
  if (view !== currentJob()) return;
  if (typeof record.prompt === 'string') ui.prompt.value = record.prompt;
  selectLanguage(record.language);
  selectModel(record.model);
  if (!TERMINAL_STATES.has(record.status)) showViewers(record);
}
