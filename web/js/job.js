/*
 * The one job on screen: its events streamed into a pending edit at its target, its state,
 * counters and viewer count; at its end, the diff and the decision. Showing another job drops
 * everything of the previous one, so events for a job the page no longer shows never reach the
 * editor.
 *
 * Where the edit shows (its "host"): the person's own document when the job is theirs (they
 * submitted it here, or its target names this document and the document is still as it was),
 * else a read-only copy of the job's base document (a share link, an old job): the viewer sees
 * the same base, the same pending text and the same diff, and may copy the result or open it as
 * a new document, never apply it to anyone's document. The document changes only on Accept.
 */

import { HttpError, readJob, readViewers } from './api.js';
import { copyText, flashLabel } from './clipboard.js';
import {
  currentDocument,
  languageOfName,
  onDocumentReplaced,
  openDocument,
  setShownLanguage,
  showDocument,
  showModel,
} from './document.js';
import { isLanguage } from './editor.js';
import { markCurrent, rememberJob, summaryOf, updateJob } from './history.js';
import { PendingEdit } from './pending.js';
import {
  attachReview,
  diffReady,
  diffTexts,
  focusDecision,
  hideDiff,
  hideEditBar,
  showDiff,
  showEditBar,
  wireReview,
} from './review.js';
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
const RECORD_RETRY_MS = [500, 1000, 2000, 4000, 8000];
// Resets that are not a retry: the stream replays the whole job (docs/protocol.md, P5).
const RESYNC_REASONS = new Set(['unknown_position', 'store_rollback']);

// Imported by the page's module script, which runs once the document is parsed.
const stopButton = document.getElementById('stop');

let monaco = null;
let editor = null;
let authHeaders = () => ({});
let current = null; // the job on screen (see newView); events for any other are ignored
let recordListener = () => {};

/** Once Monaco is up: the editor that shows the edits, and the headers that read records. */
export function showJobsIn(monacoNamespace, codeEditor, headers) {
  monaco = monacoNamespace;
  editor = codeEditor;
  authHeaders = headers;
  attachReview(monaco);
  wireReview({ accept, reject, copy: copyResult, openAsNew, close: closeView });
  onDocumentReplaced((previous) => {
    const view = current;
    if (view && view.host && view.host.kind === 'owner' && view.host.model === previous.model) {
      dropHost(view);
      view.outcome = 'closed';
      showDetail('the edit’s document was closed: reopen the job from the history to see it');
    }
  });
}

/** The job on screen, or null before the first. */
export function currentJob() {
  return current;
}

/** `listener(record, view)` gets the record of each job shown (the form shows its settings). */
export function onRecord(listener) {
  recordListener = listener;
}

/**
 * Starts an owner's pending edit at the document's `range` before the job exists, so the target
 * is tracked from the moment of submit (edits made while the request is on its way move it).
 */
export function startPendingEdit(model, range) {
  const expected = model.getValueInRange(range, monaco.editor.EndOfLinePreference.LF);
  const pending = new PendingEdit(monaco, editor, model, range, expected);
  pending.set('', 'Submitting…');
  return pending;
}

/** The editor back on the person's document, dropping a viewer's display of the job. */
export function releaseEditor() {
  if (current && current.host && current.host.kind === 'viewer') closeView();
  showDocument();
}

/**
 * Shows a job from the start of its stream, in place of the one on screen.
 * `options`: id, token, cancelToken, eventsUrl, state, startedAt; for a job submitted here
 * also `pending` (from startPendingEdit), `target` (as submitted) and `name` (the document's).
 */
export function showJob(options) {
  if (current) leaveView(current);
  const view = newView(options);
  current = view;
  history.replaceState(null, '', jobFragment(view)); // a reload shows the same job again
  showShareLink(view);
  showDetail('');
  hideViewers();
  setState(view, view.state);
  renderStats(view);
  markCurrent(view.id);
  if (options.pending) {
    view.submittedHere = true;
    const doc = currentDocument();
    const { pending } = options;
    pending.onModelChange = (stale) => onTargetEdited(view, stale);
    pending.set('', 'Waiting for the first token…');
    view.host = {
      kind: 'owner',
      model: doc.model,
      pending,
      name: options.name || '',
      baseEmpty: !options.target || options.target.base === '',
    };
    renderBar(view);
  }
  view.stream.open();
  loadRecord(view, 0);
  pollViewers(view);
  return view;
}

