// The report page: a responder's phone publishes its camera, microphone and position as a new
// source, for the wall and the map, and the SFU records it.
//
// "Start report" opens the camera and microphone and watches the position, then publishes by
// WHIP (POST /<source>/whip) under a source name made of the reporter (from the token) and the
// time, and sends the position (PUT /v1/sources/<source>/position) once the source exists and
// again when it changes, at most every POSITION_MIN_MS. "Stop" ends the session (WHIP DELETE).
//
// The session recovers by itself: when the connection is lost (failed, disconnected for more
// than DISCONNECTED_MS, or not up within CONNECT_MS of the answer) the page offers again under
// the same source name (the SFU replaces a publisher's own stale session at once), after a
// capped, jittered backoff, or at once when the phone comes back online. The state and its
// reason show on screen.
//
// main#report carries data-state (idle, starting, connecting, live, reconnecting, stopping,
// stopped, error), data-source, data-sessions (sessions offered so far) and data-positions
// (positions the server took), for the tests.

import { authHeaders, forgetToken, reasonOf, request, saveToken, takeToken } from './api.js';
import { gathered, publishCodecs } from './call-media.js';
import { register, t } from './i18n.js';
import { mountNav, pageTitle } from './nav.js';
import { reporterName, sourceName } from './report-name.js';
import { Backoff } from './whep.js';

// At most one position update every POSITION_MIN_MS; a fix that moved less than POSITION_MOVE_M
// (and whose accuracy and heading did not change much) is sent again only after
// POSITION_HEARTBEAT_MS.
const POSITION_MIN_MS = 2000;
const POSITION_MOVE_M = 3;
const POSITION_HEARTBEAT_MS = 30000;
// A connection 'disconnected' for DISCONNECTED_MS, or not connected CONNECT_MS after the answer,
// is replaced by a new session.
const DISCONNECTED_MS = 3000;
const CONNECT_MS = 15000;
const OFFER_TIMEOUT_MS = 15000;
const TICK_MS = 1000;

const VIDEO = { facingMode: 'environment', width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30, max: 30 } };
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

