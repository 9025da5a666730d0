/*
 * The event stream of one job (docs/protocol.md), kept alive until the job ends. The browser's
 * EventSource reconnects by itself and sends Last-Event-ID, from which the server resumes
 * exactly; this only watches it, and takes over when the browser gives up: the job's record then
 * says whether the job ended or the stream must be resumed by hand, after the last event seen.
 * What the events mean to the page is the caller's business (see JobStream's hooks).
 */

import { HttpError, readJob, resumeUrl, TERMINAL_STATES } from './api.js';

const SERVER_EVENTS = ['status', 'token', 'reset', 'done', 'failed', 'cancelled'];
const MAX_MANUAL_RESUMES = 5;

export class JobStream {
  /**
   * @param job `{ id, token, eventsUrl }`
   * @param hooks
   *   headers(): request headers for reading the record (the API key);
   *   onConn(state): 'connecting', 'live', 'reconnecting' or 'closed';
   *   onEvent(name, data): a server event with its parsed data;
   *   onEnded(record): the browser gave up and the record shows the job ended;
   *   onUnavailable(error): the record cannot be read and asking again will not change that;
   *   onLost(): too many resumes by hand failed.
   * Nothing is reported after close().
   */
  constructor({ id, token, eventsUrl }, hooks) {
    this.id = id;
    this.token = token;
    this.eventsUrl = eventsUrl;
    this.hooks = hooks;
    this.es = null;
    this.lastEventId = '';
    this.closed = false;
    this.reconnects = 0;
    this.manualResumes = 0;
  }

  /** Connects to `url` (the stream from its start unless resuming). */
  open(url = this.eventsUrl) {
    const es = new EventSource(url);
    this.es = es;
    this.hooks.onConn('connecting');
    es.addEventListener('open', () => this.onOpen(es));
    es.addEventListener('error', () => this.onError(es));
    for (const name of SERVER_EVENTS) {
      es.addEventListener(name, (event) => this.onServerEvent(es, name, event));
    }
  }

  /** Stops for good: the job ended, or the page no longer shows it. */
  close() {
    this.closed = true;
    if (this.es) this.es.close();
  }

  isStale(es) {
    return this.closed || es !== this.es;
  }

  onOpen(es) {
    if (this.isStale(es)) return;
    this.manualResumes = 0;
    this.hooks.onConn('live');
  }

  // EventSource's own `error` is about the connection, never a server event (that one is
  // `failed`).
  onError(es) {
    if (this.isStale(es)) return;
    if (es.readyState === EventSource.CONNECTING) {
      this.reconnects += 1;
      this.hooks.onConn('reconnecting');
      return;
    }
    // CLOSED: the browser gave up (204 after the end, 404, a proxy's 502...). Ask the record.
    this.hooks.onConn('closed');
    this.settleFromRecord();
  }

  onServerEvent(es, name, event) {
    if (this.isStale(es)) return;
    if (event.lastEventId) this.lastEventId = event.lastEventId;
    let data;
    try {
      data = event.data ? JSON.parse(event.data) : {};
    } catch (error) {
      console.error(`tokenrelay: ${name} event ${event.lastEventId} has bad data:`, error.message);
      return;
    }
    this.hooks.onEvent(name, data);
  }

  // The browser stopped reconnecting. The record says whether the job ended (then it holds the
  // whole output) or is still going (then we resume by hand, with ?last_event_id=).
  async settleFromRecord() {
    let record;
    try {
      record = await readJob(this.id, this.token, this.hooks.headers());
    } catch (error) {
      if (this.closed) return;
      if (error instanceof HttpError && error.final) {
        this.hooks.onUnavailable(error);
      } else {
        this.resumeByHand(); // the network or the gateway is down for now
      }
      return;
    }
    if (this.closed) return;
    if (!TERMINAL_STATES.has(record.status)) {
      this.resumeByHand();
      return;
    }
    this.hooks.onEnded(record);
  }

  resumeByHand() {
    if (this.manualResumes >= MAX_MANUAL_RESUMES) {
      this.hooks.onLost();
      return;
    }
    this.manualResumes += 1;
    this.reconnects += 1;
    this.hooks.onConn('reconnecting');
    setTimeout(
      () => {
        if (!this.closed) this.open(resumeUrl(this.eventsUrl, this.lastEventId));
      },
      1000 * 2 ** (this.manualResumes - 1),
    );
  }
}
