/*
 * The one job on screen: its text in the editor, its state, counters and viewer count, from its
 * event stream. Showing another job drops everything of the previous one, so events for a job
 * the page no longer shows can never reach the editor.
 */

import { readJob } from './api.js';
import { StreamingText } from './editor.js';
import { jobFragment, showShareLink } from './share.js';
import {
  hideViewers,
  renderStats,
  setConn,
  showDetail,
  showError,
  showState,
  showViewers,
} from './status.js';
import { JobStream } from './stream.js';

const VIEWER_POLL_MS = 3000;

// Imported by the page's module script, which runs once the document is parsed.
const stopButton = document.getElementById('stop');

let editor = null;
let streamingText = null; // how token text reaches the editor
let authHeaders = () => ({});
let current = null; // the job on screen (see newView); events for any other are ignored

/** Once Monaco is up: the editor that shows the jobs, and the headers that read their records. */
export function showJobsIn(monaco, codeEditor, headers) {
  editor = codeEditor;
  authHeaders = headers;
  streamingText = new StreamingText(monaco, editor, () => renderStats(current));
  streamingText.clear();
}

/** The job on screen, or null before the first. */
export function currentJob() {
  return current;
}

/** Shows a job from the start of its stream, in place of the one on screen. */
export function showJob(options) {
  if (current) leaveView(current);
  const view = newView(options);
  current = view;
  streamingText.clear();
  editor.updateOptions({ readOnly: true }); // appends go to the end; typing would interleave
  history.replaceState(null, '', jobFragment(view)); // a reload shows the same job again
  showShareLink(view);
  showDetail('');
  hideViewers();
  setState(view, view.state);
  renderStats(view);
  view.stream.open();
  pollViewers(view);
  return view;
}

/** Stop is for a job on screen that has not ended, and only where the page may cancel it:
 * it holds the job's cancel token (it submitted the job). A share-link viewer sees no Stop. */
export function updateButtons() {
  stopButton.hidden = !current || !current.cancelToken;
  stopButton.disabled = !current || current.terminal || !current.cancelToken;
}

function newView({ id, token, cancelToken, eventsUrl, state, startedAt }) {
  const view = {
    id,
    token,
    cancelToken: cancelToken || null,
    state,
    startedAt,
    stream: null, // JobStream: the connection, Last-Event-ID and reconnect counts
    terminal: false,
    attempt: 1,
    text: '', // the exact output since the last reset, as received
    firstTokenAt: null,
    endedAt: null,
    chunks: 0, // token events: the server may merge several tokens into one
    chars: 0,
    viewerTimer: 0,
  };
  view.stream = new JobStream(
    { id, token, eventsUrl },
    {
      headers: () => authHeaders(),
      onConn: setConn,
      onEvent: (name, data) => EVENT_HANDLERS[name](view, data),
      onEnded: (record) => endFromRecord(view, record),
      onUnavailable: (error) => {
        showError(error.message);
        finishView(view, 'unavailable');
      },
      onLost: () => {
        showError('Lost the event stream; reload the page to try again.');
        finishView(view, view.state);
      },
    },
  );
  return view;
}

// Stops everything that still works for a job we no longer show.
function leaveView(view) {
  view.terminal = true;
  view.stream.close();
  clearTimeout(view.viewerTimer);
}

function finishView(view, state) {
  view.terminal = true;
  view.endedAt = performance.now();
  view.stream.close();
  clearTimeout(view.viewerTimer);
  streamingText.flush(true);
  setState(view, state);
  setConn('closed');
  editor.updateOptions({ readOnly: false });
}

function setState(view, state) {
  view.state = state;
  showState(state);
  updateButtons();
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
    streamingText.clear();
    setState(view, 'running');
    const reason = data.reason ? `: ${data.reason}` : '';
    showDetail(`retrying (attempt ${view.attempt})${reason}`);
    renderStats(view);
  },
  done(view, data) {
    finishView(view, 'done');
    showDetail(describeDone(data));
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
  streamingText.append(text);
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

// The stream gave up on a job that has ended: its record holds the whole output.
function endFromRecord(view, record) {
  catchUpWith(view, record.output);
  finishView(view, record.status);
  if (record.status === 'done') showDetail(describeDone(record));
  if (record.status === 'failed' && record.error) showError(describeJobError(record.error));
}

// The record's output is the truth: add what we missed, or start over where it differs.
function catchUpWith(view, output) {
  if (typeof output !== 'string' || output === view.text) return;
  if (!output.startsWith(view.text)) {
    view.text = '';
    view.chars = 0;
    streamingText.clear();
  }
  addText(view, output.slice(view.text.length));
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