register({
  en: {
    'report.title': 'Report',
    'report.as': 'Reporting as',
    'report.anonymous': 'unknown reporter',
    'report.note': 'Short note (optional)',
    'report.note.placeholder': 'e.g. smoke on the 3rd floor',
    'report.start': 'Start report',
    'report.stop': 'Stop',
    'report.position': 'Position',
    'report.source': 'Source',
    'report.elapsed': 'On air',
    'report.preview': 'What your camera sends',
    'report.state.idle': 'Ready',
    'report.state.starting': 'Opening the camera…',
    'report.state.connecting': 'Connecting…',
    'report.state.live': 'LIVE: the command post sees you and it is recorded',
    'report.state.reconnecting': 'Reconnecting: {reason}',
    'report.state.stopping': 'Stopping…',
    'report.state.stopped': 'Report ended. Start again for a new one.',
    'report.state.error': 'Cannot report: {reason}',
    'report.why.disconnected': 'the connection was interrupted',
    'report.why.failed': 'the connection failed',
    'report.why.ended': 'the server ended the session',
    'report.why.timeout': 'the connection did not come up',
    'report.why.offline': 'the phone has no network',
    'report.why.retry': '{reason} (trying again in {s} s)',
    'report.why.no-media': 'this browser cannot open a camera here (the page needs https)',
    'report.why.denied': 'camera and microphone access was refused; allow it in the browser settings and try again',
    'report.why.no-device': 'no camera or microphone could be opened ({reason})',
    'report.why.no-publish': 'this token may not publish; ask for a responder token',
    'report.only-video': 'The microphone is not available: sending video only.',
    'report.only-audio': 'The camera is not available: sending sound only.',
    'report.position.none': 'not yet known',
    'report.position.fix': '{lat}, {lon} ±{acc} m',
    'report.position.sent': '{fix} · sent',
    'report.position.pending': '{fix} · not sent yet',
    'report.position.failed': '{fix} · not sent: {reason}',
    'report.position.denied': 'location access was refused: the report goes on without a position',
    'report.position.unavailable': 'no position yet ({reason})',
    'report.position.unsupported': 'this browser cannot tell the position',
    'report.token.heading': 'Access token needed',
    'report.token.label': 'Paste the responder token you were given:',
    'report.token.submit': 'Continue',
    'report.token.sso': 'Sign in with single sign-on',
    'report.token.needed': 'Reporting needs an access token: sign in, open the link you were given, or paste the token below.',
    'report.token.refused': 'The server refused the token: {reason}',
    'report.token.empty': 'Paste a token first: the field is empty.',
  },
  'zh-TW': {
    'report.title': '現場回報',
    'report.as': '回報人',
    'report.anonymous': '不明回報人',
    'report.note': '簡短備註（選填）',
    'report.note.placeholder': '例如：三樓冒煙',
    'report.start': '開始回報',
    'report.stop': '停止',
    'report.position': '位置',
    'report.source': '來源名稱',
    'report.elapsed': '直播時間',
    'report.preview': '您的相機正在傳送的畫面',
    'report.state.idle': '準備就緒',
    'report.state.starting': '正在開啟相機…',
    'report.state.connecting': '連線中…',
    'report.state.live': '直播中：指揮所看得到您，並且正在錄影',
    'report.state.reconnecting': '重新連線中：{reason}',
    'report.state.stopping': '正在停止…',
    'report.state.stopped': '回報已結束。要再回報請重新開始。',
    'report.state.error': '無法回報：{reason}',
    'report.why.disconnected': '連線中斷',
    'report.why.failed': '連線失敗',
    'report.why.ended': '伺服器結束了這次連線',
    'report.why.timeout': '連線未能建立',
    'report.why.offline': '手機沒有網路',
    'report.why.retry': '{reason}（{s} 秒後重試）',
    'report.why.no-media': '此瀏覽器無法在這裡開啟相機（此頁需要 https）',
    'report.why.denied': '相機和麥克風的權限被拒絕；請在瀏覽器設定中允許後再試一次',
    'report.why.no-device': '無法開啟相機或麥克風（{reason}）',
    'report.why.no-publish': '此權杖不能發布影像；請索取救災人員權杖',
    'report.only-video': '麥克風無法使用：只傳送影像。',
    'report.only-audio': '相機無法使用：只傳送聲音。',
    'report.position.none': '尚未取得',
    'report.position.fix': '{lat}, {lon} ±{acc} 公尺',
    'report.position.sent': '{fix} · 已傳送',
    'report.position.pending': '{fix} · 尚未傳送',
    'report.position.failed': '{fix} · 未能傳送：{reason}',
    'report.position.denied': '定位權限被拒絕：回報會繼續，但沒有位置',
    'report.position.unavailable': '尚無位置（{reason}）',
    'report.position.unsupported': '此瀏覽器無法提供位置',
    'report.token.heading': '需要存取權杖',
    'report.token.label': '貼上您取得的救災人員權杖：',
    'report.token.submit': '繼續',
    'report.token.sso': '使用單一登入',
    'report.token.needed': '回報需要存取權杖：請登入、開啟您取得的連結，或在下方貼上權杖。',
    'report.token.refused': '伺服器拒絕了此權杖：{reason}',
    'report.token.empty': '請先貼上權杖：欄位是空的。',
  },
});

const $ = (id) => document.getElementById(id);

// claimsOf returns the payload of a JWT without verifying it (the server does): who the token
// names and what it may publish.
function claimsOf(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const c = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0))));
    return c && typeof c === 'object' ? c : {};
  } catch {
    return {};
  }
}

// distanceM is the distance in metres between two positions (haversine).
function distanceM(a, b) {
  const r = Math.PI / 180;
  const dLat = (b.lat - a.lat) * r;
  const dLon = (b.lon - a.lon) * r;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * r) * Math.cos(b.lat * r) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(h)));
}

