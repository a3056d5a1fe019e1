// Access token handling and fetch helpers for the console pages.
//
// The token arrives once as ?token=… in the address, is kept in sessionStorage (so a reload
// keeps working and closing the tab forgets it) and is removed from the address bar, so it
// does not linger in the history or on a screenshot of the wall.

const STORAGE_KEY = 'fieldvideo.token';

// REQUEST_TIMEOUT_MS bounds an API request, so a dead network shows up as an error instead of
// a request that never ends.
export const REQUEST_TIMEOUT_MS = 8000;

// APIError is a failed API request. status is the HTTP status, or 0 when the server could not
// be reached; message is the server's plain-text reason when it gave one.
export class APIError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'APIError';
    this.status = status;
  }

  // unauthorized tells whether a new token is needed.
  get unauthorized() {
    return this.status === 401;
  }
}

// takeToken returns the page's token: the ?token= parameter when present (which it stores and
// removes from the address bar), else the stored one, else ''.
export function takeToken(loc = window.location, storage = window.sessionStorage) {
  const url = new URL(loc.href);
  const fromURL = url.searchParams.get('token');
  if (fromURL !== null) {
    url.searchParams.delete('token');
    window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
    const token = fromURL.trim();
    if (token) {
      saveToken(token, storage);
      return token;
    }
  }
  try {
    return storage.getItem(STORAGE_KEY) ?? '';
  } catch {
    return ''; // storage disabled: the token must come with every load
  }
}

// saveToken keeps token for the rest of the browser tab's life.
export function saveToken(token, storage = window.sessionStorage) {
  try {
    storage.setItem(STORAGE_KEY, token);
  } catch {
    // storage disabled or full: the token still works for this page load.
  }
}

// forgetToken removes the stored token, after the server refused it.
export function forgetToken(storage = window.sessionStorage) {
  try {
    storage.removeItem(STORAGE_KEY);
  } catch {
    // nothing stored.
  }
}

// authHeaders returns the headers that carry token.
export function authHeaders(token, extra = {}) {
  return { ...extra, Authorization: `Bearer ${token}` };
}

// timeoutSignal returns a signal that aborts after ms, or when signal aborts.
export function timeoutSignal(ms, signal) {
  const t = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([t, signal]) : t;
}

// request runs fetch with a timeout and turns network failures into an APIError with status 0.
export async function request(url, init = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
  try {
    return await fetch(url, { ...init, signal: timeoutSignal(timeoutMs, init.signal) });
  } catch (err) {
    if (init.signal?.aborted) throw err;
    const why = err?.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : `${err?.message ?? err}`;
    throw new APIError(`cannot reach the server (${why}); check the network`, 0);
  }
}

// reasonOf returns the plain-text reason of a failed response, or its status line.
export async function reasonOf(res) {
  let text = '';
  try {
    text = (await res.text()).trim();
  } catch {
    // the body could not be read: the status says enough.
  }
  if (text.length > 300) text = `${text.slice(0, 300)}…`;
  return text || `${res.status} ${res.statusText || 'error'}`.trim();
}

// fetchSources returns the sources the token may view, as GET /v1/sources lists them, ordered
// by name. It throws an APIError when the request fails or the answer is not a source list.
export async function fetchSources(token, { signal } = {}) {
  const res = await request('/v1/sources', { headers: authHeaders(token), cache: 'no-store', signal });
  if (!res.ok) throw new APIError(await reasonOf(res), res.status);
  let body;
  try {
    body = await res.json();
  } catch {
    throw new APIError('the server sent a source list that is not JSON', res.status);
  }
  if (!body || !Array.isArray(body.sources)) {
    throw new APIError('the server sent no "sources" list', res.status);
  }
  return body.sources
    .filter((s) => s && typeof s.name === 'string' && s.name !== '')
    .map(normalizeSource)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function normalizeSource(s) {
  const tracks = Array.isArray(s.tracks) ? s.tracks.filter((t) => t && typeof t.kind === 'string') : [];
  return {
    name: s.name,
    live: s.state === 'live',
    since: typeof s.since === 'string' ? s.since : '',
    tracks,
    hasAudio: tracks.some((t) => t.kind === 'audio' && t.relayable !== false),
    viewers: Number(s.viewers) || 0,
    bitrate: Number(s.bitrate_bps) || 0,
    publisher: typeof s.publisher === 'string' ? s.publisher : '',
  };
}

// formatBitrate renders bits per second for a label: "850 kbit/s", "2.4 Mbit/s".
export function formatBitrate(bps) {
  if (!Number.isFinite(bps) || bps <= 0) return '—';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(bps >= 1e7 ? 0 : 1)} Mbit/s`;
  return `${Math.max(1, Math.round(bps / 1e3))} kbit/s`;
}
