/*
 * What the page tells the person about the job on screen: its state, the connection, the
 * counters and the error line. Only writes to the DOM, keeps no state, so every part of the page
 * can report through it without knowing about the others. Text goes in through textContent only
 * (the CSP allows no HTML from script).
 */

const CONN_LABELS = {
  idle: 'idle',
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  closed: 'closed',
};

// Imported by the page's module script, which runs once the document is parsed.
const ui = {
  status: document.getElementById('status'),
  detail: document.getElementById('detail'),
  conn: document.getElementById('conn'),
  ttft: document.getElementById('ttft'),
  rate: document.getElementById('rate'),
  chars: document.getElementById('chars'),
  viewers: document.getElementById('viewers'),
  error: document.getElementById('error'),
};

export function showState(state) {
  ui.status.textContent = state;
  ui.status.dataset.state = state;
}

export function showDetail(text) {
  ui.detail.textContent = text;
}

export function setConn(state) {
  ui.conn.textContent = CONN_LABELS[state];
  ui.conn.dataset.state = state;
}

/** TTFT, rate and characters of a job's view (see job.js). */
export function renderStats(view) {
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
export function showViewers(record) {
  const count = record && record.viewers;
  ui.viewers.hidden = !Number.isFinite(count);
  if (Number.isFinite(count))
    ui.viewers.textContent = `${count} ${count === 1 ? 'viewer' : 'viewers'}`;
}

export function hideViewers() {
  ui.viewers.hidden = true;
}

export function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

export function clearError() {
  ui.error.textContent = '';
  ui.error.hidden = true;
}
