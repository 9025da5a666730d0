/*
 * The document: the person's own text in the editor, editable. Opened from a file (the picker,
 * or dropped on the page), pasted into a new one, or the example shown on a first visit; its
 * name, its language (from the name, or picked), kept in localStorage so a reload finds it
 * again. The editor may show another model for a while (a share link's base document, read-only);
 * showDocument() brings the document back with its cursor and scroll position.
 */

import { copyText, downloadText, flashLabel } from './clipboard.js';
import { isLanguage, languageForFileName, languageNames } from './editor.js';
import { showError } from './status.js';

const STORAGE_KEY = 'tokenrelay.document';
const SAVE_DELAY_MS = 400;

const EXAMPLE = {
  name: 'example.py',
  language: 'python',
  text: `"""An example to try: open your own file (Open…, or drop one here), or edit this one.

Select a function, press Ctrl/⌘+K, describe the change, then Ctrl/⌘+Enter.
"""


def parse_config(text):
    """Read \`key = value\` lines into a dict."""
    config = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            config[key.strip()] = value.strip()
    return config


def merge_configs(base, override):
    merged = dict(base)
    merged.update(override)
    return merged
`,
};

// Imported by the page's module script, which runs once the document is parsed.
const ui = {
  openFile: document.getElementById('open-file'),
  fileInput: document.getElementById('file-input'),
  newDoc: document.getElementById('new-doc'),
  name: document.getElementById('doc-name'),
  language: document.getElementById('language'),
  copy: document.getElementById('copy-doc'),
  download: document.getElementById('download-doc'),
  dropHint: document.getElementById('drop-hint'),
};

let monaco = null;
let editor = null;
let doc = null; // { id, name, model }
let docViewState = null; // the document's cursor and scroll while another model is shown
let saveTimer = 0;
const replacedListeners = [];

/** Listens to the document's buttons; they act once attachDocument() has run. */
export function wireDocument() {
  ui.openFile.addEventListener('click', () => ui.fileInput.click());
  ui.fileInput.addEventListener('change', () => {
    const [file] = ui.fileInput.files;
    ui.fileInput.value = ''; // the same file again is a change too
    if (file && monaco) openFile(file);
  });
  ui.newDoc.addEventListener('click', () => {
    if (!monaco) return;
    openDocument({ name: '', text: '', language: ui.language.value });
    editor.focus();
  });
  ui.name.addEventListener('change', renameDocument);
  ui.language.addEventListener('change', () => setShownLanguage(ui.language.value));
  // Copy and Download take what the editor shows: the document, or a shared one.
  ui.copy.addEventListener('click', async () => {
    const model = editor && editor.getModel();
    if (!model) return;
    if (await copyText(model.getValue())) flashLabel(ui.copy, 'Copied');
    else showError('Copy failed: select the text in the editor and copy it by hand.');
  });
  ui.download.addEventListener('click', () => {
    const model = editor && editor.getModel();
    if (model) downloadText(fileNameOf({ name: ui.name.value.trim(), model }), model.getValue());
  });
  wireDrop();
}

/** Once Monaco is up: the stored document (or the example) in the editor, the picker filled. */
export function attachDocument(monacoNamespace, codeEditor, languages) {
  monaco = monacoNamespace;
  editor = codeEditor;
  fillLanguagePicker(languages);
  const stored = loadStored();
  openDocument(stored || EXAMPLE, stored ? stored.id : null);
}

/** The person's document: `{ id, name, model }`. */
export function currentDocument() {
  return doc;
}

/** Makes `text` the document (a new id), in place of the one before. */
export function openDocument({ name, text, language }, id = null) {
  const previous = doc;
  const chosen = isLanguage(monaco, language) ? language : 'plaintext';
  const model = monaco.editor.createModel(text, chosen);
  model.setEOL(monaco.editor.EndOfLineSequence.LF); // one EOL everywhere (the base is sent)
  doc = { id: id || newDocumentId(), name: name || '', model };
  model.onDidChangeContent(() => scheduleSave());
  docViewState = null;
  editor.setModel(model);
  editor.updateOptions({ readOnly: false });
  ui.name.value = doc.name;
  ui.name.readOnly = false;
  showLanguageInPicker(chosen);
  saveNow();
  if (previous) {
    for (const listener of replacedListeners) listener(previous);
    previous.model.dispose();
  }
}

/** `listener(previousDocument)` runs when another document takes the editor. */
export function onDocumentReplaced(listener) {
  replacedListeners.push(listener);
}

/** Whether the editor shows the document (not another model). */
export function showingDocument() {
  return Boolean(doc) && editor.getModel() === doc.model;
}