// iceServersOf reads the ICE servers of a WHIP answer's Link headers.
function iceServersOf(res) {
  const out = [];
  for (const link of (res.headers.get('Link') ?? '').split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]+)>(.*)$/.exec(link);
    if (!m || !/rel="?ice-server"?/.test(m[2])) continue;
    const param = (k) => new RegExp(`${k}="([^"]*)"`).exec(m[2])?.[1];
    const s = { urls: m[1] };
    if (param('username') !== undefined) {
      s.username = param('username');
      s.credential = param('credential');
    }
    out.push(s);
  }
  return out;
}

// PublishError is a refused or failed WHIP offer; status 0 when the server was not reached.
class PublishError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }

  get retryable() {
    return this.status === 0 || this.status === 404 || this.status === 408 || this.status === 409 || this.status === 429 || this.status >= 500;
  }
}

class Report {
  constructor() {
    this.root = $('report');
    this.token = '';
    this.claims = {};
    this.state = 'idle';
    this.reason = '';
    this.media = null;
    this.source = '';
    this.pc = null;
    this.location = '';
    this.iceServers = [];
    this.sessions = 0;
    this.backoff = new Backoff(500, 8000);
    this.retryTimer = 0;
    this.retryAt = 0;
    this.lostTimer = 0;
    this.connectTimer = 0;
    this.liveSince = 0;
    this.geoWatch = null;
    this.fix = null;
    this.geoProblem = '';
    this.lastSent = null;
    this.lastSentAt = 0;
    this.posTimer = 0;
    this.posInFlight = false;
    this.posError = '';
    this.tagsDirty = true;
    this.positions = 0;
    this.active = false; // between Start and Stop
  }

