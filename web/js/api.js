/*
 * The gateway's HTTP API, as the page uses it (the job record and event stream are described in
 * docs/protocol.md). One place turns every refusal into an HttpError with a line a person can
 * read, so no caller has to know the error body's shape.
 *
 * Every request function throws an HttpError for an answer that is not 2xx and a TypeError when
 * the network fails.
 */

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
  }

  // Asking again will not change a 4xx, except a timeout or a rate limit.
  get final() {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

/** Job statuses after which nothing more happens: the record then holds the whole output. */
export const TERMINAL_STATES = new Set(['done', 'failed', 'cancelled']);

// What each status means to the person at the page; the server's own message follows it.
const STATUS_HINTS = {
  400: 'The request was refused',
  401: 'An API key is needed',
  403: 'Not allowed',
  404: 'No such job (it may have expired)',
  413: 'Too large (the prompt, the selection, or the document sent with it)',
  429: 'Too many requests: wait a moment and try again',
  503: 'The service is not ready',
};

/** GET /v1/meta: languages, models, default_model, auth, simulated_upstream. */
export async function readMeta() {
  return requestJson('/v1/meta', { method: 'GET' });
}

/**
 * POST /v1/jobs: answers 202 with id, status, events_url, viewer_token, cancel_token. `fields`:
 * prompt, and optionally language, model, temperature, max_tokens, session and target (an edit
 * of a document: docs/protocol.md, "Edits"); undefined ones are left out.
 */
export async function createJob(fields, headers) {
  return requestJson('/v1/jobs', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(fields),
  });
}

/** DELETE /v1/jobs/{id}: the stream then ends with `cancelled`. */
export async function cancelJob(id, headers) {
  return requestJson(`/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE', headers });
}

/** GET /v1/jobs/{id}: the job's record (status, prompt, language, model, output, viewers...). */
export async function readJob(id, token, headers) {
  return requestJson(`/v1/jobs/${encodeURIComponent(id)}?token=${encodeURIComponent(token)}`, {
    method: 'GET',
    headers,
  });
}

/** GET /v1/jobs/{id}/viewers: `{ id, viewers }`, the job's viewers on every gateway. */
export async function readViewers(id, token, headers) {
  const query = `token=${encodeURIComponent(token)}`;
  return requestJson(`/v1/jobs/${encodeURIComponent(id)}/viewers?${query}`, {
    method: 'GET',
    headers,
  });
}

/** The event stream of a job from its start (EventSource cannot send headers: token in query). */
export function eventsUrl(id, token) {
  return `/v1/jobs/${encodeURIComponent(id)}/events?token=${encodeURIComponent(token)}`;
}

/** The same stream resumed after `lastEventId`, for a resume the page starts itself. */
export function resumeUrl(url, lastEventId) {
  if (!lastEventId) return url;
  return `${url}${url.includes('?') ? '&' : '?'}last_event_id=${encodeURIComponent(lastEventId)}`;
}

/** One line for the person at the page, for anything the functions above throw. */
export function describeFailure(error) {
  return error instanceof HttpError
    ? error.message
    : `Could not reach the server (${error.message})`;
}

async function requestJson(url, { method, headers = {}, body }) {
  const response = await fetch(url, {
    method,
    headers: { Accept: 'application/json', ...headers },
    body,
  });
  if (!response.ok) throw new HttpError(response.status, await describeHttpError(response));
  return response.status === 204 ? {} : response.json();
}

// Turns the contract's {"error": {"code", "message"}} (or a proxy's HTML page) into one line.
async function describeHttpError(response) {
  let code = '';
  let message = '';
  try {
    const body = await response.json();
    if (body && body.error) ({ code = '', message = '' } = body.error);
  } catch {
    // Not JSON: the status line below says all we know.
  }
  const hint =
    STATUS_HINTS[response.status] || `HTTP ${response.status} ${response.statusText}`.trim();
  const details = [message, code && `(${code})`].filter(Boolean).join(' ');
  return details ? `${hint}: ${details}` : hint;
}
