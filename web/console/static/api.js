// Access token handling and fetch helpers for the console pages.
//
// The token arrives once as ?token=… in the address, is kept in sessionStorage (so a reload
// keeps working and closing the tab forgets it) and is removed from the address bar, so it
// does not linger in the history or on a screenshot of the wall.
//
// Single sign-on (signin.html) stores its access token in the same place, and its refresh token
// beside it (saveSignIn). A page that took its token with takeToken then keeps it fresh by
// itself: before the access token expires it is refreshed (refresh_token grant) by a hidden
// signin.html frame (the pages' Content-Security-Policy lets them talk to this server only; the
// sign-in page may talk to the provider); the new token is stored, authHeaders sends it in place
// of the one it replaced, onTokenChange listeners hear of it, and the WHIP/WHEP sessions this page
// opened through request() are renewed with it (an empty trickle PATCH), so that they outlive
// the token they were opened with. When refreshing fails for good the page shows "Signed out:
// sign in again" with a link to signin.html (signInURL).

import { register, t } from './i18n.js';

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
  let token = '';
  try {
    token = storage.getItem(STORAGE_KEY) ?? '';
  } catch {
    return ''; // storage disabled: the token must come with every load
  }
  if (token && storage === window.sessionStorage) keepFresh();
  return token;
}

// saveToken keeps token for the rest of the browser tab's life. A token other than the one
// single sign-on stored ends that sign-in's refreshing (a pasted token replaces it).
export function saveToken(token, storage = window.sessionStorage) {
  try {
    if (storage === window.sessionStorage && token !== storage.getItem(STORAGE_KEY)) forgetSignIn();
    storage.setItem(STORAGE_KEY, token);
  } catch {
    // storage disabled or full: the token still works for this page load.
  }
  tokenChanged(storage);
}

// storedToken returns the token this tab keeps ('' for none).
export function storedToken(storage = window.sessionStorage) {
  try {
    return storage.getItem(STORAGE_KEY) ?? '';
  } catch {
    return '';
  }
}

// tokenChanged tells the page (a 'tokenchange' event on window) that the tab's stored token
// changed: the navigation shows or hides its sign-out button.
function tokenChanged(storage) {
  if (typeof window !== 'undefined' && storage === window.sessionStorage) window.dispatchEvent(new Event('tokenchange'));
}

// forgetToken removes the stored token, after the server refused it, and the single sign-on
// that stored it, if any.
export function forgetToken(storage = window.sessionStorage) {
  try {
    storage.removeItem(STORAGE_KEY);
    if (storage === window.sessionStorage) forgetSignIn();
  } catch {
    // nothing stored.
  }
  tokenChanged(storage);
}

// signOut ends this tab's sign-in: the server revokes the stored token, which ends the live
// sessions opened with it, and the tab forgets it and its single sign-on. It returns {why,
// endSession}: why is '' when the server revoked the token (or had already refused it), else
// why it could not (the tab forgets the token either way); endSession, when not '', is the
// provider's page that ends its own session, for the caller to go to.
export async function signOut(storage = window.sessionStorage) {
  const token = storedToken(storage);
  let why = '';
  if (token) {
    try {
      const res = await request('/v1/signout', { method: 'POST', headers: authHeaders(token) });
      if (!res.ok && res.status !== 401) why = await reasonOf(res);
    } catch (err) {
      why = err?.message ?? `${err}`;
    }
  }
  const sso = readSSO();
  forgetToken(storage);
  try {
    storage.setItem(SIGNED_OUT_KEY, why || 'ok');
  } catch {
    // storage disabled: the sign-in page cannot say it.
  }
  return { why, endSession: endSessionURL(sso) };
}

const SIGNED_OUT_KEY = 'fieldvideo.signedout';

// takeSignedOut returns what the last signOut of this tab left for the sign-in page to say
// ('ok', or why the server did not revoke the token; '' when the tab did not sign out), once.
export function takeSignedOut(storage = window.sessionStorage) {
  try {
    const v = storage.getItem(SIGNED_OUT_KEY) ?? '';
    storage.removeItem(SIGNED_OUT_KEY);
    return v;
  } catch {
    return '';
  }
}

