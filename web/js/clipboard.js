/*
 * Copying text and saving it as a file: the share link, the document, a job's result.
 */

/** Copies `text`; false when neither the async clipboard nor the old way worked. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // The async clipboard needs a secure context; plain http to a LAN address is not one.
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.className = 'offscreen';
    document.body.append(area);
    area.select();
    const copied = document.execCommand('copy');
    area.remove();
    return copied;
  }
}

/** Saves `text` as a download named `name`. */
export function downloadText(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.className = 'offscreen';
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Shows `text` on the button for a moment ("Copied"), then its own label again. */
export function flashLabel(button, text) {
  button.dataset.label = button.dataset.label || button.textContent;
  button.textContent = text;
  clearTimeout(Number(button.dataset.flash));
  button.dataset.flash = String(
    setTimeout(() => {
      button.textContent = button.dataset.label;
    }, 1200),
  );
}
