/*
 * tokenrelay page: submit a prompt, stream the job's events (docs/protocol.md) into a Monaco
 * editor, follow the same job from a share link, and show the state of the connection honestly.
 *
 * Plain ES modules with no build step: this entry module only starts the parts in js/ and wires
 * them together. Everything runs under the strict CSP in CSP.txt, so nothing writes HTML: every
 * text goes in through textContent, value or Monaco's model.
 */

import { readMeta } from './js/api.js';
import {
  attachEditor,
  authHeaders,
  enableGenerate,
  openJobFromFragment,
  useMeta,
  wireControls,
} from './js/controls.js';
import { createEditor, loadMonaco } from './js/editor.js';
import { currentJob, showJobsIn } from './js/job.js';
import { shareUrlFor, wireShareLink } from './js/share.js';
import { showError } from './js/status.js';

// Module scripts run after the document is parsed, so the elements are there.
async function boot() {
  wireControls();
  wireShareLink();
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
  const editor = createEditor(monaco, document.getElementById('editor'));
  showJobsIn(monaco, editor, authHeaders);
  attachEditor(monaco, editor);
  exposeTestApi(editor);
  enableGenerate();
  openJobFromFragment(0); // a share link's clock starts at page open
  window.addEventListener('hashchange', () => openJobFromFragment(performance.now()));
}

// The handle the browser tests read (web/README.md, "For tests").
function exposeTestApi(editor) {
  const job = currentJob;
  window.tokenrelay = Object.freeze({
    editor,
    getText: () => editor.getModel().getValue(),
    state: () => (job() ? job().state : 'idle'),
    jobId: () => (job() ? job().id : null),
    reconnects: () => (job() ? job().stream.reconnects : 0),
    shareUrl: () => (job() ? shareUrlFor(job()) : null),
  });
}

boot();
