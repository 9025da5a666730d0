/*
 * The share link: anyone who opens it follows the same job from its start. The viewer token
 * rides in the URL's fragment, which browsers put in no request and no referrer: only the page
 * itself reads it.
 */

import { copyText, flashLabel } from './clipboard.js';
import { showError } from './status.js';

// Imported by the page's module script, which runs once the document is parsed.
const ui = {
  share: document.getElementById('share'),
  shareLink: document.getElementById('share-link'),
  copyShare: document.getElementById('copy-share'),
};

/** `#job=...&token=...`: the fragment that names a job. */
export function jobFragment(view) {
  return `#job=${encodeURIComponent(view.id)}&token=${encodeURIComponent(view.token)}`;
}

export function shareUrlFor(view) {
  return `${location.origin}/${jobFragment(view)}`;
}

/** `{ id, token }` of the job the page's fragment names, or null. */
export function jobInFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const id = params.get('job');
  const token = params.get('token');
  return id && token ? { id, token } : null;
}

export function showShareLink(view) {
  ui.shareLink.value = shareUrlFor(view);
  ui.share.hidden = false;
}

export function wireShareLink() {
  ui.copyShare.addEventListener('click', copyShareLink);
  ui.shareLink.addEventListener('focus', () => ui.shareLink.select());
}

async function copyShareLink() {
  if (await copyText(ui.shareLink.value)) {
    flashLabel(ui.copyShare, 'Copied');
  } else {
    ui.shareLink.select();
    showError('Copy failed: select the link and copy it by hand.');
  }
}
