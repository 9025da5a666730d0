/*
 * tokenrelay page: an AI code editor. Open or paste a document, select code, describe a change:
 * the job streams (docs/protocol.md) into a pending edit at the selection, and at its end the
 * diff waits for Accept or Reject. A share link shows the same edit landing to anyone who opens
 * it; the history reopens this browser's recent jobs; the connection's state is shown honestly.
 *
 * Plain ES modules with no build step: this entry module only starts the parts in js/ and wires
 * them together. Everything runs under the strict CSP in CSP.txt, so nothing writes HTML: every
 * text goes in through textContent, value or Monaco's models.
 */

import { readMeta } from './js/api.js';
import {
  attachEditor,
  authHeaders,
  enableGenerate,
  jobLanguages,
  openJobFromFragment,
  openJobFromHistory,
  useMeta,
  wireControls,
} from './js/controls.js';
import { attachDocument, currentDocument, wireDocument } from './js/document.js';
import { createEditor, loadMonaco } from './js/editor.js';
import { historyEntries, wireHistory } from './js/history.js';
import { currentJob, inspect, showJobsIn } from './js/job.js';
import { shareUrlFor, wireShareLink } from './js/share.js';
import { showError } from './js/status.js';
import { effectiveTheme, monacoTheme, useMonacoTheme, wireTheme } from './js/theme.js';

// Module scripts run after the document is parsed, so the elements are there.
async function boot() {
  wireTheme(document.getElementById('theme-toggle'));
  wireControls();
  wireDocument();
  wireShareLink();
  wireHistory(openJobFromHistory, authHeaders);
  const [metaResult, monacoResult] = await Promise.allSettled([readMeta(), loadMonaco()]);
  if (metaResult.status === 'fulfilled') {
    useMeta(metaResult.value);
  } else {
    showError(`Could not read /v1/meta (${metaResult.reason.message}); using defaults.`);
  }
  if (monacoResult.status === 'rejected') {
    showError(`The editor failed to load: ${monacoResult.reason.message}`);
    return;
  }
  const monaco = monacoResult.value;
  useMonacoTheme(monaco);
  const editor = createEditor(monaco, document.getElementById('editor'), monacoTheme());
  attachDocument(monaco, editor, jobLanguages());
  showJobsIn(monaco, editor, authHeaders);
  attachEditor(monaco, editor);
  exposeTestApi(monaco, editor);
  enableGenerate();
  openJobFromFragment(0); // a share link's clock starts at page open
  window.addEventListener('hashchange', () => openJobFromFragment(performance.now()));
}

// The handle the browser tests read (web/README.md, "For tests").
function exposeTestApi(monaco, editor) {
  const job = currentJob;
  window.tokenrelay = Object.freeze({
    monaco,
    editor,
    documentText: () => currentDocument().model.getValue(),
    documentId: () => currentDocument().id,
    getText: () => inspect().text,
    pendingText: () => inspect().pendingText,
    inspect,
    state: () => (job() ? job().state : 'idle'),
    jobId: () => (job() ? job().id : null),
    reconnects: () => (job() ? job().stream.reconnects : 0),
    shareUrl: () => (job() ? shareUrlFor(job()) : null),
    theme: effectiveTheme,
    history: historyEntries,
  });
}

boot();