/** The document back in the editor, editable, where the person left it. */
export function showDocument() {
  if (!doc || showingDocument()) return;
  editor.setModel(doc.model);
  if (docViewState) editor.restoreViewState(docViewState);
  docViewState = null;
  editor.updateOptions({ readOnly: false });
  ui.name.value = doc.name;
  ui.name.readOnly = false;
  showLanguageInPicker(doc.model.getLanguageId());
}

/** Another model in the editor, read-only (a shared job's base document, named `name`). */
export function showModel(model, name) {
  if (showingDocument()) docViewState = editor.saveViewState();
  editor.setModel(model);
  editor.updateOptions({ readOnly: true });
  ui.name.value = name || '';
  ui.name.readOnly = true; // not the person's document: nothing to rename
  showLanguageInPicker(model.getLanguageId());
}

/** The language of the model on screen (and the picker's choice); ignored if Monaco lacks it. */
export function setShownLanguage(id) {
  if (!isLanguage(monaco, id)) return;
  const model = editor.getModel();
  if (model) monaco.editor.setModelLanguage(model, id);
  showLanguageInPicker(id);
  if (model && doc && model === doc.model) saveNow();
}

/** The picker's language if a job may ask for it (`LANGUAGES`), else undefined. */
export function jobLanguage() {
  const option = ui.language.selectedOptions[0];
  return option && option.dataset.allowed === 'true' ? option.value : undefined;
}

/** A name for the document's file: its own, or "untitled" with its language's extension. */
export function fileNameOf(document) {
  if (document.name) return document.name;
  const id = document.model.getLanguageId();
  const language = monaco.languages.getLanguages().find((l) => l.id === id);
  const extension = (language && language.extensions && language.extensions[0]) || '.txt';
  return `untitled${extension}`;
}

/** The language of a file name, if Monaco knows one. */
export function languageOfName(name) {
  return languageForFileName(monaco, name);
}

function renameDocument() {
  if (!doc || !showingDocument()) return;
  doc.name = ui.name.value.trim();
  const language = languageForFileName(monaco, doc.name);
  if (language && showingDocument()) setShownLanguage(language);
  saveNow();
}

async function openFile(file) {
  let text;
  try {
    text = await file.text();
  } catch (error) {
    showError(`Could not read ${file.name}: ${error.message}`);
    return;
  }
  if (text.slice(0, 8192).includes('\0')) {
    showError(`${file.name} is not a text file.`);
    return;
  }
  openDocument({ name: file.name, text, language: languageForFileName(monaco, file.name) });
  editor.focus();
}

// A file dragged anywhere over the page opens as the document when dropped.
function wireDrop() {
  let depth = 0;
  const carriesFile = (event) => Array.from(event.dataTransfer?.types || []).includes('Files');
  document.addEventListener(
    'dragenter',
    (event) => {
      if (!carriesFile(event)) return;
      depth += 1;
      ui.dropHint.hidden = false;
    },
    true,
  );
  document.addEventListener(
    'dragleave',
    (event) => {
      if (!carriesFile(event)) return;
      depth = Math.max(0, depth - 1);
      if (!depth) ui.dropHint.hidden = true;
    },
    true,
  );
  document.addEventListener(
    'dragover',
    (event) => {
      if (!carriesFile(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
    },
    true,
  );
  document.addEventListener(
    'drop',
    (event) => {
      if (!carriesFile(event)) return;
      event.preventDefault();
      event.stopPropagation(); // not into Monaco as text
      depth = 0;
      ui.dropHint.hidden = true;
      const [file] = event.dataTransfer.files;
      if (file && monaco) openFile(file);
    },
    true,
  );
}

// The languages a job may name come first, as the gateway lists them; a file's language
// that is not among them is added (it highlights, but a job then names no language).
function fillLanguagePicker(languages) {
  const names = languageNames(monaco);
  ui.language.replaceChildren(
    ...languages.map((id) => {
      const option = new Option(names.get(id) || id, id);
      option.dataset.allowed = 'true';
      return option;
    }),
  );
}

function showLanguageInPicker(id) {
  if (![...ui.language.options].some((option) => option.value === id)) {
    ui.language.append(new Option(languageNames(monaco).get(id) || id, id));
  }
  ui.language.value = id;
}

function newDocumentId() {
  // crypto.getRandomValues works on plain http too (randomUUID needs a secure context).
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `doc-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function scheduleSave() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(saveNow, SAVE_DELAY_MS);
}

function saveNow() {
  clearTimeout(saveTimer);
  if (!doc) return;
  const stored = {
    id: doc.id,
    name: doc.name,
    language: doc.model.getLanguageId(),
    text: doc.model.getValue(),
  };
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(stored));
  } catch (error) {
    console.warn('tokenrelay: cannot keep the document:', error.message);
  }
}

function loadStored() {
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) || 'null');
    if (stored && typeof stored.id === 'string' && typeof stored.text === 'string') return stored;
  } catch {
    // Nothing kept, or storage is off: the example it is.
  }
  return null;
}