// endSessionURL returns where to end the single sign-on's session at the provider (OpenID
// RP-initiated logout), coming back to the sign-in page; '' when the provider has no such
// endpoint or the token was pasted. Without it, the provider's session would sign the next
// person at this browser in again with one click.
function endSessionURL(sso) {
  if (!sso?.endSessionEndpoint) return '';
  let u;
  try {
    u = new URL(sso.endSessionEndpoint);
  } catch {
    return '';
  }
  if (u.protocol !== 'https:' && !['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) return '';
  if (sso.idToken) u.searchParams.set('id_token_hint', sso.idToken);
  if (sso.clientID) u.searchParams.set('client_id', sso.clientID);
  u.searchParams.set('post_logout_redirect_uri', new URL('signin.html', window.location.href).href);
  return u.href;
}

// authHeaders returns the headers that carry token. When token is one this page's single
// sign-on has since refreshed, the current token is sent instead.
export function authHeaders(token, extra = {}) {
  return { ...extra, Authorization: `Bearer ${freshToken(token)}` };
}

// timeoutSignal returns a signal that aborts after ms, or when signal aborts.
export function timeoutSignal(ms, signal) {
  const t = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([t, signal]) : t;
}

// request runs fetch with a timeout and turns network failures into an APIError with status 0.
export async function request(url, init = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
  try {
    const res = await fetch(url, { ...init, signal: timeoutSignal(timeoutMs, init.signal) });
    noteSession(url, init, res);
    return res;
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
    reporter: typeof s.reporter === 'string' ? s.reporter : '',
    kind: typeof s.kind === 'string' ? s.kind : '',
    incident: typeof s.incident === 'string' ? s.incident : '',
    note: typeof s.note === 'string' ? s.note : '',
    // position is {lat, lon, accuracy_m, heading?, at} as the server sent it, or null.
    position: s.position && typeof s.position === 'object' ? s.position : null,
  };
}

// formatBitrate renders bits per second for a label: "850 kbit/s", "2.4 Mbit/s".
export function formatBitrate(bps) {
  if (!Number.isFinite(bps) || bps <= 0) return '—';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(bps >= 1e7 ? 0 : 1)} Mbit/s`;
  return `${Math.max(1, Math.round(bps / 1e3))} kbit/s`;
}

// ---- single sign-on: the refresh token beside the access token, and keeping it fresh ----

register({
  en: {
    'signin.signedOut': 'Signed out: sign in again.',
    'signin.signedOut.link': 'Sign in again',
    'signin.signedOut.why': 'The sign-in could not be renewed: {reason}',
  },
  'zh-TW': {
    'signin.signedOut': '已登出：請重新登入。',
    'signin.signedOut.link': '重新登入',
    'signin.signedOut.why': '無法延長登入：{reason}',
  },
});

const SSO_KEY = 'fieldvideo.sso';
// REFRESH_FRAME_MS bounds a refresh by the hidden sign-in frame.
const REFRESH_FRAME_MS = 20000;
// RETRY_MS is the wait before trying a refresh again after the network failed.
const RETRY_MS = 5000;
// MAX_SESSIONS bounds the WHIP/WHEP sessions remembered for renewal.
const MAX_SESSIONS = 64;

const keeper = {
  started: false,
  timer: 0,
  refreshing: null,
  // superseded are the access tokens this page's refreshes replaced.
  superseded: new Set(),
  listeners: new Set(),
  // sessions are the WHIP/WHEP resources opened through request(), to renew with a new token.
  sessions: new Set(),
};

function readSSO() {
  try {
    const v = JSON.parse(window.sessionStorage.getItem(SSO_KEY) ?? 'null');
    return v && typeof v.refreshToken === 'string' && typeof v.tokenEndpoint === 'string' ? v : null;
  } catch {
    return null;
  }
}

// jwtClaims returns the claims of a JWT without checking it (the server does), or null.
export function jwtClaims(token) {
  const part = String(token ?? '').split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

// saveSignIn stores what single sign-on obtained: the access token where takeToken finds it,
// and beside it what refreshing needs. expiresIn is the token endpoint's expires_in (seconds).
export function saveSignIn({ accessToken, refreshToken = '', expiresIn = 0, tokenEndpoint, clientID, issuer, endSessionEndpoint = '', idToken = '' }) {
  const exp = Number(jwtClaims(accessToken)?.exp) * 1000;
  const state = {
    refreshToken,
    tokenEndpoint,
    clientID,
    issuer,
    endSessionEndpoint,
    idToken,
    obtainedAt: Date.now(),
    expiresAt: Number.isFinite(exp) && exp > 0 ? exp : Date.now() + (Number(expiresIn) > 0 ? Number(expiresIn) * 1000 : 300000),
  };
  try {
    window.sessionStorage.setItem(STORAGE_KEY, accessToken);
    if (refreshToken) window.sessionStorage.setItem(SSO_KEY, JSON.stringify(state));
    else window.sessionStorage.removeItem(SSO_KEY);
  } catch {
    // storage disabled: the token works for this page load only.
  }
}

// signedIn returns the stored single sign-on ({issuer, clientID, expiresAt, idToken, …}), or
// null when the token was pasted or there is none.
export function signedIn() {
  return readSSO();
}

// forgetSignIn drops the refresh token and stops refreshing; the access token stays.
export function forgetSignIn() {
  clearTimeout(keeper.timer);
  keeper.timer = 0;
  try {
    window.sessionStorage.removeItem(SSO_KEY);
  } catch {
    // nothing stored.
  }
}

// onTokenChange calls listener(token) with each new access token a refresh obtains; it returns
// a function that stops the calls.
export function onTokenChange(listener) {
  keeper.listeners.add(listener);
  return () => keeper.listeners.delete(listener);
}

function freshToken(token) {
  return keeper.superseded.has(token) ? storedToken() || token : token;
}

// currentToken returns the token to send now in place of token (the one a page started with):
// the newer one when a refresh has replaced it, else token itself; with no argument, the stored
// one. For URLs that must carry the token (?token= on media elements, WebSocket joins).
export function currentToken(token = '') {
  return token ? freshToken(token) : storedToken();
}

// safeReturn returns value when it is a page of this site (a relative path such as
// "index.html" or "review.html?incident=x"), else ''.
export function safeReturn(value, loc = window.location) {
  if (typeof value !== 'string' || value === '' || value.length > 2000) return '';
  if (/^[a-z][a-z0-9+.-]*:/i.test(value) || value.startsWith('//') || /[\\\s]/.test(value)) return '';
  let u;
  try {
    u = new URL(value, loc.href);
  } catch {
    return '';
  }
  if (u.origin !== loc.origin || u.pathname.endsWith('/signin.html')) return '';
  if (u.searchParams.has('token')) u.searchParams.delete('token');
  return (u.pathname.replace(/^.*\//, '') || 'index.html') + u.search + u.hash;
}

// signInURL returns the address of the sign-in page, which comes back to returnTo (by default
// the page showing now) once signed in.
export function signInURL(returnTo) {
  const back = safeReturn(returnTo ?? `${window.location.pathname.replace(/^.*\//, '') || 'index.html'}${window.location.search}${window.location.hash}`);
  return back ? `signin.html?return=${encodeURIComponent(back)}` : 'signin.html';
}

// keepFresh schedules the next refresh of a signed-in token (once per page).
function keepFresh() {
  if (keeper.started || !readSSO()) return;
  keeper.started = true;
  schedule();
}

function schedule(delayMs) {
  clearTimeout(keeper.timer);
  const sso = readSSO();
  if (!sso) return;
  let delay = delayMs;
  if (delay === undefined) {
    // refresh when three quarters of the token's life are gone, or a minute before it ends,
    // whichever is later.
    const life = sso.expiresAt - sso.obtainedAt;
    delay = sso.obtainedAt + Math.max(life * 0.75, life - 60000) - Date.now();
  }
  keeper.timer = setTimeout(() => refreshSoon(), Math.min(Math.max(delay, 0), 3600000));
}

async function refreshSoon() {
  const sso = readSSO();
  if (!sso) return;
  const before = storedToken();
  const life = sso.expiresAt - sso.obtainedAt;
  if (Date.now() < sso.obtainedAt + Math.max(life * 0.75, life - 60000) - 1000) {
    schedule(); // a long timer woke early: wait on.
    return;
  }
  const r = await refreshAccessToken();
  if (r.ok) {
    const token = storedToken();
    if (token && token !== before) {
      keeper.superseded.add(before);
      for (const l of keeper.listeners) {
        try {
          l(token);
        } catch (err) {
          console.warn(`api: a token listener failed: ${err?.message ?? err}`);
        }
      }
      renewSessions(token);
    }
    document.getElementById('signed-out')?.remove();
    schedule();
    return;
  }
  console.warn(`api: the sign-in could not be renewed: ${r.reason}`);
  if (!r.fatal) {
    // the network or the provider failed: keep trying (the refresh token may well outlive the
    // outage), and say so once the access token has run out.
    if (Date.now() >= sso.expiresAt) showSignedOut(r.reason);
    schedule(RETRY_MS);
    return;
  }
  forgetSignIn();
  showSignedOut(r.reason);
}

// refreshAccessToken obtains a new access token with the refresh token, by the hidden sign-in
// frame (or here, on the sign-in page). It resolves to {ok, fatal, reason}; fatal means trying
// again will not help.
export function refreshAccessToken() {
  keeper.refreshing ??= (window.location.pathname.endsWith('/signin.html') ? refreshHere() : refreshInFrame()).finally(() => {
    keeper.refreshing = null;
  });
  return keeper.refreshing;
}

// refreshHere runs the refresh_token grant at the provider's token endpoint and stores the
// tokens it gives. Only the sign-in page may reach the provider (its Content-Security-Policy).
export async function refreshHere() {
  const sso = readSSO();
  if (!sso) return { ok: false, fatal: true, reason: 'this tab holds no sign-in to renew' };
  const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: sso.refreshToken, client_id: sso.clientID });
  let res;
  try {
    res = await fetch(sso.tokenEndpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body,
      credentials: 'omit',
      cache: 'no-store',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    return { ok: false, fatal: false, reason: `cannot reach the sign-in service (${err?.message ?? err})` };
  }
  let data = {};
  try {
    data = await res.json();
  } catch {
    // the status says enough.
  }
  if (!res.ok) {
    const why = [data?.error, data?.error_description].filter((x) => typeof x === 'string' && x).join(': ');
    return { ok: false, fatal: res.status >= 400 && res.status < 500, reason: why || `the sign-in service answered ${res.status}` };
  }
  if (typeof data?.access_token !== 'string' || data.access_token === '') {
    return { ok: false, fatal: true, reason: 'the sign-in service answered without an access token' };
  }
  saveSignIn({
    ...sso,
    accessToken: data.access_token,
    refreshToken: typeof data.refresh_token === 'string' && data.refresh_token ? data.refresh_token : sso.refreshToken,
    expiresIn: data.expires_in,
    idToken: typeof data.id_token === 'string' ? data.id_token : sso.idToken,
  });
  return { ok: true, fatal: false, reason: '' };
}

// refreshInFrame asks a hidden signin.html#refresh frame (same origin, same sessionStorage) to
// refresh, and waits for its answer.
function refreshInFrame() {
  return new Promise((resolve) => {
    const frame = document.createElement('iframe');
    frame.hidden = true;
    frame.tabIndex = -1;
    frame.title = 'sign-in renewal';
    frame.setAttribute('aria-hidden', 'true');
    const done = (r) => {
      clearTimeout(timer);
      window.removeEventListener('message', onMessage);
      frame.remove();
      resolve(r);
    };
    const onMessage = (ev) => {
      if (ev.source !== frame.contentWindow || ev.origin !== window.location.origin) return;
      const d = ev.data;
      if (!d || d.type !== 'fieldvideo.refresh') return;
      done({ ok: d.ok === true, fatal: d.fatal === true, reason: String(d.reason ?? '') });
    };
    const timer = setTimeout(() => done({ ok: false, fatal: false, reason: `the sign-in page did not answer within ${REFRESH_FRAME_MS / 1000} s` }), REFRESH_FRAME_MS);
    window.addEventListener('message', onMessage);
    frame.src = new URL('signin.html#refresh', window.location.href).href;
    document.body.append(frame);
  });
}

// noteSession remembers the resource a WHIP/WHEP offer created, to renew it with new tokens.
function noteSession(url, init, res) {
  if (res.status !== 201 || String(init.method ?? '').toUpperCase() !== 'POST') return;
  const type = new Headers(init.headers ?? {}).get('Content-Type') ?? '';
  const loc = res.headers.get('Location');
  if (!loc || !type.startsWith('application/sdp')) return;
  try {
    keeper.sessions.add(new URL(loc, new URL(url, window.location.href)).href);
  } catch {
    return;
  }
  if (keeper.sessions.size > MAX_SESSIONS) keeper.sessions.delete(keeper.sessions.values().next().value);
}

// renewSessions sends token to every remembered session (an empty trickle PATCH), which ties
// the session to it; sessions that ended are forgotten.
function renewSessions(token) {
  for (const loc of keeper.sessions) {
    fetch(loc, {
      method: 'PATCH',
      headers: authHeaders(token, { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': '*' }),
      body: '',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    }).then((res) => {
      if (res.status === 404) keeper.sessions.delete(loc);
      else if (!res.ok) console.warn(`api: renewing ${loc} with the new token: ${res.status}`);
    }, (err) => {
      console.warn(`api: renewing ${loc} with the new token: ${err?.message ?? err}`);
    });
  }
}

// showSignedOut tells the user that the sign-in ended, with a link to sign in again.
function showSignedOut(reason) {
  if (typeof document === 'undefined' || !document.body) return;
  let el = document.getElementById('signed-out');
  if (!el) {
    el = document.createElement('p');
    el.id = 'signed-out';
    el.className = 'signed-out';
    el.setAttribute('role', 'alert');
    Object.assign(el.style, { margin: '0', padding: '0.6em 1em', background: '#5a1d1d', color: '#fff', fontWeight: '700' });
    document.body.prepend(el);
  }
  const text = document.createElement('span');
  text.textContent = `${t('signin.signedOut')} `;
  text.title = t('signin.signedOut.why', { reason });
  const link = document.createElement('a');
  link.href = signInURL();
  link.textContent = t('signin.signedOut.link');
  Object.assign(link.style, { color: '#cfe4ff' });
  el.replaceChildren(text, link);
}
