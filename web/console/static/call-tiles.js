// What the call page shows and plays: a Tile per participant (and per shared screen), the
// Sound of the others (one audio element per remote audio track, with a level meter on a
// WebAudio AnalyserNode), and the small pure helpers the page and its tests share.

import { t } from './i18n.js';
import './call-strings.js';

export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// layerLabel turns a layer event (layer rid, "" for one layer, "off" when paused) into a
// label (in the language in use), and says whether the video is paused.
export function layerLabel(layer, reason) {
  if (layer === undefined || layer === null) return { text: '', paused: false };
  if (layer === 'off') {
    if (reason === 'muted') return { text: '', paused: false };
    return { text: t('call.layer.paused'), paused: true };
  }
  // the simulcast layers of PROTOCOL.md: q, h, f.
  return { text: ['q', 'h', 'f'].includes(layer) ? t(`call.layer.${layer}`) : '', paused: false };
}

// fieldName returns the camera name of a field track id ("field:cam1/video" → "cam1"), or ''.
export function fieldName(trackID) {
  const m = /^field:(.+)\/[a-z]+\d*$/.exec(String(trackID));
  return m ? m[1] : '';
}

// initials gives the placeholder letters of a name.
export function initials(name) {
  const words = String(name).trim().split(/[\s._-]+/).filter(Boolean);
  return words.slice(0, 2).map((w) => w[0].toUpperCase()).join('') || '?';
}

// Tile is one participant's camera (or screen) with its labels.
export class Tile {
  constructor({ key, participant, screen = false, self = false }) {
    this.key = key;
    this.participant = participant;
    this.screen = screen;
    this.self = self;
    this.track = null;
    this.frames = 0;
    this.build();
  }

  build() {
    const root = el('article', 'tile');
    root.setAttribute('role', 'group');
    root.dataset.tile = this.key;
    root.dataset.participant = this.participant;
    if (this.self) root.classList.add('self');
    if (this.screen) root.classList.add('screen');

    const v = el('video', 'video');
    for (const attr of ['muted', 'autoplay', 'playsinline']) v.setAttribute(attr, '');
    v.muted = true;
    v.autoplay = true;
    v.playsInline = true;
    v.disablePictureInPicture = true;
    this.video = v;
    if (typeof v.requestVideoFrameCallback === 'function') {
      const onFrame = () => {
        this.frames++;
        v.requestVideoFrameCallback(onFrame);
      };
      v.requestVideoFrameCallback(onFrame);
    }

    this.placeholder = el('div', 'placeholder');
    this.avatar = el('p', 'avatar');
    this.reason = el('p', 'reason');
    this.placeholder.append(this.avatar, this.reason);

    const label = el('footer', 'label');
    this.nameEl = el('span', 'name');
    this.roleEl = el('span', 'badge role');
    this.micEl = el('span', 'badge mic-off');
    this.camEl = el('span', 'badge cam-off');
    this.layerEl = el('span', 'layer');
    this.meter = el('span', 'meter');
    this.meter.setAttribute('aria-hidden', 'true');
    this.meterFill = el('span', 'meter-fill');
    this.meter.append(this.meterFill);
    label.append(this.meter, this.nameEl, this.roleEl, this.micEl, this.camEl, this.layerEl);
    root.append(v, this.placeholder, label);
    this.root = root;
  }

  // setVideo shows track (a MediaStreamTrack, or null for none); source names it for tests
  // and tools (data-source: the room track id, or local:<source> for the own preview).
  setVideo(track, source) {
    if (this.video.dataset.source !== source) this.video.dataset.source = source;
    if (this.track === track) return;
    this.track = track;
    this.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) this.video.play().catch(() => {});
  }

  // update renders the tile's state in the language in use: {name, role, micMuted (null: no
  // microphone), camMuted, hasVideo, layer, layerReason, speaking, note}.
  update(s) {
    const r = this.root;
    setText(this.nameEl, s.name);
    if (r.getAttribute('aria-label') !== s.name) r.setAttribute('aria-label', s.name);
    setText(this.roleEl, s.role || '');
    this.roleEl.hidden = !s.role;
    setText(this.micEl, t('call.tile.mic-off'));
    setText(this.camEl, t('call.tile.camera-off'));
    this.micEl.hidden = s.micMuted !== true;
    this.camEl.hidden = !(s.camMuted === true);
    r.dataset.mic = s.micMuted === null || s.micMuted === undefined ? 'none' : s.micMuted ? 'muted' : 'on';
    r.dataset.camera = !s.hasVideo ? 'none' : s.camMuted ? 'muted' : 'on';
    const layer = layerLabel(s.layer, s.layerReason);
    setText(this.layerEl, layer.text);
    this.layerEl.hidden = layer.text === '';
    r.dataset.layer = s.layer ?? '';
    r.classList.toggle('speaking', Boolean(s.speaking));
    r.dataset.speaking = s.speaking ? 'true' : 'false';

    let reason = '';
    if (!s.hasVideo) reason = t(this.screen ? 'call.tile.screen-starting' : 'call.tile.no-camera');
    else if (s.camMuted) reason = t('call.tile.camera-off');
    else if (layer.paused) reason = t('call.tile.paused');
    else if (!this.track) reason = t('call.tile.connecting');
    const showVideo = reason === '';
    this.placeholder.hidden = showVideo;
    setText(this.avatar, initials(s.name));
    setText(this.reason, s.note || reason);
    r.dataset.state = showVideo ? 'video' : 'placeholder';
  }

  // setLevel shows the microphone level (0..1 peak amplitude).
  setLevel(level) {
    const v = Math.max(0, Math.min(1, level || 0));
    const rounded = String(Math.round(v * 1000) / 1000);
    if (this.root.dataset.level !== rounded) this.root.dataset.level = rounded;
    // a log scale: -60 dBFS is empty, 0 dBFS full.
    const db = v > 0 ? 20 * Math.log10(v) : -100;
    this.meterFill.style.width = `${Math.max(0, Math.min(100, ((db + 60) / 60) * 100)).toFixed(0)}%`;
  }

  remove() {
    this.video.srcObject = null;
    this.root.remove();
  }
}

