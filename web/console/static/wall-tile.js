// A tile of the EOC wall: one source's video, its labels and the WHEP session loop that keeps
// it playing (see wall.js for the page).

import { formatBitrate } from './api.js';
import { lang, register, t } from './i18n.js';
import { LatencyMeter, alignmentLabel, captureTimeOf, videoClock } from './timeline.js';
import { Backoff, WHEPSession } from './whep.js';

// STALL_MS without a new video frame while the source is live ends a session.
const STALL_MS = 5000;
// A frame newer than FRESH_MS shows the tile as live; an older one as stale.
const FRESH_MS = 2500;

register({
  en: {
    'wall.tile.title': '{name}: click to enlarge or shrink',
    'wall.state.connecting': 'connecting',
    'wall.state.live': 'live',
    'wall.state.stale': 'stale',
    'wall.state.offline': 'offline',
    'wall.state.error': 'error',
    'wall.headline.connecting': 'Connecting…',
    'wall.headline.offline': 'Offline',
    'wall.headline.error': 'Error',
    'wall.headline.stale': 'Picture frozen',
    'wall.since': 'since {time}',
    'wall.retrying': '{reason} — retrying in {secs} s',
    'wall.last-picture': 'last new picture {secs} s ago; reconnecting if none comes within {max} s',
    'wall.unmute': 'Unmute',
    'wall.mute': 'Mute',
    'wall.unmute.label': 'Turn on the sound of {name}',
    'wall.mute.label': 'Turn off the sound of {name}',
    'wall.stalled': 'no new picture for {secs} s although the source is live',
    'wall.held': 'held back this long so that every tile shows the same capture instant',
  },
  'zh-TW': {
    'wall.tile.title': '{name}：點一下放大或縮小',
    'wall.state.connecting': '連線中',
    'wall.state.live': '直播中',
    'wall.state.stale': '畫面停滯',
    'wall.state.offline': '離線',
    'wall.state.error': '錯誤',
    'wall.headline.connecting': '連線中…',
    'wall.headline.offline': '離線',
    'wall.headline.error': '錯誤',
    'wall.headline.stale': '畫面凍結',
    'wall.since': '自 {time} 起',
    'wall.retrying': '{reason}；{secs} 秒後重試',
    'wall.last-picture': '最後一次新畫面在 {secs} 秒前；{max} 秒內仍無畫面將重新連線',
    'wall.unmute': '開啟聲音',
    'wall.mute': '靜音',
    'wall.unmute.label': '開啟 {name} 的聲音',
    'wall.mute.label': '關閉 {name} 的聲音',
    'wall.stalled': '來源仍在直播，但已 {secs} 秒沒有新畫面',
    'wall.held': '為了讓每個畫面顯示同一擷取時刻而延後的時間',
  },
});

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function clock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) || d.getFullYear() < 2000 ? '' : d.toLocaleTimeString(lang(), { hour12: false });
}

// Tile is one source on the wall: its video, labels and WHEP session loop.
export class Tile {
  constructor(name, wall) {
    this.name = name;
    this.wall = wall;
    this.info = null; // the source as /v1/sources last listed it
    this.session = null;
    this.disposed = false;
    this.backoff = new Backoff();
    this.liveEpoch = 0; // counts the source's returns to live
    this.liveAt = 0; // when the source last became live
    this.connectedAt = 0;
    this.frames = 0;
    this.framesAtConnect = 0;
    this.lastFrameAt = 0;
    this.lastTime = 0;
    this.frameCallbacks = false; // true when requestVideoFrameCallback counts frames
    this.wantAudio = false; // the sound is on: sessions receive audio
    this.shown = true; // on the layout's current page: only shown tiles keep a session
    this.meter = new LatencyMeter();
    this.error = '';
    this.retryAt = 0;
    this.waiter = null;
    this.build();
    this.watchFrames();
  }

