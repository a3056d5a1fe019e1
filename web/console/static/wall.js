// The EOC wall: one tile per source the token may view, each playing over WHEP and
// recovering by itself when the source, the network or the server comes and goes.
//
// Every POLL_MS the wall reads /v1/sources and adds, updates or removes tiles. Each tile runs
// one loop: wait until its source is live, connect, watch the session, and when the session
// ends (connection failed, closed or lost, or no new picture for STALL_MS while the source
// is live) tear it down and try again after a capped, jittered exponential backoff.
//
// A tile keeps its session while the source is offline: the SFU holds viewers across a
// publisher's reconnection, so the picture comes back on its own when the source returns with
// the same codecs; if it does not, the stall watch reconnects.
//
// A tile receives its source's audio only while its sound is on; turning it on or off starts
// a new session. Muted tiles need no audio, and receiving it would cost more than decoding
// time: Chromium delays a tile's video to keep it in step with its audio (lip sync), and on a
// busy machine the audio buffer, and with it the picture's delay, grows by seconds.
//
// Each tile shows how well its source is aligned on the common time baseline, and measures
// its capture-to-display latency (timeline.js). The "Synced" switch in the header makes all
// tiles show the same capture instant; the header shows the skew left between them.

import { fetchSources, forgetToken, formatBitrate, saveToken, takeToken } from './api.js';
import { LatencyMeter, PlayoutSync, alignmentLabel, captureTimeOf, videoClock } from './timeline.js';
import { Backoff, WHEPSession } from './whep.js';

const POLL_MS = 2000;
const TICK_MS = 500;
// STALL_MS without a new video frame while the source is live ends a session.
const STALL_MS = 5000;
// A frame newer than FRESH_MS shows the tile as live.
const FRESH_MS = 2500;
// How often synced mode re-measures and re-balances the tiles.
const SYNC_MS = 1000;
const SYNCED_KEY = 'fieldvideo.synced';

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
  return Number.isNaN(d.getTime()) || d.getFullYear() < 2000 ? '' : d.toLocaleTimeString([], { hour12: false });
}

// Tile is one source on the wall: its video, labels and WHEP session loop.
class Tile {
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
    this.root.title = `${this.name}: click to enlarge or shrink`;

    const v = el('video', 'video');
    v.dataset.source = this.name;
    for (const attr of ['muted', 'autoplay', 'playsinline']) v.setAttribute(attr, '');
    v.muted = true;
    v.autoplay = true;
    v.playsInline = true;
    v.disablePictureInPicture = true;
    this.video = v;

    this.placeholder = el('div', 'placeholder');
    this.headline = el('p', 'headline', 'Connecting…');
    this.reason = el('p', 'reason');
    this.placeholder.append(this.headline, this.reason);

    const label = el('footer', 'label');
    this.nameEl = el('span', 'name', this.name);
    this.badge = el('span', 'badge', 'connecting');
    this.bitrateEl = el('span', 'bitrate', '—');
    this.alignEl = el('span', 'align');
    this.alignWarn = el('span', 'align-warn');
    this.alignWarn.hidden = true;
    this.delayEl = el('span', 'delay');
    this.delayEl.hidden = true;
    this.sound = el('button', 'sound', 'Unmute');
    this.sound.type = 'button';
    this.sound.hidden = true;
    this.sound.setAttribute('aria-pressed', 'false');
    this.sound.addEventListener('click', (ev) => {
      ev.stopPropagation();
      this.wall.setSound(this, this.video.muted);
    });
    label.append(this.nameEl, this.badge, this.alignEl, this.alignWarn, this.delayEl, this.bitrateEl, this.sound);

