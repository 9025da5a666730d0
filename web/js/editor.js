/*
 * Monaco on this page. Its AMD build is loaded under the strict CSP (../CSP.txt): no blob:
 * workers, no eval, and every script URL given to the DOM made by a Trusted Types policy that
 * accepts only Monaco's own files. Streamed text goes in through StreamingText, which keeps the
 * editor exact and cheap however fast tokens arrive.
 */

const MONACO_VS = '/vendor/monaco/vs';

// monaco-editor 0.57.0's AMD build starts its workers from blob: URLs. We start them from their
// own same-origin files instead, so the CSP can say `worker-src 'self'`. The file names carry
// content hashes of that exact version (package.json pins it): update this table when upgrading
// Monaco (the files are in node_modules/monaco-editor/min/vs/assets/).
const WORKER_FILES = {
  editor: 'assets/editor.worker-_vAIFJDs.js',
  json: 'assets/json.worker-Csf_TLih.js',
  css: 'assets/css.worker-BpD9FCKP.js',
  html: 'assets/html.worker-CLuInTTy.js',
  typescript: 'assets/ts.worker-g3pjEjl4.js',
};

// Monaco asks for a worker by label; these are the labels its own getWorker maps.
const WORKER_FOR_LABEL = {
  json: 'json',
  css: 'css',
  scss: 'css',
  less: 'css',
  html: 'html',
  handlebars: 'html',
  razor: 'html',
  typescript: 'typescript',
  javascript: 'typescript',
};

// The policy name is listed in CSP.txt's `trusted-types`, next to the names Monaco uses.
const POLICY_NAME = 'tokenrelay-monaco';

const FLUSH_FALLBACK_MS = 250; // rAF does not run in background tabs; a timer still does

/** Resolves with the `monaco` namespace once editor.main and its CSS are loaded. */
export function loadMonaco() {
  const policy = createTrustedScriptPolicy();
  return new Promise((resolve, reject) => {
    if (typeof window.require !== 'function' || !window.require.config) {
      reject(new Error(`${MONACO_VS}/loader.js did not load`));
      return;
    }
    window.require.config({ paths: { vs: MONACO_VS }, trustedTypesPolicy: policy });
    window.require(
      ['vs/editor/editor.main'],
      () => {
        useSameOriginWorkers(policy);
        resolve(window.monaco);
      },
      (error) => reject(new Error(describeLoadError(error))),
    );
  });
}

// Under `require-trusted-types-for 'script'` a script or worker URL must be a TrustedScriptURL.
// This policy makes one only for Monaco's files, so nothing else can be loaded through it.
function createTrustedScriptPolicy() {
  if (!window.trustedTypes) return undefined; // browsers without Trusted Types take strings
  return window.trustedTypes.createPolicy(POLICY_NAME, {
    createScriptURL(url) {
      const parsed = new URL(url, document.baseURI);
      if (parsed.origin !== location.origin || !parsed.pathname.startsWith(`${MONACO_VS}/`)) {
        throw new TypeError(`refusing to load script from ${url}`);
      }
      return parsed.href;
    },
  });
}

// editor.main replaces self.MonacoEnvironment with a getWorker that builds blob: workers, so this
// must run after it has loaded; workers start lazily, when a model first needs one.
function useSameOriginWorkers(policy) {
  self.MonacoEnvironment = {
    getWorker(_moduleId, label) {
      const url = `${MONACO_VS}/${WORKER_FILES[WORKER_FOR_LABEL[label] || 'editor']}`;
      return new Worker(policy ? policy.createScriptURL(url) : url, { name: label });
    },
  };
}

function describeLoadError(error) {
  if (error && error.requireModules) return `could not load ${error.requireModules.join(', ')}`;
  return error && error.message ? error.message : String(error);
}