/** Stop is for a job on screen that has not ended, and only where the page may cancel it:
 * it holds the job's cancel token (it submitted the job). A share-link viewer sees no Stop. */
export function updateButtons() {
  stopButton.hidden = !current || !current.cancelToken;
  stopButton.disabled = !current || current.terminal || !current.cancelToken;
}

/** What the tests read (web/README.md, "For tests"). */
export function inspect() {
  const view = current;
  const pending = view && view.host && view.host.pending;
  return {
    text: view ? view.text : '',
    pendingText: pending ? pending.text() : null,
    pendingShown: pending ? pending.shown : null,
    stale: Boolean(view && view.staleNow),
    host: view && view.host ? view.host.kind : null,
    review:
      view && view.reviewing
        ? { ...diffTexts(), stale: view.review.stale, owner: view.host.kind === 'owner' }
        : null,
    diffReady: Boolean(view && view.reviewing && diffReady()),
    outcome: view ? view.outcome : null,
  };
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
    recordTimer: 0,
    statsFrame: 0,
    host: null, // where the edit shows: { kind: 'owner' | 'viewer', model, pending, name }
    record: null,
    staleNow: false,
    reviewing: false, // the diff is on screen
    review: null, // { original, modified, stale, version }
    outcome: null, // 'accepted', 'rejected', 'closed', 'opened'
    done: false,
    submittedHere: false, // from this page's form (its settings are already there)
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
        endEdit(view, 'The job cannot be read; nothing was changed.');
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
  clearTimeout(view.recordTimer);
  cancelAnimationFrame(view.statsFrame);
  dropHost(view);
}

// Takes the edit off the screen: the pending text, the diff, a viewer's copy of the base.
function dropHost(view) {
  const { host } = view;
  view.host = null;
  view.reviewing = false;
  if (view === current) {
    hideDiff();
    hideEditBar();
  }
  if (!host) return;
  host.pending.dispose();
  if (host.kind === 'viewer') {
    if (view === current) showDocument();
    host.model.dispose();
  }
}

function finishView(view, state) {
  view.terminal = true;
  view.endedAt = performance.now();
  view.stream.close();
  clearTimeout(view.viewerTimer);
  if (view.host) view.host.pending.flush(true);
  setState(view, state);
  setConn('closed');
  renderStats(view);
  const summary = { status: state, chars: view.chars };
  updateJob(view.id, summary);
}

function setState(view, state) {
  view.state = state;
  showState(state);
  updateButtons();
  if (view.host) renderBar(view);
}

const EVENT_HANDLERS = {
  status(view, data) {
    if (data.attempt) view.attempt = data.attempt;
    // A code-only job's code block named its language: highlight the code as that.
    if (data.detected_language) useDetectedLanguage(view, data.detected_language);
    setState(view, data.status);
    updateJob(view.id, { status: data.status });
  },
  token(view, data) {
    addText(view, typeof data.text === 'string' ? data.text : '');
  },
  reset(view, data) {
    // The text so far is not part of the output: a retried attempt starts over, or (a resync)
    // the stream replays the whole job from its start. The document is untouched either way.
    const resync = RESYNC_REASONS.has(data.reason);
    if (!resync) view.attempt = data.attempt || view.attempt + 1;
    view.text = '';
    view.chars = 0;
    if (view.host) view.host.pending.set('', resync ? 'Resyncing…' : 'Starting again…');
    if (resync) {
      showDetail('resynced with the server: the job replays from its start');
    } else {
      setState(view, 'running');
      const reason = data.reason ? `: ${data.reason}` : '';
      showDetail(`retrying (attempt ${view.attempt})${reason}`);
    }
    renderStats(view);
  },
  done(view, data) {
    view.done = true;
    finishView(view, 'done');
    showDetail(describeDone(data));
    const tokens = data.usage && data.usage.completion_tokens;
    if (Number.isFinite(tokens)) updateJob(view.id, { tokens });
    openReview(view);
  },
  failed(view, data) {
    finishView(view, 'failed');
    showError(describeJobError(data));
    endEdit(view, 'The generation failed; nothing was changed.');
  },
  cancelled(view, data) {
    finishView(view, 'cancelled');
    const why = data && data.reason ? ` (${data.reason})` : '';
    endEdit(view, `Cancelled${why}; nothing was changed.`);
  },
};