    this.root.append(v, this.placeholder, label);
    this.root.addEventListener('click', () => this.wall.toggleEnlarged(this));
    this.root.addEventListener('keydown', (ev) => {
      if (ev.target === this.root && (ev.key === 'Enter' || ev.key === ' ')) {
        ev.preventDefault();
        this.wall.toggleEnlarged(this);
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
      if (!this.info?.live) {
        await this.wait(() => this.info?.live);
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
    await this.wait(() => ended !== '' || this.stalled() || this.wantAudio !== audio);
    const played = this.frames > this.framesAtConnect;
    s.close();
    if (this.session === s) this.session = null;
    if (!ended && this.wantAudio !== audio) {
      // the sound was turned on or off: a new session, at once; the last picture stays.
      return { renegotiate: true, played };
    }
    if (this.video.srcObject === s.stream) this.video.srcObject = null;
    const reason = ended || `no new picture for ${STALL_MS / 1000} s although the source is live`;
    return { reason, played };
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
    let headline = 'Connecting…';
    let reason = '';
    if (info && !info.live) {
      state = 'offline';
      headline = 'Offline';
      const since = clock(info.since);
      reason = since ? `since ${since}` : '';
    } else if (this.error) {
      state = 'error';
      headline = 'Error';
      const secs = Math.max(0, Math.ceil((this.retryAt - performance.now()) / 1000));
      reason = `${this.error} — retrying in ${secs} s`;
    } else if (this.playing()) {
      state = 'live';
      headline = '';
    } else if (this.session && this.frames > this.framesAtConnect) {
      headline = 'Waiting for picture…';
    }
    if (this.root.dataset.state !== state) {
      this.root.dataset.state = state;
      this.wall.summarize();
    }
    setText(this.badge, state);
    setText(this.headline, headline);
    setText(this.reason, reason);
    this.badge.title = reason;
    setText(this.bitrateEl, info?.live ? formatBitrate(info.bitrate) : '—');
    this.renderAlignment();
    this.sound.hidden = !info?.hasAudio;
    setText(this.sound, this.video.muted ? 'Unmute' : 'Mute');
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
    this.delayEl.title = 'held back this long so that every tile shows the same capture instant';
  }
}

// Wall owns the page: token form, source polling, tiles and layout.
class Wall {
  constructor() {
    const $ = (id) => document.getElementById(id);
    this.grid = $('grid');
    this.empty = $('empty');
    this.summary = $('summary');
    this.status = $('status');
    this.changeToken = $('change-token');
    this.syncToggle = $('sync-toggle');
    this.syncStatus = $('sync-status');
    this.sync = new PlayoutSync();
    this.syncTimer = 0;
    this.balancing = false;
    this.tokenPanel = $('token-panel');
    this.tokenForm = $('token-form');
    this.tokenInput = $('token-input');
    this.tokenReason = $('token-reason');
    this.tiles = new Map();
    this.token = '';
    this.polling = null;
    this.ticker = 0;
    this.visibleAt = 0;
    this.enlarged = null;
  }

  init() {
    this.tokenForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = this.tokenInput.value.trim();
      if (!token) {
        this.showTokenForm('Paste a token first: the field is empty.');
        return;
      }
      saveToken(token);
      this.tokenInput.value = '';
      this.start(token);
    });
    this.changeToken.addEventListener('click', () => {
      this.stop();
      forgetToken();
      this.token = '';
      this.showTokenForm('Paste the new token.');
    });
    this.syncToggle.addEventListener('click', () => this.setSynced(!this.sync.enabled));
    this.setSynced(loadSynced());
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.enlarged) this.toggleEnlarged(this.enlarged);
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) this.visibleAt = performance.now();
    });
    // end the sessions when the page goes away; the DELETEs outlive it.
    window.addEventListener('pagehide', () => this.stop({ keepalive: true }));
    window.addEventListener('pageshow', (ev) => {
      if (ev.persisted && this.token) this.start(this.token);
    });
    new ResizeObserver(() => this.layout()).observe(this.grid);

    const token = takeToken();
    if (token) {
      this.start(token);
    } else {
      this.showTokenForm('This wall needs an access token: open the link you were given (it ends in ?token=…), or paste the token below.');
    }
  }

  start(token) {
    this.stop();
    this.token = token;
    this.tokenPanel.hidden = true;
    this.grid.hidden = false;
    this.changeToken.hidden = false;
    this.setStatus('Loading the source list…');
    const ctrl = new AbortController();
    this.polling = ctrl;
    this.poll(ctrl.signal);
    this.ticker = setInterval(() => {
      for (const tile of this.tiles.values()) tile.tick();
    }, TICK_MS);
    this.syncToggle.hidden = false;
    this.syncTimer = setInterval(() => this.balance(), SYNC_MS);
  }

  // setSynced turns synced playout on or off, and remembers it for the browser tab.
  setSynced(on) {
    this.sync.setEnabled(on);
    saveSynced(on);
    this.syncToggle.setAttribute('aria-pressed', String(on));
    setText(this.syncToggle, on ? 'Synced: on' : 'Synced: off');
    this.syncToggle.title = on
      ? 'Every tile shows the same capture instant; faster tiles are held back. Click to play each tile as fast as it can.'
      : 'Each tile plays as fast as it can. Click to make every tile show the same capture instant.';
    this.showSync();
  }

  async balance() {
    if (this.balancing) return;
    this.balancing = true;
    try {
      await this.sync.tick([...this.tiles.values()]);
    } catch (err) {
      console.warn(`wall: synced playout: ${err?.message ?? err}`);
    } finally {
      this.balancing = false;
    }
    this.showSync();
    for (const tile of this.tiles.values()) tile.renderAlignment();
  }

  // showSync shows the skew between the tiles' capture instants on screen.
  showSync() {
    const s = this.sync;
    let text = '';
    let title = '';
    if (Number.isFinite(s.skewMs)) {
      text = s.enabled ? `in sync within ${Math.round(s.skewMs)} ms` : `${Math.round(s.skewMs)} ms apart`;
      title = `The ${s.measured} playing tiles show capture instants up to ${Math.round(s.skewMs)} ms apart.`;
    } else if (!s.capturable) {
      text = 'no capture times';
      title = 'This browser does not report the capture time of the frames it shows, so the tiles cannot be synced.';
    }
    setText(this.syncStatus, text);
    this.syncStatus.title = title;
    this.syncStatus.hidden = text === '' || this.syncToggle.hidden;
    this.syncStatus.dataset.skewMs = Number.isFinite(s.skewMs) ? String(Math.round(s.skewMs)) : '';
    this.syncStatus.dataset.synced = String(s.enabled);
  }

  stop({ keepalive = false } = {}) {
    this.polling?.abort();
    this.polling = null;
    clearInterval(this.ticker);
    clearInterval(this.syncTimer);
    for (const tile of this.tiles.values()) tile.dispose({ keepalive });
    this.tiles.clear();
    this.enlarged = null;
    this.grid.replaceChildren();
    this.empty.hidden = true;
    this.summarize();
  }

  showTokenForm(reason) {
    this.grid.hidden = true;
    this.empty.hidden = true;
    this.changeToken.hidden = true;
    this.syncToggle.hidden = true;
    this.showSync();
    this.setStatus('');
    this.tokenReason.textContent = reason;
    this.tokenPanel.hidden = false;
    this.tokenInput.focus();
  }

  // unauthorized is called when the server refuses the token.
  unauthorized(reason) {
    if (!this.token) return;
    console.warn(`wall: token refused: ${reason}`);
    this.stop();
    this.token = '';
    forgetToken();
    this.showTokenForm(`The server refused the token: ${reason}. Paste a valid token.`);
  }

  async poll(signal) {
    while (!signal.aborted) {
      try {
        const sources = await fetchSources(this.token, { signal });
        if (signal.aborted) return;
        this.apply(sources);
        this.setStatus('');
      } catch (err) {
        if (signal.aborted) return;
        if (err?.unauthorized) {
          this.unauthorized(err.message);
          return;
        }
        this.setStatus(`The source list is not up to date: ${err?.message ?? err}`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  }

  apply(sources) {
    const names = new Set(sources.map((s) => s.name));
    for (const [name, tile] of this.tiles) {
      if (names.has(name)) continue;
      tile.dispose();
      tile.root.remove();
      this.tiles.delete(name);
      if (this.enlarged === tile) this.enlarged = null;
    }
    for (const info of sources) {
      let tile = this.tiles.get(info.name);
      if (tile) {
        tile.update(info);
        continue;
      }
      tile = new Tile(info.name, this);
      this.tiles.set(info.name, tile);
      // tiles never move (moving a playing video pauses it): a new one goes in its place.
      const next = [...this.grid.children].find((c) => c.dataset.tile > info.name);
      this.grid.insertBefore(tile.root, next ?? null);
      tile.update(info);
      tile.start();
    }
    this.empty.hidden = this.tiles.size > 0;
    this.layout();
    this.summarize();
  }

  summarize() {
    const n = this.tiles.size;
    let live = 0;
    for (const tile of this.tiles.values()) if (tile.info?.live) live++;
    setText(this.summary, this.token ? `${n} source${n === 1 ? '' : 's'} · ${live} live` : '');
  }

  setStatus(text) {
    setText(this.status, text);
    this.status.hidden = text === '';
  }

  // layout picks the column count that shows 16:9 tiles largest in the grid's area.
  layout() {
    const n = this.tiles.size;
    if (n === 0) return;
    const css = getComputedStyle(this.grid);
    const gap = parseFloat(css.columnGap) || 0;
    const w = (this.grid.clientWidth || window.innerWidth) - (parseFloat(css.paddingLeft) || 0) - (parseFloat(css.paddingRight) || 0);
    const h = (this.grid.clientHeight || window.innerHeight) - (parseFloat(css.paddingTop) || 0) - (parseFloat(css.paddingBottom) || 0);
    let cols = 1;
    let best = 0;
    for (let c = 1; c <= n; c++) {
      const rows = Math.ceil(n / c);
      const tileWidth = Math.min((w - gap * (c - 1)) / c, ((h - gap * (rows - 1)) / rows) * (16 / 9));
      if (tileWidth > best) {
        best = tileWidth;
        cols = c;
      }
    }
    this.grid.style.setProperty('--cols', String(cols));
    this.grid.style.setProperty('--tile-w', `${Math.max(160, Math.floor(best))}px`);
  }

  toggleEnlarged(tile) {
    const on = this.enlarged !== tile;
    this.enlarged?.root.classList.remove('enlarged');
    this.enlarged = on ? tile : null;
    tile.root.classList.toggle('enlarged', on);
    document.body.classList.toggle('has-enlarged', on);
  }

  // setSound unmutes one tile (muting the others, so the room hears one source) or mutes it.
  setSound(tile, on) {
    for (const t of this.tiles.values()) {
      if (t !== tile && on) t.setAudio(false);
    }
    tile.setAudio(on);
    for (const t of this.tiles.values()) t.render();
  }
}

function loadSynced() {
  try {
    return window.sessionStorage.getItem(SYNCED_KEY) === '1';
  } catch {
    return false;
  }
}

function saveSynced(on) {
  try {
    window.sessionStorage.setItem(SYNCED_KEY, on ? '1' : '0');
  } catch {
    // storage disabled: the choice lasts for this page load.
  }
}

new Wall().init();
