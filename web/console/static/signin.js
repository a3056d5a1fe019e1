// The sign-in page: single sign-on at the provider the server names (OpenID Connect,
// authorization code flow with PKCE S256, state and nonce checked), or an access token pasted
// by hand (kiosks, devices without an account).
//
//   signin.html?return=index.html   start; comes back to the page named (this site's only)
//   signin.html?code=…&state=…      the provider's answer: the code is exchanged for tokens at
//                                   the provider's token endpoint, straight from the browser
//   signin.html#refresh             in a hidden frame of another page: renews the access token
//                                   (api.js refreshAccessToken) and tells the page
//
// The PKCE verifier, state and nonce live in sessionStorage only between leaving for the
// provider and coming back, and are removed as soon as the answer is read. The tokens are
// checked with this server (GET /v1/sources) before the page goes on, so that a token the
// server refuses (no role, another audience, expired) is explained here.

import { APIError, authHeaders, reasonOf, refreshHere, request, safeReturn, saveSignIn, saveToken, signedIn, jwtClaims, takeSignedOut } from './api.js';
import { register, t } from './i18n.js';
import { mountNav, pageTitle } from './nav.js';

register({
  en: {
    'signin.title': 'Sign in',
    'signin.sso.heading': 'Single sign-on',
    'signin.sso.loading': 'Looking up the sign-in service…',
    'signin.sso.button': 'Sign in with {host}',
    'signin.sso.ready': 'Sign in with your organisation account.',
    'signin.sso.leaving': 'Going to {host}…',
    'signin.sso.finishing': 'Finishing the sign-in…',
    'signin.sso.checking': 'Checking the token with this server…',
    'signin.sso.none': 'Single sign-on is not set up on this server.',
    'signin.sso.none.todo': 'Paste the access token you were given below.',
    'signin.sso.signedIn': 'Signed in as {name}.',
    'signin.err.config': 'Single sign-on is unavailable right now: {reason}',
    'signin.err.config.todo': 'Try again in a minute, or paste an access token below. If it persists, tell the administrator of this server.',
    'signin.err.insecure': 'Single sign-on needs a secure connection, and this page was loaded over plain http from {host}.',
    'signin.err.insecure.todo': 'Open the console by its https address, or paste an access token below.',
    'signin.err.provider': 'The sign-in service refused the sign-in: {reason}',
    'signin.err.provider.todo': 'Sign in again. If it is refused again, ask your administrator whether your account may use this console.',
    'signin.err.cancelled': 'The sign-in was cancelled at the sign-in service.',
    'signin.err.state': 'This answer from the sign-in service does not belong to a sign-in started in this tab (it may be old, or from another tab).',
    'signin.err.state.todo': 'Start the sign-in again from this page.',
    'signin.err.check': 'The sign-in answer failed a safety check: {reason}',
    'signin.err.token': 'The sign-in service refused to issue a token: {reason}',
    'signin.err.token.todo': 'Start the sign-in again. If it fails again, tell the administrator of the sign-in service.',
    'signin.err.unreachable': 'Cannot reach the sign-in service at {host} to finish signing in ({reason}).',
    'signin.err.unreachable.todo': 'Check the network and start again. If it persists, the sign-in service may not allow this site ({origin}): ask its administrator to allow this origin (CORS).',
    'signin.err.norole': 'You signed in as {name}, but your account has no role on this server (the token carries no role claim).',
    'signin.err.norole.todo': 'Ask your administrator to give your account a role for this console (for example wall, operator or reviewer), then sign in again.',
    'signin.err.audience': 'The token from {host} is not meant for this server (its audience is wrong).',
    'signin.err.audience.todo': 'Tell the administrator: the provider must issue the console\'s tokens for this server\'s audience (auth.oidc.audience).',
    'signin.err.expired': 'The token from {host} had already expired when this server checked it.',
    'signin.err.expired.todo': 'Check that the clock of this device and of the server are right, then sign in again.',
    'signin.err.refused': 'This server refused the token: {reason}',
    'signin.err.refused.todo': 'Sign in again; if it is refused again, show this message to your administrator.',
    'signin.err.server': 'Cannot check the token with this server: {reason}',
    'signin.err.server.todo': 'Check the network and try again.',
    'signin.paste.heading': 'Or paste an access token',
    'signin.paste.label': 'Access token (for kiosks and devices without an account):',
    'signin.paste.submit': 'Use this token',
    'signin.paste.empty': 'Paste a token first: the field is empty.',
    'signin.paste.refused': 'The server refused this token: {reason}. Paste a valid token.',
    'signin.signedOut': 'Signed out: the server refuses that token from now on.',
    'signin.signedOut.local': 'Signed out of this tab, but the server did not revoke the token: {reason}. Anyone holding a copy can use it until it expires; ask an operator to revoke it.',
  },
  'zh-TW': {
    'signin.title': '登入',
    'signin.sso.heading': '單一登入',
    'signin.sso.loading': '正在查詢登入服務…',
    'signin.sso.button': '以 {host} 登入',
    'signin.sso.ready': '請以您單位的帳號登入。',
    'signin.sso.leaving': '正在前往 {host}…',
    'signin.sso.finishing': '正在完成登入…',
    'signin.sso.checking': '正在向本伺服器確認權杖…',
    'signin.sso.none': '本伺服器尚未設定單一登入。',
    'signin.sso.none.todo': '請在下方貼上您取得的存取權杖。',
    'signin.sso.signedIn': '已以 {name} 登入。',
    'signin.err.config': '目前無法使用單一登入：{reason}',
    'signin.err.config.todo': '請稍候一分鐘再試，或在下方貼上存取權杖。若問題持續，請通知本伺服器的管理員。',
    'signin.err.insecure': '單一登入需要安全連線，但此頁面是以未加密的 http 從 {host} 載入。',
    'signin.err.insecure.todo': '請以 https 網址開啟主控台，或在下方貼上存取權杖。',
    'signin.err.provider': '登入服務拒絕了這次登入：{reason}',
    'signin.err.provider.todo': '請重新登入。若仍被拒絕，請向管理員確認您的帳號是否可使用此主控台。',
    'signin.err.cancelled': '登入已在登入服務取消。',
    'signin.err.state': '登入服務的這個回應不屬於此分頁發起的登入（可能已過期，或來自其他分頁）。',
    'signin.err.state.todo': '請在此頁面重新開始登入。',
    'signin.err.check': '登入回應未通過安全檢查：{reason}',
    'signin.err.token': '登入服務拒絕發出權杖：{reason}',
    'signin.err.token.todo': '請重新開始登入。若再次失敗，請通知登入服務的管理員。',
    'signin.err.unreachable': '無法連上位於 {host} 的登入服務以完成登入（{reason}）。',
    'signin.err.unreachable.todo': '請檢查網路後重新開始。若問題持續，登入服務可能未允許本網站（{origin}）：請其管理員允許此來源（CORS）。',
    'signin.err.norole': '您已以 {name} 登入，但您的帳號在本伺服器沒有角色（權杖中沒有 role 宣告）。',
    'signin.err.norole.todo': '請管理員為您的帳號設定此主控台的角色（例如 wall、operator 或 reviewer），再重新登入。',
    'signin.err.audience': '來自 {host} 的權杖不是發給本伺服器的（audience 不符）。',
    'signin.err.audience.todo': '請通知管理員：登入服務發給主控台的權杖必須以本伺服器的 audience（auth.oidc.audience）為對象。',
    'signin.err.expired': '本伺服器檢查時，來自 {host} 的權杖已經過期。',
    'signin.err.expired.todo': '請確認本裝置與伺服器的時鐘正確，再重新登入。',
    'signin.err.refused': '本伺服器拒絕了這個權杖：{reason}',
    'signin.err.refused.todo': '請重新登入；若再次被拒絕，請將此訊息提供給管理員。',
    'signin.err.server': '無法向本伺服器確認權杖：{reason}',
    'signin.err.server.todo': '請檢查網路後再試一次。',
    'signin.paste.heading': '或貼上存取權杖',
    'signin.paste.label': '存取權杖（供資訊站及沒有帳號的裝置使用）：',
    'signin.paste.submit': '使用此權杖',
    'signin.paste.empty': '請先貼上權杖：欄位是空的。',
    'signin.paste.refused': '伺服器拒絕了這個權杖：{reason}。請貼上有效的權杖。',
    'signin.signedOut': '已登出：伺服器自此拒絕該權杖。',
    'signin.signedOut.local': '已在此分頁登出，但伺服器未撤銷該權杖：{reason}。持有副本者在權杖到期前仍可使用；請聯絡操作員撤銷。',
  },
});

