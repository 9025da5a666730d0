/*
 * Light and dark: the page follows the OS (prefers-color-scheme) until the person picks the
 * other one with the toggle; picking the OS's own again means "follow the OS" again. The choice
 * is kept in localStorage. Monaco gets the matching theme (vs / vs-dark).
 */

const STORAGE_KEY = 'tokenrelay.theme'; // 'light', 'dark', or absent: follow the OS
const media = window.matchMedia('(prefers-color-scheme: dark)');

let choice = loadChoice();
let monacoApi = null;
let button = null;

/** Applies the theme now and keeps it following the OS and the toggle. */
export function wireTheme(toggle) {
  button = toggle;
  button.addEventListener('click', toggleTheme);
  media.addEventListener('change', applyTheme);
  applyTheme();
}

/** Once Monaco is up, it follows too. */
export function useMonacoTheme(monaco) {
  monacoApi = monaco;
  applyTheme();
}

/** 'light' or 'dark': what the page shows now. */
export function effectiveTheme() {
  return choice || (media.matches ? 'dark' : 'light');
}

/** Monaco's theme for what the page shows. */
export function monacoTheme() {
  return effectiveTheme() === 'dark' ? 'vs-dark' : 'vs';
}

function toggleTheme() {
  const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
  choice = next === (media.matches ? 'dark' : 'light') ? '' : next; // the OS's own: follow it
  try {
    if (choice) localStorage.setItem(STORAGE_KEY, choice);
    else localStorage.removeItem(STORAGE_KEY);
  } catch {
    // No storage: the choice lasts until the page is reloaded.
  }
  applyTheme();
}

function applyTheme() {
  const theme = effectiveTheme();
  document.documentElement.dataset.theme = theme;
  if (monacoApi) monacoApi.editor.setTheme(monacoTheme());
  if (!button) return;
  const other = theme === 'dark' ? 'light' : 'dark';
  button.querySelector('#theme-icon').textContent = theme === 'dark' ? '☾' : '☀';
  button.querySelector('#theme-label').textContent = theme === 'dark' ? ' Dark' : ' Light';
  button.title = `Switch to the ${other} theme${choice ? '' : ' (now following the system)'}`;
  button.setAttribute('aria-label', `Theme: ${theme}. Switch to ${other}`);
  button.setAttribute('aria-pressed', String(Boolean(choice)));
}

function loadChoice() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    return saved === 'light' || saved === 'dark' ? saved : '';
  } catch {
    return '';
  }
}
