/*
 * A pending edit: the text a job streams, shown at its target in the editor without touching
 * the model. The target range is decorated (tinted) and tracked as the model changes (Monaco's
 * tracked ranges: edits elsewhere move it); the new text shows in a view zone under it, tinted
 * too, highlighted in the model's language. Nothing here enters the model or its undo history:
 * the person keeps editing the rest of the document while the text streams in.
 *
 * Text arrives per token; the zone is redrawn once per animation frame however many tokens came
 * in it, and complete lines are highlighted a little later (Monaco's colorizer), so the cost stays
 * per frame, not per token.
 */

import { monacoTheme } from './theme.js';

const FLUSH_FALLBACK_MS = 250; // rAF does not run in background tabs; a timer still does
const COLORIZE_DELAY_MS = 120;
const LINE_BREAK = /\r\n|\r|\n/;

export class PendingEdit {
  /**
   * @param monaco the monaco namespace
   * @param editor the editor that shows `model`
   * @param model the document (the person's own) or a job's base document (a viewer's copy)
   * @param range where the text goes (an IRange), tracked from now on
   * @param expected the text the range held at submit: anything else there now makes it stale
   * @param onModelChange(stale) after each change of the model (the target may have been edited)
   */
  constructor(monaco, editor, model, range, expected, onModelChange = () => {}) {
    this.monaco = monaco;
    this.editor = editor;
    this.model = model;
    this.expected = expected.replace(/\r\n?/g, '\n');
    this.shown = ''; // the text on screen (the zone), exact
    this.queued = '';
    this.placeholder = 'Waiting for the first token…';
    this.frame = 0;
    this.timer = 0;
    this.colorTimer = 0;
    this.colored = ''; // the prefix of `shown` (whole lines) that is highlighted
    this.disposed = false;
    this.onModelChange = onModelChange;
    const stickiness = monaco.editor.TrackedRangeStickiness.NeverGrowsWhenTypingAtEdges;
    const empty = range.startLineNumber === range.endLineNumber && range.startColumn === range.endColumn;
    [this.decoration] = model.deltaDecorations(
      [],
      [
        {
          range,
          options: {
            description: 'tokenrelay-target',
            stickiness,
            className: empty ? null : 'tr-target',
            linesDecorationsClassName: 'tr-target-gutter',
          },
        },
      ],
    );
    this.buildZone();
    this.listener = model.onDidChangeContent(() => {
      this.layout();
      this.onModelChange(this.isStale());
    });
    editor.revealRangeInCenterIfOutsideViewport(range, monaco.editor.ScrollType.Smooth);
  }

  /** The target as it is now (moved by edits around it). */
  range() {
    return this.model.getDecorationRange(this.decoration);
  }

  /** The text the target holds now. */
  targetText() {
    const range = this.range();
    return range ? this.model.getValueInRange(range, this.monaco.editor.EndOfLinePreference.LF) : '';
  }

  /** True once the target's text differs from what it was at submit. */
  isStale() {
    return this.targetText() !== this.expected;
  }