  build() {
    this.root = el('article', 'tile');
    this.root.tabIndex = 0;
    this.root.dataset.tile = this.name;
    this.root.dataset.state = 'connecting';
    this.root.title = t('wall.tile.title', { name: this.name });

    const v = el('video', 'video');
    v.dataset.source = this.name;
    for (const attr of ['muted', 'autoplay', 'playsinline']) v.setAttribute(attr, '');
    v.muted = true;
    v.autoplay = true;
    v.playsInline = true;
    v.disablePictureInPicture = true;
    this.video = v;

    this.placeholder = el('div', 'placeholder');
    this.headline = el('p', 'headline', t('wall.headline.connecting'));
    this.reason = el('p', 'reason');
    this.placeholder.append(this.headline, this.reason);

    const label = el('footer', 'label');
    this.nameEl = el('span', 'name', this.name);
    this.badge = el('span', 'badge', t('wall.state.connecting'));
    this.bitrateEl = el('span', 'bitrate', '—');
    this.alignEl = el('span', 'align');
    this.alignWarn = el('span', 'align-warn');
    this.alignWarn.hidden = true;
    this.delayEl = el('span', 'delay');
    this.delayEl.hidden = true;
    this.sound = el('button', 'sound', t('wall.unmute'));
    this.sound.type = 'button';
    this.sound.hidden = true;
    this.sound.setAttribute('aria-pressed', 'false');
    this.sound.addEventListener('click', (ev) => {
      ev.stopPropagation();
      this.wall.setSound(this, this.video.muted);
    });
    // the name and the state first, whole (they wrap, never cut); the details after, on the
    // same line when there is room.
    const head = el('div', 'label-head');
    head.append(this.nameEl, this.badge);
    const details = el('div', 'label-details');
    details.append(this.alignEl, this.alignWarn, this.delayEl, this.bitrateEl, this.sound);
    label.append(head, details);

    this.root.append(v, this.placeholder, label);
    this.root.addEventListener('click', () => this.wall.select(this));
    this.root.addEventListener('keydown', (ev) => {
      if (ev.target === this.root && (ev.key === 'Enter' || ev.key === ' ')) {
        ev.preventDefault();
        this.wall.select(this);
      }
    });
  }

