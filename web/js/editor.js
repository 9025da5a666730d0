/*
 * Monaco on this page. Its AMD build is loaded under the strict CSP (../CSP.txt): no blob:
 * workers, no eval, and every script URL given to the DOM made by a Trusted Types policy that
 * accepts only Monaco's own files.
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
export function createEditor(monaco, container, theme) {
  container.replaceChildren();
  const editor = monaco.editor.create(container, {
    value: '',
    language: 'plaintext',
    theme,
    automaticLayout: true,
    scrollBeyondLastLine: false,
    // Keep U+2028, U+2029 and U+0085 as received: 'auto' would delete them, 'prompt' would ask.
    unusualLineTerminators: 'off',
    // A file dropped on the editor opens as the document (document.js), not as pasted text.
    dropIntoEditor: { enabled: false },
    fontSize: 13,
    tabSize: 4,
    renderWhitespace: 'selection',
    fixedOverflowWidgets: true,
    ...sizeOptions(),
  });
  window.addEventListener('resize', () => editor.updateOptions(sizeOptions()));
  return editor;
}

/** The diff editor that shows a finished edit: read-only on both sides, inline when narrow. */
export function createDiffEditor(monaco, container, theme) {
  container.replaceChildren();
  const diff = monaco.editor.createDiffEditor(container, {
    theme,
    automaticLayout: true,
    readOnly: true,
    originalEditable: false,
    renderSideBySide: window.innerWidth >= 700,
    useInlineViewWhenSpaceIsLimited: true,
    unusualLineTerminators: 'off',
    scrollBeyondLastLine: false,
    renderOverviewRuler: false,
    fontSize: 13,
    // Long documents: the change, with some lines around it; the rest folds away.
    hideUnchangedRegions: { enabled: true, contextLineCount: 3, minimumLineCount: 5 },
    ...sizeOptions(),
  });
  window.addEventListener('resize', () => diff.updateOptions(sizeOptions()));
  return diff;
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

/** Whether Monaco knows the language id. */
export function isLanguage(monaco, id) {
  return Boolean(id) && monaco.languages.getLanguages().some((language) => language.id === id);
}

/** The language of a file name, from Monaco's own table of extensions and names; or null. */
export function languageForFileName(monaco, name) {
  const lower = (name || '').toLowerCase();
  if (!lower) return null;
  let best = null;
  let bestLength = 0;
  for (const language of monaco.languages.getLanguages()) {
    for (const file of language.filenames || []) {
      if (file.toLowerCase() === lower) return language.id;
    }
    for (const extension of language.extensions || []) {
      const ext = extension.toLowerCase();
      // The longest match wins: ".d.ts" before ".ts", ".blade.php" before ".php".
      if (lower.endsWith(ext) && ext.length > bestLength) {
        best = language.id;
        bestLength = ext.length;
      }
    }
  }
  return best;
}