  /** Queues streamed text; it shows with everything else that arrives in this frame. */
  append(text) {
    if (this.disposed) return;
    this.queued += text;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => this.flush(false));
    this.timer = setTimeout(() => this.flush(false), FLUSH_FALLBACK_MS);
  }

  /** Shows what is queued. `final` once the stream has ended: nothing more will follow. */
  flush(final) {
    this.cancelFrame();
    if (this.disposed) return;
    let text = this.queued;
    // A CRLF can be split across two tokens: keep a trailing CR until the next piece comes, so
    // the zone does not show a line break that the LF after it turns into the same one.
    if (!final && text.endsWith('\r')) {
      text = text.slice(0, -1);
      this.queued = '\r';
    } else {
      this.queued = '';
    }
    if (text || final) {
      this.shown += text;
      this.render(final);
    }
  }

  /** Everything streamed so far, shown or queued (a retried attempt starts again: set ''). */
  text() {
    return this.shown + this.queued;
  }

  /** Replaces the text (a `reset`, or the text so far of a job opened mid-stream). */
  set(text, placeholder = this.placeholder) {
    this.cancelFrame();
    this.queued = '';
    this.shown = '';
    this.colored = '';
    this.placeholder = placeholder;
    this.content.replaceChildren(this.coloredNode, this.plainNode);
    this.coloredNode.replaceChildren();
    if (text) this.append(text);
    else this.render(false);
  }

  /** Removes the decoration, the zone and every listener; the model is as it was. */
  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    this.cancelFrame();
    clearTimeout(this.colorTimer);
    this.listener.dispose();
    if (!this.model.isDisposed()) this.model.deltaDecorations([this.decoration], []);
    this.editor.changeViewZones((accessor) => accessor.removeZone(this.zoneId));
  }

  cancelFrame() {
    cancelAnimationFrame(this.frame);
    clearTimeout(this.timer);
    this.frame = 0;
    this.timer = 0;
  }

  buildZone() {
    const font = this.editor.getOption(this.monaco.editor.EditorOption.fontInfo);
    this.node = document.createElement('div');
    this.node.className = 'tr-pending';
    this.content = document.createElement('div');
    this.content.className = 'tr-pending-text';
    Object.assign(this.content.style, {
      fontFamily: font.fontFamily,
      fontSize: `${font.fontSize}px`,
      lineHeight: `${font.lineHeight}px`,
      letterSpacing: `${font.letterSpacing}px`,
    });
    this.coloredNode = document.createElement('span');
    this.plainNode = document.createTextNode('');
    this.content.append(this.coloredNode, this.plainNode);
    this.node.append(this.content);
    this.margin = document.createElement('div');
    this.margin.className = 'tr-pending-margin';
    this.charWidth = font.typicalHalfwidthCharacterWidth;
    this.zone = {
      afterLineNumber: this.anchorLine(),
      heightInLines: 1,
      domNode: this.node,
      marginDomNode: this.margin,
    };
    this.editor.changeViewZones((accessor) => {
      this.zoneId = accessor.addZone(this.zone);
    });
    this.render(false);
  }

  // The zone goes under the target's last line (above the line a cursor starts, at column 1).
  anchorLine() {
    const range = this.range();
    if (!range) return 0;
    const { startLineNumber, startColumn, endLineNumber, endColumn } = range;
    if (startLineNumber === endLineNumber && startColumn === endColumn) {
      const lineIsEmpty = this.model.getLineMaxColumn(startLineNumber) === 1;
      return startColumn === 1 && !lineIsEmpty ? startLineNumber - 1 : startLineNumber;
    }
    return endColumn === 1 ? endLineNumber - 1 : endLineNumber;
  }

  render(final) {
    const follow = this.isFollowing();
    const text = this.shown;
    this.node.classList.toggle('waiting', !text);
    if (!text) {
      this.plainNode.textContent = this.placeholder;
    } else if (this.colored && text.startsWith(this.colored)) {
      this.plainNode.textContent = toLf(text.slice(this.colored.length));
    } else {
      this.colored = '';
      this.coloredNode.replaceChildren();
      this.plainNode.textContent = toLf(text);
    }
    const lines = text.split(LINE_BREAK);
    if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
    this.zone.heightInLines = Math.max(1, lines.length);
    const longest = lines.reduce((most, line) => Math.max(most, line.length), 0);
    this.zone.minWidthInPx = Math.ceil((longest + 2) * this.charWidth);
    this.layout();
    if (follow) this.revealBottom();
    this.scheduleColorize(final);
  }

  // The view follows the new text while its end is in view and the person is not typing in the
  // editor (then they keep the scroll position).
  isFollowing() {
    if (!this.zoneId || this.editor.hasTextFocus() || this.editor.getModel() !== this.model) {
      return false;
    }
    const lineHeight = this.editor.getOption(this.monaco.editor.EditorOption.lineHeight);
    const top = this.editor.getScrollTop();
    const bottom = this.zoneBottom();
    return bottom >= top && bottom <= top + this.editor.getLayoutInfo().height + 2 * lineHeight;
  }

  zoneBottom() {
    const next = this.zone.afterLineNumber + 1;
    return next <= this.model.getLineCount()
      ? this.editor.getTopForLineNumber(next)
      : this.editor.getScrollHeight();
  }

  revealBottom() {
    const wanted = this.zoneBottom() - this.editor.getLayoutInfo().height;
    if (wanted > this.editor.getScrollTop()) {
      this.editor.setScrollTop(wanted, this.monaco.editor.ScrollType.Immediate);
    }
  }

  layout() {
    if (this.disposed) return;
    this.zone.afterLineNumber = this.anchorLine();
    this.editor.changeViewZones((accessor) => accessor.layoutZone(this.zoneId));
  }

  // Highlights the complete lines (all of it once final), off the hot path.
  scheduleColorize(final) {
    clearTimeout(this.colorTimer);
    this.colorTimer = setTimeout(() => this.colorize(final), final ? 0 : COLORIZE_DELAY_MS);
  }

  async colorize(final) {
    const text = this.shown;
    const match = final ? null : /(\r\n|\r|\n)[^\r\n]*$/.exec(text);
    const upTo = final ? text.length : match ? match.index + match[1].length : 0;
    const lines = toLf(text.slice(0, upTo)).replace(/\n$/, '');
    if (!upTo || text.slice(0, upTo) === this.colored) return;
    const scratch = document.createElement('div');
    scratch.textContent = lines;
    try {
      await this.monaco.editor.colorizeElement(scratch, {
        theme: monacoTheme(),
        mimeType: this.model.getLanguageId(),
        tabSize: this.model.getOptions().tabSize,
      });
    } catch {
      return; // plain text is right, just not highlighted
    }
    if (this.disposed || !this.shown.startsWith(text.slice(0, upTo))) return;
    this.colored = text.slice(0, upTo);
    this.coloredNode.replaceChildren(...scratch.childNodes);
    const rest = this.shown.slice(upTo);
    // The colorizer ends every line with <br>: a rest that starts a line needs no break of its own.
    this.plainNode.textContent = toLf(rest);
  }
}

function toLf(text) {
  return text.replace(/\r\n?/g, '\n');
}