function addText(view, text) {
  if (view.state !== 'running') setState(view, 'running');
  if (view.firstTokenAt === null) view.firstTokenAt = performance.now();
  view.chunks += 1;
  view.chars += countCodePoints(text);
  const first = !view.text;
  view.text += text;
  if (view.host) {
    view.host.pending.append(text);
    if (first) renderBar(view); // the result can be copied now
  }
  if (!view.statsFrame) {
    view.statsFrame = requestAnimationFrame(() => {
      view.statsFrame = 0;
      if (view === current) renderStats(view);
    });
  }
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

// The language the answer's code block named (docs/protocol.md, "Code-only output"): a viewer's
// copy takes it, and so does the person's document when it was empty at submit (the code is the
// whole document) or has no language of its own (plain text).
function useDetectedLanguage(view, id) {
  if (!isLanguage(monaco, id)) return;
  view.detectedLanguage = id;
  const { host } = view;
  if (!host) return;
  if (host.kind === 'viewer' || host.baseEmpty || host.model.getLanguageId() === 'plaintext') {
    if (editor.getModel() === host.model) setShownLanguage(id);
    else monaco.editor.setModelLanguage(host.model, id);
  }
}

// The stream gave up on a job that has ended: its record holds the whole output.
function endFromRecord(view, record) {
  if (record.detected_language) useDetectedLanguage(view, record.detected_language);
  catchUpWith(view, record.output);
  if (record.status === 'done') view.done = true;
  finishView(view, record.status);
  if (record.status === 'done') {
    showDetail(describeDone(record));
    updateJob(view.id, summaryOf(record));
    openReview(view);
  } else {
    if (record.status === 'failed' && record.error) showError(describeJobError(record.error));
    endEdit(view, `The job ended ${record.status}; nothing was changed.`);
  }
}

// The record's output is the truth: add what we missed, or start over where it differs.
function catchUpWith(view, output) {
  if (typeof output !== 'string' || output === view.text) return;
  if (!output.startsWith(view.text)) {
    view.text = '';
    view.chars = 0;
    if (view.host) view.host.pending.set('');
  }
  addText(view, output.slice(view.text.length));
}

// ---- the record: where the edit shows, and the job's settings ----

async function loadRecord(view, tries) {
  let record;
  try {
    record = await readJob(view.id, view.token, authHeaders());
  } catch (error) {
    if (view !== current || view.record) return;
    // A job that does not exist is reported once, by the stream's end (JobStream).
    if (error instanceof HttpError && error.final) return;
    const delay = RECORD_RETRY_MS[Math.min(tries, RECORD_RETRY_MS.length - 1)];
    view.recordTimer = setTimeout(() => loadRecord(view, tries + 1), delay);
    return;
  }
  if (view !== current) return;
  view.record = record;
  // The form shows a job's settings, unless it was submitted from it (and may be edited since).
  if (!view.submittedHere) recordListener(record, view);
  rememberJob({
    id: view.id,
    token: view.token,
    prompt: typeof record.prompt === 'string' ? record.prompt : '',
    name: record.target && record.target.name ? record.target.name : '',
    status: record.status,
  });
  if (record.detected_language) view.detectedLanguage = record.detected_language;
  if (!view.host && !view.outcome) hostFromRecord(view, record);
}

// The job's edit, on the person's document if it is theirs and still as it was, else on a copy
// of its base document.
function hostFromRecord(view, record) {
  const target = record.target || null;
  const doc = currentDocument();
  const ours = Boolean(target && doc && target.document_id === doc.id);
  const name = (target && target.name) || (ours ? doc.name : '');
  const baseEmpty = !target || target.base === '';
  let host;
  if (ours && doc.model.getValue() === toLf(target.base)) {
    showDocument();
    host = { kind: 'owner', model: doc.model, name, baseEmpty };
  } else {
    const language =
      view.detectedLanguage ||
      record.language ||
      languageOfName(name) ||
      (ours ? doc.model.getLanguageId() : 'plaintext');
    const model = monaco.editor.createModel(target ? target.base : '', language);
    model.setEOL(monaco.editor.EndOfLineSequence.LF);
    showModel(model, name);
    host = { kind: 'viewer', model, name, baseEmpty, changedSince: ours };
  }
  const range = target ? toRange(host.model, target.range) : new monaco.Range(1, 1, 1, 1);
  const expected = host.model.getValueInRange(range, monaco.editor.EndOfLinePreference.LF);
  host.pending = new PendingEdit(monaco, editor, host.model, range, expected, (stale) =>
    onTargetEdited(view, stale),
  );
  host.pending.set(view.text);
  view.host = host;
  if (view.terminal && !view.done) {
    endEdit(view, `The job ended ${view.state}; nothing was changed.`);
  } else if (view.done) {
    openReview(view);
  } else {
    renderBar(view);
  }
}

function toRange(model, range) {
  return model.validateRange(
    new monaco.Range(range.start_line, range.start_column, range.end_line, range.end_column),
  );
}

// ---- the edit bar, the diff and the decision ----

// The model changed: the target may have moved (the bar names its lines) or been edited.
function onTargetEdited(view, stale) {
  if (view !== current || !view.host || view.reviewing) return;
  if (view.host.kind === 'owner') view.staleNow = stale;
  renderBar(view);
}

function renderBar(view) {
  if (view !== current) return;
  const { host } = view;
  if (!host) {
    hideEditBar();
    return;
  }
  const owner = host.kind === 'owner';
  const where = describeTarget(host);
  const phase = view.reviewing ? 'review' : view.terminal ? 'ended' : 'streaming';
  let title;
  if (phase === 'review') {
    title = owner ? `Review the change to ${where}` : `The change to ${where}`;
  } else if (phase === 'streaming') {
    title = owner ? `Generating into ${where}…` : `Watching an edit of ${where} land…`;
  } else {
    title = view.endNote || `The edit of ${where} ended.`;
  }
  if (!owner && host.changedSince) title += ' (your copy has changed since: shown as it was)';
  let stale = null;
  if (owner && phase === 'review' && view.review.stale) {
    stale =
      'You edited the targeted code while it was generated: this diff is against your current ' +
      'text, and nothing is applied unless you say so.';
  } else if (owner && phase === 'streaming' && view.staleNow) {
    stale =
      'You are editing the targeted code: the result will be shown against your current text ' +
      'and never applied without your review.';
  }
  showEditBar({ title, owner, phase, stale, hasResult: view.text.length > 0 });
}

function describeTarget(host) {
  const range = host.pending.range();
  const name = host.name || 'the document';
  if (!range) return name;
  if (range.isEmpty()) return `${name}, at line ${range.startLineNumber}`;
  const last = range.endColumn === 1 ? range.endLineNumber - 1 : range.endLineNumber;
  return last > range.startLineNumber
    ? `lines ${range.startLineNumber}–${last} of ${name}`
    : `line ${range.startLineNumber} of ${name}`;
}

// The job is done: the diff of the target's document with the text in place of the target.
function openReview(view) {
  const { host } = view;
  if (!host || view.reviewing || view.outcome || view !== current) return;
  host.pending.flush(true);
  const { model } = host;
  const range = host.pending.range();
  const original = model.getValue();
  const start = model.getOffsetAt(range.getStartPosition());
  const end = model.getOffsetAt(range.getEndPosition());
  const placed = placeText(view.text, original.slice(start, end));
  const modified = original.slice(0, start) + toLf(placed) + original.slice(end);
  view.review = {
    original,
    modified,
    placed,
    stale: host.kind === 'owner' && host.pending.isStale(),
    version: model.getAlternativeVersionId(),
  };
  view.reviewing = true;
  showDiff({ original, modified, language: model.getLanguageId() });
  renderBar(view);
  const focus = document.activeElement;
  if (!focus || focus === document.body || focus.closest('#job-form, #review')) focusDecision();
}

// Accept: the text replaces the target as one edit, which one undo takes back.
function accept() {
  const view = current;
  if (!view || !view.reviewing || !view.host || view.host.kind !== 'owner') return;
  const { model, pending } = view.host;
  if (model.getAlternativeVersionId() !== view.review.version) {
    view.reviewing = false; // the document changed under the diff: show the diff again
    openReview(view);
    return;
  }
  const range = pending.range();
  const text = view.review.placed;
  const selections = editor.getSelections() || [];
  dropHost(view);
  view.outcome = 'accepted';
  model.pushStackElement();
  model.pushEditOperations(selections, [{ range, text, forceMoveMarkers: true }], () => null);
  model.pushStackElement();
  const startOffset = model.getOffsetAt(range.getStartPosition());
  const endPosition = model.getPositionAt(startOffset + toLf(text).length);
  editor.setSelection(monaco.Range.fromPositions(range.getStartPosition(), endPosition));
  editor.revealRangeInCenterIfOutsideViewport(editor.getSelection());
  editor.focus();
  showDetail('accepted: one undo (Ctrl/⌘+Z) takes it back');
}

function reject() {
  const view = current;
  if (!view || !view.host || view.host.kind !== 'owner') return;
  dropHost(view);
  view.outcome = 'rejected';
  editor.focus();
  showDetail('rejected: the document is unchanged');
}

// A viewer's way out: back to their own document.
function closeView() {
  const view = current;
  if (!view || !view.host) return;
  dropHost(view);
  view.outcome = view.outcome || 'closed';
  editor.focus();
}

// A viewer keeps the result: the base with the change, as a new document of their own.
function openAsNew() {
  const view = current;
  if (!view || !view.reviewing || !view.host) return;
  const { modified } = view.review;
  const language = view.host.model.getLanguageId();
  const name = view.host.name;
  dropHost(view);
  view.outcome = 'opened';
  openDocument({ name, text: modified, language });
  editor.focus();
  showDetail('opened as a new document');
}

async function copyResult(button) {
  const view = current;
  if (!view || !view.text) return;
  if (await copyText(view.text)) flashLabel(button, 'Copied');
  else showError('Copy failed: the clipboard is not available here.');
}

// The edit did not come (cancelled, failed): the document is untouched; a viewer's copy stays
// until they go back.
function endEdit(view, note) {
  view.endNote = note;
  if (!view.host) {
    showDetail(note);
    return;
  }
  if (view.host.kind === 'owner') {
    dropHost(view);
    showDetail(note);
  } else {
    view.host.pending.set('', note);
    renderBar(view);
  }
}

// ---- counters ----

// Characters as people count them: code points, not UTF-16 units (an emoji is one).
function countCodePoints(text) {
  let count = 0;
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit < 0xdc00 || unit > 0xdfff) count += 1; // skip the low half of a pair
  }
  return count;
}

// The viewer count over every gateway: GET /v1/jobs/{id}/viewers, a few bytes, not the record.
function pollViewers(view, delay = 1000) {
  view.viewerTimer = setTimeout(async () => {
    if (view !== current || view.terminal) return;
    try {
      showViewers(await readViewers(view.id, view.token, authHeaders()));
    } catch (error) {
      console.warn('tokenrelay: viewer count unavailable:', error.message);
    }
    if (view === current && !view.terminal) pollViewers(view, VIEWER_POLL_MS);
  }, delay);
}

/**
 * The text as it goes in place of `selected`: the job's text, except that a selection that does
 * not end with a line break (lines selected to their end) keeps the line break after it, so the
 * final line break of the text is left out (code blocks end with one).
 */
function placeText(text, selected) {
  if (!selected || /[\r\n]$/.test(selected)) return text;
  return text.replace(/(\r\n|\r|\n)$/, '');
}

function toLf(text) {
  return text.replace(/\r\n?/g, '\n');
}