  init() {
    mountNav('report');
    pageTitle('report.title');
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const tok = $('token-input').value.trim();
      if (!tok) {
        $('token-reason').textContent = t('report.token.empty');
        return;
      }
      saveToken(tok);
      $('token-input').value = '';
      this.useToken(tok);
    });
    $('start').addEventListener('click', () => this.start());
    $('stop').addEventListener('click', () => this.stop());
    $('note').addEventListener('change', () => {
      this.tagsDirty = true;
      this.maybeSendPosition();
    });
    window.addEventListener('online', () => {
      if (this.active && this.retryTimer) this.retryNow();
    });
    window.addEventListener('pagehide', () => this.deleteSession(true));
    window.addEventListener('langchange', () => this.render());
    setInterval(() => this.tick(), TICK_MS);
    const tok = takeToken();
    if (tok) this.useToken(tok);
    else this.askToken(t('report.token.needed'));
  }

  askToken(reason) {
    $('form').hidden = true;
    $('token-panel').hidden = false;
    $('token-reason').textContent = reason;
    $('token-input').focus();
  }

  useToken(tok) {
    this.token = tok;
    this.claims = claimsOf(tok);
    $('token-panel').hidden = true;
    $('form').hidden = false;
    this.render();
  }

  setState(state, reason = '') {
    this.state = state;
    this.reason = reason;
    this.render();
  }

  render() {
    const who = reporterName(this.claims);
    $('who').textContent = who || t('report.anonymous');
    this.root.dataset.state = this.state;
    this.root.dataset.source = this.source;
    this.root.dataset.sessions = String(this.sessions);
    this.root.dataset.positions = String(this.positions);
    const st = $('state');
    st.removeAttribute('data-i18n');
    st.textContent = t(`report.state.${this.state}`, { reason: this.reason });
    $('start').hidden = this.active;
    $('start').disabled = this.active;
    $('stop').hidden = !this.active;
    $('source').textContent = this.source || '—';
    this.renderPosition();
    this.renderElapsed();
  }

  renderPosition() {
    const el = $('position');
    el.removeAttribute('data-i18n');
    if (!this.fix) {
      el.textContent = this.geoProblem || t('report.position.none');
      return;
    }
    const fix = t('report.position.fix', { lat: this.fix.lat.toFixed(5), lon: this.fix.lon.toFixed(5), acc: Math.round(this.fix.accuracy) });
    let text = fix;
    if (this.active) {
      if (this.posError) text = t('report.position.failed', { fix, reason: this.posError });
      else if (this.lastSent === this.fix) text = t('report.position.sent', { fix });
      else text = t('report.position.pending', { fix });
    }
    if (this.geoProblem) text += ` · ${this.geoProblem}`;
    el.textContent = text;
  }

  renderElapsed() {
    if (!this.liveSince || !this.active) {
      $('elapsed').textContent = '—';
      return;
    }
    const s = Math.max(0, Math.floor((Date.now() - this.liveSince) / 1000));
    $('elapsed').textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  }

  tick() {
    this.renderElapsed();
    if (this.state === 'reconnecting' && this.retryTimer) {
      const s = Math.max(0, Math.ceil((this.retryAt - Date.now()) / 1000));
      $('state').textContent = t('report.state.reconnecting', { reason: t('report.why.retry', { reason: this.reason, s }) });
    }
    this.maybeSendPosition();
  }

  // start opens the media and the position, and publishes.
  async start() {
    if (this.active) return;
    if (!this.token) {
      this.askToken(t('report.token.needed'));
      return;
    }
    this.active = true;
    this.liveSince = 0;
    this.sessions = 0;
    this.positions = 0;
    this.lastSent = null;
    this.lastSentAt = 0;
    this.posError = '';
    this.tagsDirty = true;
    this.backoff.reset();
    this.source = sourceName(this.claims);
    this.setState('starting');
    $('stop').focus();
    this.watchPosition();
    try {
      this.media = await this.openMedia();
    } catch (err) {
      this.active = false;
      this.stopPosition();
      this.setState('error', err.message);
      return;
    }
    if (!this.active) {
      this.releaseMedia();
      return;
    }
    const preview = $('preview');
    preview.srcObject = this.media;
    preview.hidden = this.media.getVideoTracks().length === 0;
    preview.play?.().catch(() => {});
    this.connect();
  }

  async openMedia() {
    if (!navigator.mediaDevices?.getUserMedia) throw new Error(t('report.why.no-media'));
    let first = null;
    for (const c of [{ video: VIDEO, audio: AUDIO }, { video: VIDEO }, { audio: AUDIO }]) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia(c);
        if (!(c.video && c.audio)) console.warn(t(c.video ? 'report.only-video' : 'report.only-audio'));
        return stream;
      } catch (err) {
        first ??= err;
        if (err?.name === 'NotAllowedError' || err?.name === 'SecurityError') break;
      }
    }
    if (first?.name === 'NotAllowedError' || first?.name === 'SecurityError') throw new Error(t('report.why.denied'));
    throw new Error(t('report.why.no-device', { reason: `${first?.name ?? 'error'}: ${first?.message ?? ''}` }));
  }

  releaseMedia() {
    for (const tr of this.media?.getTracks() ?? []) tr.stop();
    this.media = null;
    const preview = $('preview');
    preview.srcObject = null;
    preview.hidden = true;
  }

  // connect offers a new session; on failure it waits for the backoff and tries again.
  async connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    if (!this.active) return;
    if (this.state !== 'reconnecting') this.setState('connecting');
    this.closePC();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
    this.pc = pc;
    this.sessions++;
    this.render();
    try {
      for (const track of this.media.getTracks()) {
        const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [this.media] });
        if (track.kind === 'video') preferH264(tr);
      }
      pc.addEventListener('connectionstatechange', () => this.onState(pc));
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      if (pc !== this.pc) return;
      const res = await request(`/${encodeURIComponent(this.source)}/whip`, {
        method: 'POST',
        headers: authHeaders(this.token, { 'Content-Type': 'application/sdp' }),
        body: pc.localDescription.sdp,
      }, OFFER_TIMEOUT_MS).catch((err) => {
        throw new PublishError(err?.message ?? `${err}`, 0);
      });
      if (res.status !== 201) throw new PublishError(await reasonOf(res), res.status);
      const loc = res.headers.get('Location');
      const answer = await res.text();
      if (pc !== this.pc) {
        // stopped or replaced while the offer was in flight: end the session just made.
        if (loc) this.deleteURL(new URL(loc, window.location.href).href);
        return;
      }
      this.location = loc ? new URL(loc, window.location.href).href : '';
      const servers = iceServersOf(res);
      if (servers.length) this.iceServers = servers;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      // the server ending the session (DTLS close) shows here at once, before ICE notices.
      const dtls = pc.getSenders().find((x) => x.transport)?.transport;
      dtls?.addEventListener('statechange', () => {
        if (pc === this.pc && (dtls.state === 'closed' || dtls.state === 'failed')) this.lost(t('report.why.ended'));
      });
      this.lastSent = null; // the position is sent at the start of every session
      this.tagsDirty = true;
      this.maybeSendPosition();
      clearTimeout(this.connectTimer);
      this.connectTimer = setTimeout(() => {
        if (pc === this.pc && pc.connectionState !== 'connected') this.lost(t('report.why.timeout'));
      }, CONNECT_MS);
    } catch (err) {
      if (pc !== this.pc || !this.active) return;
      this.failed(err);
    }
  }

  // failed handles a session that could not be made.
  failed(err) {
    const status = err?.status ?? 0;
    if (status === 401) {
      forgetToken();
      this.token = '';
      this.active = false;
      this.teardown();
      this.setState('error', err.message);
      this.askToken(t('report.token.refused', { reason: err.message }));
      return;
    }
    if (status === 403 && !(Array.isArray(this.claims.pub) && this.claims.pub.length)) {
      this.active = false;
      this.teardown();
      this.setState('error', t('report.why.no-publish'));
      return;
    }
    if (err instanceof PublishError && !err.retryable) {
      this.active = false;
      this.teardown();
      this.setState('error', err.message);
      return;
    }
    const why = navigator.onLine === false ? t('report.why.offline') : err?.message ?? `${err}`;
    this.scheduleRetry(why);
  }

  scheduleRetry(reason) {
    this.closePC();
    const delay = navigator.onLine === false ? 8000 : this.backoff.next();
    this.retryAt = Date.now() + delay;
    this.setState('reconnecting', reason);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.tick();
  }

  retryNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    this.connect();
  }

  onState(pc) {
    if (pc !== this.pc || !this.active) return;
    const st = pc.connectionState;
    clearTimeout(this.lostTimer);
    if (st === 'connected') {
      clearTimeout(this.connectTimer);
      this.backoff.reset();
      if (!this.liveSince) this.liveSince = Date.now();
      this.setState('live');
    } else if (st === 'disconnected') {
      this.setState('reconnecting', t('report.why.disconnected'));
      this.lostTimer = setTimeout(() => {
        if (pc === this.pc && pc.connectionState !== 'connected') this.lost(t('report.why.disconnected'));
      }, DISCONNECTED_MS);
    } else if (st === 'failed' || st === 'closed') {
      this.lost(t(st === 'failed' ? 'report.why.failed' : 'report.why.disconnected'));
    }
  }

  // lost replaces a session whose connection broke.
  lost(reason) {
    if (!this.active) return;
    this.location = ''; // the server ends it by itself, or when the next session replaces it
    this.scheduleRetry(navigator.onLine === false ? t('report.why.offline') : reason);
  }

  closePC() {
    clearTimeout(this.lostTimer);
    clearTimeout(this.connectTimer);
    const pc = this.pc;
    this.pc = null;
    try {
      pc?.close();
    } catch {
      // already closed.
    }
  }

  deleteURL(url, keepalive = false) {
    return fetch(url, { method: 'DELETE', headers: authHeaders(this.token), keepalive }).catch(() => {
      // the server ends a session whose peer is gone by itself.
    });
  }

  deleteSession(keepalive = false) {
    const url = this.location;
    this.location = '';
    return url ? this.deleteURL(url, keepalive) : Promise.resolve();
  }

  teardown() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    clearTimeout(this.posTimer);
    this.posTimer = 0;
    this.stopPosition();
    this.closePC();
    this.releaseMedia();
  }

  // stop ends the report: DELETE the session, close the connection, release the camera.
  async stop() {
    if (!this.active) return;
    this.active = false;
    this.setState('stopping');
    const del = this.deleteSession();
    this.teardown();
    await Promise.race([del, new Promise((r) => setTimeout(r, 3000))]);
    this.liveSince = 0;
    this.setState('stopped');
    $('start').focus();
  }

  watchPosition() {
    this.fix = null;
    this.geoProblem = '';
    if (!navigator.geolocation) {
      this.geoProblem = t('report.position.unsupported');
      return;
    }
    this.geoWatch = navigator.geolocation.watchPosition(
      (p) => this.onFix(p),
      (err) => {
        this.geoProblem = err.code === 1 ? t('report.position.denied') : t('report.position.unavailable', { reason: err.message || `code ${err.code}` });
        this.renderPosition();
      },
      { enableHighAccuracy: true, maximumAge: 5000, timeout: 30000 },
    );
  }

  stopPosition() {
    if (this.geoWatch !== null) navigator.geolocation.clearWatch(this.geoWatch);
    this.geoWatch = null;
  }

  onFix(p) {
    const c = p.coords;
    this.geoProblem = '';
    this.fix = {
      lat: c.latitude,
      lon: c.longitude,
      accuracy: Number.isFinite(c.accuracy) ? c.accuracy : 0,
      heading: Number.isFinite(c.heading) ? c.heading : NaN,
      at: Number.isFinite(p.timestamp) ? p.timestamp : Date.now(),
    };
    this.renderPosition();
    this.maybeSendPosition();
  }

  // maybeSendPosition sends the latest fix (with the kind and note) when the source exists, it
  // changed enough, and the last update is at least POSITION_MIN_MS old.
  maybeSendPosition() {
    if (!this.active || !this.location || this.posInFlight || this.posTimer) return;
    const fix = this.fix;
    if (!fix && !this.tagsDirty) return;
    const now = Date.now();
    const due = this.lastSentAt + POSITION_MIN_MS;
    if (now < due) {
      this.posTimer = setTimeout(() => {
        this.posTimer = 0;
        this.maybeSendPosition();
      }, due - now);
      return;
    }
    const last = this.lastSent;
    if (!this.tagsDirty && last && fix && now - this.lastSentAt < POSITION_HEARTBEAT_MS && distanceM(last, fix) < POSITION_MOVE_M &&
      Math.abs(fix.accuracy - last.accuracy) < 5 && (Number.isNaN(fix.heading) === Number.isNaN(last.heading)) &&
      !(Math.abs(fix.heading - last.heading) >= 10)) {
      return;
    }
    this.sendPosition(fix);
  }

  async sendPosition(fix) {
    this.posInFlight = true;
    this.lastSentAt = Date.now();
    const body = { kind: 'report', note: $('note').value.trim().slice(0, 200) };
    // the incident named in the link the reporter was given (…/report.html?incident=flood-7).
    const incident = new URL(window.location.href).searchParams.get('incident') ?? '';
    if (/^[A-Za-z0-9._-]{1,64}$/.test(incident)) body.incident = incident;
    if (fix) {
      Object.assign(body, { lat: fix.lat, lon: fix.lon, accuracy_m: Math.min(1e6, Math.max(0, fix.accuracy)) });
      if (!Number.isNaN(fix.heading)) body.heading = ((fix.heading % 360) + 360) % 360;
      body.at = new Date(Math.min(fix.at, Date.now())).toISOString();
    }
    try {
      const res = await request(`/v1/sources/${encodeURIComponent(this.source)}/position`, {
        method: 'PUT',
        headers: authHeaders(this.token, { 'Content-Type': 'application/json' }),
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(await reasonOf(res));
      this.posError = '';
      this.tagsDirty = false;
      if (fix) {
        this.lastSent = fix;
        this.positions++;
      }
    } catch (err) {
      this.posError = err?.message ?? `${err}`;
    } finally {
      this.posInFlight = false;
      this.render();
    }
  }
}

// preferH264 puts H.264 first in the video offer: what the SFU records and every viewer decodes.
function preferH264(transceiver) {
  if (typeof transceiver.setCodecPreferences !== 'function' || !RTCRtpSender.getCapabilities) return;
  const codecs = publishCodecs(RTCRtpSender.getCapabilities('video')?.codecs ?? []);
  if (!codecs.some((c) => /h264|vp8/i.test(c.mimeType))) return;
  try {
    transceiver.setCodecPreferences(codecs);
  } catch {
    // the browser's own order stays.
  }
}

new Report().init();