/** Replaces the container's placeholder with the editor, sized for the window as it changes. */
export function createEditor(monaco, container) {
  container.replaceChildren();
  const editor = monaco.editor.create(container, {
    value: '',
    language: 'plaintext',
    theme: 'vs-dark',
    automaticLayout: true,
    scrollBeyondLastLine: false, // so "at the end" means the last line is in view
    // Keep U+2028, U+2029 and U+0085 as received: 'auto' would delete them, 'prompt' would ask.
    unusualLineTerminators: 'off',
    fontSize: 13,
    tabSize: 4,
    renderWhitespace: 'selection',
    fixedOverflowWidgets: true,
    ...sizeOptions(),
  });
  window.addEventListener('resize', () => editor.updateOptions(sizeOptions()));
  return editor;
}

// The minimap and a wide gutter cost too much of a phone's width.
function sizeOptions() {
  const wide = window.innerWidth >= 900;
  const narrow = window.innerWidth < 600;
  return {
    minimap: { enabled: wide },
    lineNumbersMinChars: narrow ? 3 : 5,
    lineDecorationsWidth: narrow ? 14 : 10,
    folding: !narrow,
  };
}

/** Monaco's display names ("C++", "C#", "Shell Script") by language id: they read better. */
export function languageNames(monaco) {
  const names = new Map();
  for (const language of monaco.languages.getLanguages()) {
    if (language.aliases && language.aliases.length) names.set(language.id, language.aliases[0]);
  }
  return names;
}

/*
 * Appends streamed text at the end of a Monaco model: one edit per animation frame however many
 * tokens arrived in it, exact up to the one EOL sequence Monaco keeps per model, and following
 * the end only while the user is there.
 */
export class StreamingText {
  /**
   * @param monaco the monaco namespace
   * @param editor the editor whose model receives the text
   * @param onFlush called after each write, to refresh counters once per frame
   */
  constructor(monaco, editor, onFlush) {
    this.monaco = monaco;
    this.editor = editor;
    this.onFlush = onFlush;
    this.pending = '';
    this.frame = 0;
    this.timer = 0;
  }

  /** Queues text; it reaches the editor with everything else that arrives in this frame. */
  append(text) {
    this.pending += text;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => this.flush(false));
    this.timer = setTimeout(() => this.flush(false), FLUSH_FALLBACK_MS);
  }

  /** Writes what is queued. `final` once the stream has ended: nothing more will follow. */
  flush(final) {
    this.cancelScheduled();
    let text = this.pending;
    // A CRLF can be split across two tokens. Monaco takes a lone CR at the end as a line break of
    // its own and the LF after it as another, so keep a trailing CR until the next piece comes.
    if (!final && text.endsWith('\r')) {
      text = text.slice(0, -1);
      this.pending = '\r';
    } else {
      this.pending = '';
    }
    if (text) this.write(text);
    this.onFlush();
  }

  /** Empties the editor and drops anything queued. */
  clear() {
    this.cancelScheduled();
    this.pending = '';
    const model = this.editor.getModel();
    model.setValue('');
    // An emptied model takes the platform's EOL (CRLF on Windows); keep one everywhere.
    model.setEOL(this.monaco.editor.EndOfLineSequence.LF);
  }

  cancelScheduled() {
    cancelAnimationFrame(this.frame);
    clearTimeout(this.timer);
    this.frame = 0;
    this.timer = 0;
  }

  // applyEdits at the very end, never setValue: the cost stays per piece, not per document, and
  // the user's selection and scroll position elsewhere are left alone.
  write(text) {
    const model = this.editor.getModel();
    const follow = this.isScrolledToEnd();
    const line = model.getLineCount();
    const column = model.getLineMaxColumn(line);
    model.applyEdits([{ range: new this.monaco.Range(line, column, line, column), text }]);
    if (follow) {
      this.editor.revealLine(model.getLineCount(), this.monaco.editor.ScrollType.Immediate);
    }
  }

  // True when the last line is (about) in view. Needs scrollBeyondLastLine: false to be exact.
  isScrolledToEnd() {
    const editor = this.editor;
    const lineHeight = editor.getOption(this.monaco.editor.EditorOption.lineHeight);
    const endOfText = editor.getBottomForLineNumber(editor.getModel().getLineCount());
    const endOfView = editor.getScrollTop() + editor.getLayoutInfo().height;
    return endOfText <= endOfView + 2 * lineHeight;
  }
}