const PENDING_KEY = 'fieldvideo.signin';
// PENDING_MS is how long a sign-in may take at the provider.
const PENDING_MS = 15 * 60 * 1000;
const TOKEN_TIMEOUT_MS = 10000;

const $ = (id) => document.getElementById(id);

// SignInError is a failure shown to the user: what happened and what to do.
class SignInError extends Error {
  constructor(text, todo) {
    super(text);
    this.todo = todo;
  }
}

function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(n = 32) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function s256(verifier) {
  return b64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return String(url);
  }
}

function redirectURI() {
  const u = new URL('signin.html', window.location.href);
  u.search = '';
  u.hash = '';
  return u.href;
}

// takePending returns the sign-in this tab started, and forgets it: it is good for one answer.
function takePending() {
  let p = null;
  try {
    p = JSON.parse(window.sessionStorage.getItem(PENDING_KEY) ?? 'null');
    window.sessionStorage.removeItem(PENDING_KEY);
  } catch {
    return null;
  }
  if (!p || typeof p.state !== 'string' || Date.now() - Number(p.at) > PENDING_MS) return null;
  return p;
}

// narrowPolicy lets the page talk to this server and the provider's token endpoint only.
function narrowPolicy(tokenEndpoint) {
  let origin;
  try {
    origin = new URL(tokenEndpoint).origin;
  } catch {
    return;
  }
  const meta = document.createElement('meta');
  meta.httpEquiv = 'Content-Security-Policy';
  meta.content = `connect-src 'self' ${origin}`;
  document.head.append(meta);
}

