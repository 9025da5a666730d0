/*
 * The edit bar and the diff. While a job streams, the bar says what is being edited (and warns
 * when the person changed the target meanwhile); at the end the editor makes way for Monaco's
 * diff editor, inline or side by side, with Accept and Reject for the document's owner, and
 * Copy, "Open as new document" and "Back to my document" for a share-link viewer. DOM and
 * Monaco only: what the buttons do is job.js's (wireReview).
 */

import { createDiffEditor } from './editor.js';
import { monacoTheme } from './theme.js';

const MODE_KEY = 'tokenrelay.diffInline';

// Imported by the page's module script, which runs once the document is parsed.
const ui = {
  review: document.getElementById('review'),
  title: document.getElementById('review-title'),
  stale: document.getElementById('stale-warning'),
  diffMode: document.getElementById('diff-mode'),
  copy: document.getElementById('copy-result'),
  open: document.getElementById('open-result'),
  close: document.getElementById('close-review'),
  reject: document.getElementById('reject'),
  accept: document.getElementById('accept'),
  editor: document.getElementById('editor'),
  diff: document.getElementById('diff'),
};

let monaco = null;
let diffEditor = null;
let models = null; // { original, modified } while a diff is shown
let inline = loadInline();

/** `actions`: { accept, reject, copy, openAsNew, close }, each called with no argument. */
export function wireReview(actions) {
  ui.accept.addEventListener('click', () => actions.accept());
  ui.reject.addEventListener('click', () => actions.reject());
  ui.copy.addEventListener('click', () => actions.copy(ui.copy));
  ui.open.addEventListener('click', () => actions.openAsNew());
  ui.close.addEventListener('click', () => actions.close());
  ui.diffMode.addEventListener('click', () => {
    inline = !inline;
    try {
      localStorage.setItem(MODE_KEY, inline ? '1' : '');
    } catch {
      // The choice lasts for this page only.
    }
    renderMode();
  });
  renderMode();
}

export function attachReview(monacoNamespace) {
  monaco = monacoNamespace;
}

/**
 * The bar for the edit on screen.
 * @param title what is edited, for people ("Editing lines 4–9 of app.py")
 * @param owner the document is this person's: Accept/Reject (else Open as new / Back)
 * @param phase 'streaming', 'review' (the diff is shown) or 'ended' (cancelled, failed, closed)
 * @param stale null, or the warning that the target was edited meanwhile
 * @param hasResult the result can be copied
 */
export function showEditBar({ title, owner, phase, stale = null, hasResult = false }) {
  ui.review.hidden = false;
  ui.review.dataset.phase = phase;
  ui.title.textContent = title;
  ui.stale.hidden = !stale;
  ui.stale.textContent = stale || '';
  const reviewing = phase === 'review';
  ui.diffMode.hidden = !reviewing;
  ui.copy.disabled = !hasResult;
  ui.accept.hidden = !(owner && reviewing);
  ui.accept.textContent = stale ? 'Apply anyway' : 'Accept';
  ui.reject.hidden = !(owner && reviewing);
  ui.open.hidden = owner || !reviewing;
  ui.close.hidden = owner;
}

export function hideEditBar() {
  ui.review.hidden = true;
  ui.stale.hidden = true;
}

/** Shows the diff in place of the editor; the models are made here and dropped by hideDiff. */
export function showDiff({ original, modified, language }) {
  hideDiff();
  if (!diffEditor) diffEditor = createDiffEditor(monaco, ui.diff, monacoTheme());
  const make = (text) => {
    const model = monaco.editor.createModel(text, language);
    model.setEOL(monaco.editor.EndOfLineSequence.LF);
    return model;
  };
  models = { original: make(original), modified: make(modified) };
  ui.editor.hidden = true;
  ui.diff.hidden = false;
  diffEditor.setModel(models);
  renderMode();
  diffEditor.layout();
}

/** The editor back in place of the diff. */
export function hideDiff() {
  ui.diff.hidden = true;
  ui.editor.hidden = false;
  if (!models) return;
  diffEditor.setModel(null);
  models.original.dispose();
  models.modified.dispose();
  models = null;
}

/** `{ original, modified }` of the diff on screen (texts), or null. */
export function diffTexts() {
  if (!models) return null;
  return { original: models.original.getValue(), modified: models.modified.getValue() };
}

/** True once the diff editor has computed the changes (they are drawn). */
export function diffReady() {
  return Boolean(models && diffEditor && diffEditor.getLineChanges() !== null);
}

/** Moves focus to the bar's main button (after the diff appears, for keyboard users). */
export function focusDecision() {
  const target = [ui.accept, ui.open, ui.close].find((button) => !button.hidden);
  if (target) target.focus();
}

function renderMode() {
  ui.diffMode.setAttribute('aria-pressed', String(inline));
  ui.diffMode.title = inline ? 'Inline (press for side by side)' : 'Side by side (press for inline)';
  if (diffEditor) diffEditor.updateOptions({ renderSideBySide: !inline });
}

function loadInline() {
  try {
    return localStorage.getItem(MODE_KEY) === '1';
  } catch {
    return false;
  }
}
