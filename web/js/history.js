/*
 * History: this browser's recent jobs, newest first (localStorage, shared by its tabs), each with
 * its status, prompt, time and tokens. GET /v1/jobs/{id} refreshes the ones not known to have
 * ended (a job that ended never changes again); the job on screen is kept current by job.js.
 * Choosing one reopens it, live if it still runs.
 */

import { HttpError, readJob, TERMINAL_STATES } from './api.js';

const STORAGE_KEY = 'tokenrelay.history';
const MAX_ENTRIES = 30;
const REFRESH_MS = 5000;
const WIDE = window.matchMedia('(min-width: 900px)');

// Imported by the page's module script, which runs once the document is parsed.
const ui = {
  aside: document.getElementById('history'),
  list: document.getElementById('history-list'),
  empty: document.getElementById('history-empty'),
  toggle: document.getElementById('history-toggle'),
};

let open = () => {};
let headers = () => ({});
let currentId = null;
let timer = 0;

/** `onOpen(entry)` reopens a job; `authHeaders()` reads records. */
export function wireHistory(onOpen, authHeaders) {
  open = onOpen;
  headers = authHeaders;
  setPanel(WIDE.matches);
  ui.toggle.addEventListener('click', () => setPanel(!document.body.classList.contains('history-open')));
  WIDE.addEventListener('change', () => setPanel(WIDE.matches));
  // Another tab of this browser started or updated a job.
  window.addEventListener('storage', (event) => {
    if (event.key === STORAGE_KEY) render();
  });
  render();
  refresh();
}

/** Adds a job (submitted here, or opened from a link) at the top, or refreshes its entry. */
export function rememberJob({ id, token, prompt, name, status }) {
  const entries = load().filter((entry) => entry.id !== id);
  const known = load().find((entry) => entry.id === id);
  entries.unshift({
    createdAt: Date.now(),
    tokens: null,
    chars: 0,
    ...known,
    id,
    token,
    prompt: prompt ?? known?.prompt ?? '',
    name: name ?? known?.name ?? '',
    status: status || known?.status || 'queued',
  });
  save(entries.slice(0, MAX_ENTRIES));
  render();
}

/** Updates what the list shows of a job (status, tokens, chars, prompt, name, createdAt). */
export function updateJob(id, patch) {
  const entries = load();
  const entry = entries.find((e) => e.id === id);
  if (!entry) return;
  const changed = Object.entries(patch).some(([key, value]) => entry[key] !== value);
  if (!changed) return;
  Object.assign(entry, patch);
  save(entries);
  render();
}

/** Marks the job on screen in the list. */
export function markCurrent(id) {
  currentId = id;
  render();
}

/** The entries (newest first), for tests and the page. */
export function historyEntries() {
  return load();
}

function setPanel(visible) {
  document.body.classList.toggle('history-open', visible);
  ui.toggle.setAttribute('aria-expanded', String(visible));
}

function render() {
  const entries = load();
  ui.empty.hidden = entries.length > 0;
  ui.list.replaceChildren(...entries.map(renderEntry));
}

function renderEntry(entry) {
  const item = document.createElement('li');
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'history-item';
  button.dataset.jobId = entry.id;
  if (entry.id === currentId) button.setAttribute('aria-current', 'true');

  const top = document.createElement('span');
  top.className = 'history-top';
  const state = document.createElement('span');
  state.className = 'state';
  state.dataset.state = entry.status;
  state.textContent = entry.status;
  const time = document.createElement('time');
  const created = new Date(entry.createdAt);
  time.dateTime = created.toISOString();
  time.textContent = formatTime(created);
  top.append(state, time);

  const prompt = document.createElement('span');
  prompt.className = 'history-prompt';
  prompt.textContent = firstLine(entry.prompt) || '(no prompt)';
  prompt.title = entry.prompt;

  const meta = document.createElement('span');
  meta.className = 'history-meta';
  const size = Number.isFinite(entry.tokens)
    ? `${entry.tokens.toLocaleString('en-US')} tokens`
    : entry.chars
      ? `${entry.chars.toLocaleString('en-US')} chars`
      : '';
  meta.textContent = [entry.name, size].filter(Boolean).join(' · ');

  button.append(top, prompt, meta);
  button.setAttribute(
    'aria-label',
    [`${entry.status}: ${firstLine(entry.prompt)}`, time.textContent, size]
      .filter(Boolean)
      .join(', '),
  );
  button.addEventListener('click', () => {
    if (!WIDE.matches) setPanel(false);
    open(entry);
  });
  item.append(button);
  return item;
}

// The state of jobs not known to have ended, now and every few seconds while there are some.
async function refresh() {
  clearTimeout(timer);
  const pending = load().filter(
    (entry) => !TERMINAL_STATES.has(entry.status) && entry.status !== 'expired',
  );
  for (const entry of pending) {
    if (entry.id === currentId || document.hidden) continue;
    try {
      const record = await readJob(entry.id, entry.token, headers());
      updateJob(entry.id, summaryOf(record));
    } catch (error) {
      if (error instanceof HttpError && error.final) updateJob(entry.id, { status: 'expired' });
      // Otherwise the network or the gateway is down for now: try again later.
    }
  }
  if (pending.length) timer = setTimeout(refresh, REFRESH_MS);
}

/** What the list shows of a record (GET /v1/jobs/{id}). */
export function summaryOf(record) {
  const tokens = record.usage && record.usage.completion_tokens;
  return {
    status: record.status,
    tokens: Number.isFinite(tokens) ? tokens : null,
    chars: typeof record.output === 'string' ? [...record.output].length : 0,
  };
}

/** Starts refreshing again (a job was added that may still run). */
export function refreshSoon() {
  clearTimeout(timer);
  timer = setTimeout(refresh, REFRESH_MS);
}

function firstLine(text) {
  const line = (text || '').split(/\r\n|\r|\n/).find((l) => l.trim() && !l.startsWith('#sim'));
  return (line || '').trim();
}

function formatTime(date) {
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

function load() {
  try {
    const entries = JSON.parse(localStorage.getItem(STORAGE_KEY) || '[]');
    return Array.isArray(entries) ? entries.filter((e) => e && typeof e.id === 'string') : [];
  } catch {
    return [];
  }
}

function save(entries) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(entries));
  } catch (error) {
    console.warn('tokenrelay: cannot keep the history:', error.message);
  }
}