  // watchFrames counts presented video frames: with requestVideoFrameCallback where the
  // browser has it, else by watching currentTime at every tick.
  watchFrames() {
    const v = this.video;
    if (typeof v.requestVideoFrameCallback !== 'function') return;
    this.frameCallbacks = true;
    const onFrame = (now, md) => {
      if (this.disposed) return;
      this.frame();
      this.measure(md);
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  }

  frame() {
    this.frames++;
    this.lastFrameAt = performance.now();
  }

  // measure records the capture-to-display latency of the frame that md describes.
  measure(md) {
    const video = this.session?.receiver('video');
    if (!video || !md) return;
    const capture = captureTimeOf(md, video.getSynchronizationSources(), performance.timeOrigin);
    this.meter.record(md.expectedDisplayTime ?? md.presentationTime, capture.at, capture.fromBaseline, performance.timeOrigin);
  }

  // receivers returns the session's RTP receivers, for synced playout.
  receivers() {
    return { video: this.session?.receiver('video') ?? null, audio: this.session?.receiver('audio') ?? null };
  }

  // update takes the source's latest listing.
  update(info) {
    const wasLive = this.info?.live ?? false;
    this.info = info;
    if (info.live && !wasLive) {
      this.liveEpoch++;
      this.liveAt = performance.now();
      this.backoff.reset();
    }
    this.poke();
  }

  start() {
    this.run().catch((err) => console.error(`wall: ${this.name}: ${err?.stack ?? err}`));
  }

  dispose({ keepalive = false } = {}) {
    this.disposed = true;
    this.session?.close({ keepalive });
    this.session = null;
    this.video.srcObject = null;
    this.poke();
  }

  // wait resolves when cond() holds, the tile is disposed, or timeoutMs passes. cond is
  // checked again at every poke.
  wait(cond, timeoutMs = Infinity) {
    return new Promise((resolve) => {
      let timer = 0;
      const finish = () => {
        clearTimeout(timer);
        if (this.waiter === check) this.waiter = null;
        resolve();
      };
      const check = () => {
        if (this.disposed || cond()) finish();
      };
      this.waiter = check;
      if (Number.isFinite(timeoutMs)) timer = setTimeout(finish, timeoutMs);
      check();
    });
  }

  // poke re-checks what the loop waits for and redraws the tile.
  poke() {
    this.waiter?.();
    if (!this.disposed) this.render();
  }

  tick() {
    if (!this.frameCallbacks && this.video.currentTime !== this.lastTime) {
      this.lastTime = this.video.currentTime;
      this.frame();
    }
    this.poke();
  }

  async run() {
    while (!this.disposed) {
      if (!this.info?.live || !this.shown) {
        await this.wait(() => this.info?.live && this.shown);
        continue;
      }
      const epoch = this.liveEpoch;
      const out = await this.play();
      if (this.disposed) return;
      if (out.renegotiate) continue;
      if (out.unauthorized) {
        this.wall.unauthorized(out.reason);
        return;
      }
      if (out.played) this.backoff.reset();
      if (out.final) this.backoff.jumpToMax();
      const delay = this.backoff.next();
      this.error = out.reason;
      this.retryAt = performance.now() + delay;
      console.warn(`wall: ${this.name}: ${out.reason}; retrying in ${(delay / 1000).toFixed(1)} s`);
      // a source that comes back meanwhile is tried at once.
      await this.wait(() => this.liveEpoch !== epoch, delay);
      this.error = '';
    }
  }

  // play runs one WHEP session until it ends, and says why it ended and whether it showed
  // any picture.
  async play() {
    const audio = this.wantAudio;
    const s = new WHEPSession({ endpoint: `/${encodeURIComponent(this.name)}/whep`, token: this.wall.token, audio });
    this.session = s;
    let ended = '';
    s.addEventListener('ended', (ev) => {
      ended = ev.detail.reason;
      this.poke();
    });
    this.poke();
    try {
      await s.connect();
    } catch (err) {
      s.close();
      if (this.session === s) this.session = null;
      const status = err?.status ?? 0;
      return {
        reason: status ? `${status}: ${err.message}` : `${err?.message ?? err}`,
        unauthorized: status === 401,
        final: err?.retryable === false,
        played: false,
      };
    }
    if (this.disposed) {
      s.close();
      return {};
    }
    this.framesAtConnect = this.frames;
    this.connectedAt = performance.now();
    this.video.srcObject = s.stream;
    this.video.play().catch(() => {
      // autoplay of a muted video is allowed; a refusal shows as a stall and a retry.
    });
    this.meter.reset();
    console.info(`wall: ${this.name}: session started${s.captureTimes ? '' : ' (without capture times)'}`);
    await this.wait(() => ended !== '' || this.stalled() || this.wantAudio !== audio || !this.shown);
    const played = this.frames > this.framesAtConnect;
    s.close();
    if (this.session === s) this.session = null;
    if (!ended && !this.shown) {
      // the tile left the page: no session until it is shown again.
      if (this.video.srcObject === s.stream) this.video.srcObject = null;
      return { renegotiate: true, played };
    }
    if (!ended && this.wantAudio !== audio) {
      // the sound was turned on or off: a new session, at once; the last picture stays.
      return { renegotiate: true, played };
    }
    if (this.video.srcObject === s.stream) this.video.srcObject = null;
    const reason = ended || t('wall.stalled', { secs: STALL_MS / 1000 });
    return { reason, played };
  }

  // show puts the tile on the page in view or takes it off: a tile off the page ends its
  // session (a wall of many pages decodes only what it shows) and starts one when shown.
  show(on) {
    if (this.shown === on) return;
    this.shown = on;
    this.poke();
  }

  // setAudio turns the tile's sound on or off; its session follows (see play).
  setAudio(on) {
    this.video.muted = !on;
    if (on) this.video.play().catch(() => {});
    if (this.wantAudio !== on) {
      this.wantAudio = on;
      this.poke();
    }
  }

  // stalled tells whether the source is live but no frame came for STALL_MS, counted from the
  // latest of: the last frame, the session's start, the source's return, the page becoming
  // visible (hidden pages get no frame callbacks).
  stalled() {
    if (!this.info?.live || document.hidden) return false;
    const since = Math.max(this.lastFrameAt, this.connectedAt, this.liveAt, this.wall.visibleAt);
    return performance.now() - since > STALL_MS;
  }

  playing() {
    return Boolean(this.session) && this.frames > this.framesAtConnect && performance.now() - this.lastFrameAt < FRESH_MS;
  }

  render() {
    const info = this.info;
    let state = 'connecting';
    let headline = t('wall.headline.connecting');
    let reason = '';
    if (info && !info.live) {
      state = 'offline';
      headline = t('wall.headline.offline');
      const since = clock(info.since);
      reason = since ? t('wall.since', { time: since }) : '';
    } else if (this.error) {
      state = 'error';
      headline = t('wall.headline.error');
      const secs = Math.max(0, Math.ceil((this.retryAt - performance.now()) / 1000));
      reason = t('wall.retrying', { reason: this.error, secs });
    } else if (this.playing()) {
      state = 'live';
      headline = '';
    } else if (this.session && this.frames > this.framesAtConnect) {
      // pictures came on this session, but none lately: the last one stays on screen.
      state = 'stale';
      headline = t('wall.headline.stale');
      const secs = Math.floor((performance.now() - this.lastFrameAt) / 1000);
      reason = t('wall.last-picture', { secs, max: STALL_MS / 1000 });
    }
    if (this.root.dataset.state !== state) {
      this.root.dataset.state = state;
      this.wall.summarize();
    }
    setText(this.badge, t(`wall.state.${state}`));
    setText(this.headline, headline);
    setText(this.reason, reason);
    this.badge.title = reason;
    setText(this.bitrateEl, info?.live ? formatBitrate(info.bitrate) : '—');
    this.renderAlignment();
    this.sound.hidden = !info?.hasAudio;
    setText(this.sound, this.video.muted ? t('wall.unmute') : t('wall.mute'));
    this.sound.setAttribute('aria-label', t(this.video.muted ? 'wall.unmute.label' : 'wall.mute.label', { name: this.name }));
    this.sound.setAttribute('aria-pressed', String(!this.video.muted));
  }

  // renderAlignment shows the source's alignment on the common baseline and, in synced mode,
  // how long the tile is held back.
  renderAlignment() {
    const live = Boolean(this.info?.live);
    const a = live ? alignmentLabel(videoClock(this.info.tracks)) : { text: '', warn: '', title: '' };
    setText(this.alignEl, a.text);
    this.alignEl.hidden = a.text === '';
    this.alignEl.title = a.title;
    setText(this.alignWarn, a.warn);
    this.alignWarn.hidden = a.warn === '';
    this.alignWarn.title = a.title;
    this.root.dataset.align = a.warn ? 'warn' : a.text ? 'ok' : '';
    const latency = this.meter.latency(performance.now());
    this.root.dataset.latencyMs = Number.isFinite(latency) ? String(Math.round(latency)) : '';
    const held = this.wall.sync.enabled && Number.isFinite(latency) && this.playing();
    const extra = held ? (this.wall.sync.extraMs(this.name) ?? 0) : 0;
    this.root.dataset.heldMs = held ? String(Math.round(extra)) : '';
    this.delayEl.hidden = !held;
    setText(this.delayEl, held ? `+${Math.round(extra)} ms` : '');
    this.delayEl.title = t('wall.held');
  }
}