class SignIn {
  constructor() {
    this.config = null;
    this.returnTo = safeReturn(new URLSearchParams(window.location.search).get('return') ?? '');
  }

  async init() {
    mountNav('signin');
    pageTitle('signin.title');
    $('sso-button').addEventListener('click', () => this.start().catch((err) => this.fail(err)));
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.paste().catch((err) => this.showPasteError(err?.message ?? `${err}`));
    });
    window.addEventListener('langchange', () => this.renderButton());
    const out = takeSignedOut();
    if (out) {
      const say = () => {
        $('signed-in').textContent = out === 'ok' ? t('signin.signedOut') : t('signin.signedOut.local', { reason: out });
      };
      say();
      window.addEventListener('langchange', say);
      $('signed-in').hidden = false;
      $('signed-in').dataset.signedOut = out === 'ok' ? 'revoked' : 'local';
    }
    const params = new URLSearchParams(window.location.search);
    if (params.has('code') || params.has('error') || params.has('state')) {
      // the provider's answer: take it out of the address at once (the code is single-use,
      // but it must not linger in the history).
      window.history.replaceState(null, '', window.location.pathname);
      try {
        await this.finish(params);
      } catch (err) {
        this.fail(err);
        // offer the provider again below the message.
        await this.load().catch(() => {});
        this.setStatus('');
      }
      return;
    }
    await this.load().catch((err) => this.fail(err));
  }

  setStatus(key, vars) {
    const el = $('sso-status');
    el.hidden = !key;
    el.textContent = key ? t(key, vars) : '';
  }

  // load reads the server's sign-in settings and offers the provider.
  async load() {
    this.setStatus('signin.sso.loading');
    const res = await request('/v1/auth/config', { cache: 'no-store' });
    if (!res.ok) throw new SignInError(t('signin.err.config', { reason: await reasonOf(res) }), t('signin.err.config.todo'));
    let body;
    try {
      body = await res.json();
    } catch {
      throw new SignInError(t('signin.err.config', { reason: 'the answer is not JSON' }), t('signin.err.config.todo'));
    }
    const c = body?.oidc;
    if (!c) {
      this.setStatus('');
      this.showError(t('signin.sso.none'), t('signin.sso.none.todo'), false);
      $('token-input').focus();
      return;
    }
    for (const k of ['issuer', 'client_id', 'scopes', 'authorization_endpoint', 'token_endpoint']) {
      if (typeof c[k] !== 'string' || !c[k]) throw new SignInError(t('signin.err.config', { reason: `the settings lack ${k}` }), t('signin.err.config.todo'));
    }
    this.config = c;
    narrowPolicy(c.token_endpoint);
    const sso = signedIn();
    if (sso && sso.issuer === c.issuer) {
      const who = jwtClaims(sso.idToken);
      const name = who?.preferred_username || who?.name || who?.sub;
      if (name) {
        $('signed-in').textContent = t('signin.sso.signedIn', { name });
        $('signed-in').hidden = false;
      }
    }
    this.setStatus('signin.sso.ready');
    this.renderButton();
    $('sso-button').hidden = false;
  }

  renderButton() {
    if (this.config) $('sso-button').textContent = t('signin.sso.button', { host: hostOf(this.config.issuer) });
  }

  // start leaves for the provider's authorization endpoint.
  async start() {
    const c = this.config;
    if (!c) return;
    if (!window.isSecureContext || !crypto.subtle) {
      throw new SignInError(t('signin.err.insecure', { host: window.location.host }), t('signin.err.insecure.todo'));
    }
    const verifier = randomString(32);
    const pending = {
      state: randomString(16),
      nonce: randomString(16),
      verifier,
      returnTo: this.returnTo,
      issuer: c.issuer,
      clientID: c.client_id,
      tokenEndpoint: c.token_endpoint,
      endSessionEndpoint: c.end_session_endpoint ?? '',
      redirectURI: redirectURI(),
      at: Date.now(),
    };
    const u = new URL(c.authorization_endpoint);
    u.searchParams.set('response_type', 'code');
    u.searchParams.set('client_id', c.client_id);
    u.searchParams.set('redirect_uri', pending.redirectURI);
    u.searchParams.set('scope', c.scopes);
    u.searchParams.set('state', pending.state);
    u.searchParams.set('nonce', pending.nonce);
    u.searchParams.set('code_challenge', await s256(verifier));
    u.searchParams.set('code_challenge_method', 'S256');
    window.sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
    this.setStatus('signin.sso.leaving', { host: u.host });
    $('sso-button').disabled = true;
    window.location.assign(u.href);
  }

  // finish reads the provider's answer, exchanges the code and checks the tokens.
  async finish(params) {
    this.setStatus('signin.sso.finishing');
    const p = takePending();
    if (!p) throw new SignInError(t('signin.err.state'), t('signin.err.state.todo'));
    this.returnTo = safeReturn(p.returnTo ?? '');
    narrowPolicy(p.tokenEndpoint);
    if (params.get('state') !== p.state) throw new SignInError(t('signin.err.state'), t('signin.err.state.todo'));
    const error = params.get('error');
    if (error) {
      const desc = params.get('error_description');
      const reason = desc ? `${desc} (${error})` : error;
      throw new SignInError(error === 'access_denied' && !desc ? t('signin.err.cancelled') : t('signin.err.provider', { reason }), t('signin.err.provider.todo'));
    }
    const iss = params.get('iss');
    if (iss !== null && iss !== p.issuer) {
      throw new SignInError(t('signin.err.check', { reason: `the answer comes from ${iss}, not ${p.issuer}` }), t('signin.err.state.todo'));
    }
    const code = params.get('code');
    if (!code) throw new SignInError(t('signin.err.provider', { reason: 'the answer carries no code' }), t('signin.err.provider.todo'));

    const tokens = await this.exchange(p, code);
    const id = jwtClaims(tokens.id_token);
    if (!id) throw new SignInError(t('signin.err.check', { reason: 'no ID token (is the openid scope allowed for the console?)' }), t('signin.err.token.todo'));
    const aud = Array.isArray(id.aud) ? id.aud : [id.aud];
    if (id.nonce !== p.nonce) throw new SignInError(t('signin.err.check', { reason: 'the ID token\'s nonce is not the one this tab sent' }), t('signin.err.state.todo'));
    if (id.iss !== p.issuer || !aud.includes(p.clientID)) {
      throw new SignInError(t('signin.err.check', { reason: `the ID token is from ${id.iss} for ${aud.join(', ')}` }), t('signin.err.state.todo'));
    }
    const name = id.preferred_username || id.name || id.sub || '?';

    this.setStatus('signin.sso.checking');
    await this.check(tokens.access_token, { name, host: hostOf(p.issuer) });
    saveSignIn({
      accessToken: tokens.access_token,
      refreshToken: typeof tokens.refresh_token === 'string' ? tokens.refresh_token : '',
      expiresIn: tokens.expires_in,
      tokenEndpoint: p.tokenEndpoint,
      clientID: p.clientID,
      issuer: p.issuer,
      endSessionEndpoint: p.endSessionEndpoint,
      idToken: tokens.id_token,
    });
    window.location.replace(this.returnTo || 'index.html');
  }

  // exchange trades the code for tokens at the provider's token endpoint.
  async exchange(p, code) {
    const body = new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: p.redirectURI,
      client_id: p.clientID,
      code_verifier: p.verifier,
    });
    let res;
    try {
      res = await fetch(p.tokenEndpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
        body,
        credentials: 'omit',
        cache: 'no-store',
        signal: AbortSignal.timeout(TOKEN_TIMEOUT_MS),
      });
    } catch (err) {
      const reason = err?.name === 'TimeoutError' ? `no answer within ${TOKEN_TIMEOUT_MS / 1000} s` : `${err?.message ?? err}`;
      throw new SignInError(
        t('signin.err.unreachable', { host: hostOf(p.tokenEndpoint), reason }),
        t('signin.err.unreachable.todo', { origin: window.location.origin }),
      );
    }
    let data = null;
    try {
      data = await res.json();
    } catch {
      // reported below.
    }
    if (!res.ok) {
      const reason = [data?.error, data?.error_description].filter((x) => typeof x === 'string' && x).join(': ') || `${res.status} ${res.statusText}`;
      throw new SignInError(t('signin.err.token', { reason }), t('signin.err.token.todo'));
    }
    if (typeof data?.access_token !== 'string' || !data.access_token) {
      throw new SignInError(t('signin.err.token', { reason: 'the answer carries no access token' }), t('signin.err.token.todo'));
    }
    if (data.token_type && String(data.token_type).toLowerCase() !== 'bearer') {
      throw new SignInError(t('signin.err.token', { reason: `token type ${data.token_type}, not Bearer` }), t('signin.err.token.todo'));
    }
    return data;
  }

  // check asks this server whether it takes token, and explains a refusal.
  async check(token, { name, host }) {
    let res;
    try {
      res = await request('/v1/sources', { headers: authHeaders(token), cache: 'no-store' });
    } catch (err) {
      throw new SignInError(t('signin.err.server', { reason: err?.message ?? `${err}` }), t('signin.err.server.todo'));
    }
    if (res.ok) return;
    const reason = await reasonOf(res);
    if (res.status !== 401 && res.status !== 403) {
      throw new SignInError(t('signin.err.server', { reason }), t('signin.err.server.todo'));
    }
    if (/unknown role/.test(reason)) throw new SignInError(t('signin.err.norole', { name }), t('signin.err.norole.todo'));
    if (/audience/.test(reason)) throw new SignInError(t('signin.err.audience', { host }), t('signin.err.audience.todo'));
    if (/expired/.test(reason)) throw new SignInError(t('signin.err.expired', { host }), t('signin.err.expired.todo'));
    throw new SignInError(t('signin.err.refused', { reason }), t('signin.err.refused.todo'));
  }

  // paste checks a pasted token with this server and goes on with it.
  async paste() {
    const token = $('token-input').value.trim();
    if (!token) {
      this.showPasteError(t('signin.paste.empty'));
      return;
    }
    $('token-reason').hidden = true;
    const res = await request('/v1/sources', { headers: authHeaders(token), cache: 'no-store' });
    if (!res.ok) {
      const err = new APIError(await reasonOf(res), res.status);
      this.showPasteError(err.unauthorized || res.status === 403 ? t('signin.paste.refused', { reason: err.message }) : err.message);
      return;
    }
    saveToken(token);
    $('token-input').value = '';
    window.location.replace(this.returnTo || 'index.html');
  }

  showPasteError(text) {
    const el = $('token-reason');
    el.textContent = text;
    el.hidden = false;
    $('token-input').focus();
  }

  showError(text, todo, alarm = true) {
    $('sso-error-text').textContent = text;
    $('sso-error-todo').textContent = todo ?? '';
    $('sso-error').hidden = false;
    $('sso-error').classList.toggle('signin-note', !alarm);
  }

  // fail shows err, and offers the provider again when its settings are known.
  fail(err) {
    console.warn(`signin: ${err?.message ?? err}`);
    $('sso-button').disabled = false;
    if (err instanceof SignInError) this.showError(err.message, err.todo);
    else if (err instanceof APIError) this.showError(t('signin.err.config', { reason: err.message }), t('signin.err.config.todo'));
    else this.showError(`${err?.message ?? err}`, t('signin.err.refused.todo'));
    this.setStatus('');
  }
}

// refreshForParent renews the access token for the page this frame is in, and tells it.
async function refreshForParent() {
  const r = await refreshHere().catch((err) => ({ ok: false, fatal: false, reason: `${err?.message ?? err}` }));
  window.parent.postMessage({ type: 'fieldvideo.refresh', ok: r.ok, fatal: r.fatal, reason: r.reason }, window.location.origin);
}

if (window.location.hash === '#refresh' && window.parent !== window) {
  refreshForParent();
} else {
  new SignIn().init();
}