// AudioMeter reads a track's peak amplitude through an AnalyserNode. Its window (the
// analyser's largest, about 0.7 s at 48 kHz) covers the time between two reads, so short
// sounds are not missed.
class AudioMeter {
  constructor(ctx, track) {
    this.source = ctx.createMediaStreamSource(new MediaStream([track]));
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 32768;
    this.buf = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser);
  }

  read() {
    this.analyser.getFloatTimeDomainData(this.buf);
    let peak = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const a = Math.abs(this.buf[i]);
      if (a > peak) peak = a;
    }
    return peak;
  }

  close() {
    try {
      this.source.disconnect();
    } catch {
      // already disconnected.
    }
  }
}

// Sound plays the others' audio tracks and meters them (and the own microphone). Browsers
// may refuse to play sound before the user interacted with the page: blocked is then true
// and a 'blocked' event fires; enable(), called from a click, starts everything.
export class Sound extends EventTarget {
  constructor(container) {
    super();
    this.container = container;
    this.ctx = null;
    this.sinks = new Map(); // id → {track, audio (null for a local track), meter}
    this.blocked = false;
  }

  context() {
    if (!this.ctx) {
      const AC = window.AudioContext || window.webkitAudioContext;
      if (!AC) return null;
      this.ctx = new AC();
      this.ctx.addEventListener('statechange', () => this.check());
    }
    return this.ctx;
  }

  // attach plays (unless local) and meters track as id.
  attach(id, track, { local = false } = {}) {
    const cur = this.sinks.get(id);
    if (cur && cur.track === track) return;
    if (cur) this.detach(id);
    let audio = null;
    if (!local) {
      audio = el('audio');
      audio.dataset.source = id;
      audio.autoplay = true;
      audio.srcObject = new MediaStream([track]);
      this.container.append(audio);
      audio.play().then(() => this.check(), (err) => {
        if (err?.name === 'NotAllowedError') this.setBlocked(true);
      });
    }
    let meter = null;
    const ctx = this.context();
    if (ctx) {
      try {
        meter = new AudioMeter(ctx, track);
      } catch (err) {
        console.warn(`call: no level meter for ${id}: ${err?.message ?? err}`);
      }
    }
    this.sinks.set(id, { track, audio, meter });
    this.check();
  }

  detach(id) {
    const s = this.sinks.get(id);
    if (!s) return;
    this.sinks.delete(id);
    s.meter?.close();
    if (s.audio) {
      s.audio.srcObject = null;
      s.audio.remove();
    }
  }

  has(id) {
    return this.sinks.has(id);
  }

  ids() {
    return [...this.sinks.keys()];
  }

  // level returns the peak amplitude of id's recent sound (0..1), or 0.
  level(id) {
    const s = this.sinks.get(id);
    if (!s?.meter || s.track.readyState !== 'live' || !s.track.enabled) return 0;
    return s.meter.read();
  }

  check() {
    const suspended = this.ctx?.state === 'suspended' && this.sinks.size > 0;
    const paused = [...this.sinks.values()].some((s) => s.audio && s.audio.paused);
    this.setBlocked(suspended || (this.blocked && paused));
  }

  setBlocked(on) {
    if (this.blocked === on) return;
    this.blocked = on;
    this.dispatchEvent(new CustomEvent(on ? 'blocked' : 'unblocked'));
  }

  // enable starts the sound; call it from a user's click.
  async enable() {
    try {
      await this.ctx?.resume();
    } catch {
      // the meters stay silent; the sound itself may still play.
    }
    await Promise.all([...this.sinks.values()].map((s) => s.audio?.play().catch(() => {})));
    this.blocked = false;
    this.check();
    if (!this.blocked) this.dispatchEvent(new CustomEvent('unblocked'));
  }

  clear() {
    for (const id of [...this.sinks.keys()]) this.detach(id);
  }
}
