// One source of the review page: a <video> playing a stitched recording from the playback
// API, and what it shows.
//
// The contract of GET /v1/recordings/stream: presentation time 0 of the file is capture time
// `start` on the common baseline when start lies inside a recorded range (an edit list hides
// the frames decoded from the keyframe before it). Chromium honours the edit list: paused at
// 0 it shows the frame captured at start. The server does not serve byte ranges, so the
// element cannot seek (its seekable range is [0, 0]): every seek or frame step loads a new
// stream that starts at the wanted instant. The capture time of a frame is therefore
// start + mediaTime, and of the element's position start + currentTime.

import { reasonOf } from './api.js';
import { formatUTC } from './review-time.js';

// WINDOW_MS bounds one stream; playing past it loads the next one.
const WINDOW_MS = 15 * 60 * 1000;

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export class ReviewTile {
  constructor(source, index, review) {
    this.source = source;
    this.index = index;
    this.review = review;
    this.ranges = []; // recorded ranges [{start, end}] in capture ms, from the coverage
    this.start = null; // capture ms of the loaded stream's presentation zero
    this.end = null; // capture ms where the loaded stream ends
    this.loadedAt = 0; // performance.now() of the last load
    this.firstFrameAt = 0; // performance.now() of the first frame of the last load
    this.frameCapture = NaN; // capture ms of the frame shown
    this.frameAt = 0; // performance.now() of that frame's callback
    this.frameShownAt = 0; // performance.now() when that frame went on screen
    this.firstCapture = NaN; // capture ms of the first frame of the last load
    this.errMs = 0; // how far ahead of the others the tile shows, smoothed
    this.frames = 0;
    this.frameMs = 40; // the shortest frame interval seen
    this.lastMediaTime = NaN;
    this.present = false; // the source holds the master instant
    this.error = '';
    this.loadSeq = 0;
    this.build();
    this.watchFrames();
  }

  build() {
    this.root = el('article', 'tile');
    this.root.tabIndex = 0;
    this.root.dataset.tile = this.source;
    this.root.dataset.state = 'loading';
    this.root.title = `${this.source}: click to enlarge or shrink`;

    const v = el('video', 'video');
    v.dataset.source = this.source;
    v.muted = true;
    v.playsInline = true;
    v.preload = 'auto';
    v.disablePictureInPicture = true;
    v.addEventListener('error', () => this.failed());
    v.addEventListener('ended', () => this.review.poke());
    this.video = v;

    this.placeholder = el('div', 'placeholder');
    this.headline = el('p', 'headline', 'Loading…');
    this.reason = el('p', 'reason');
    this.placeholder.append(this.headline, this.reason);

    const label = el('footer', 'label');
    this.keyEl = el('span', 'key', String(this.index + 1));
    this.keyEl.title = `Press ${this.index + 1} for this tile's sound`;
    this.nameEl = el('span', 'name', this.source);
    this.captureEl = el('span', 'capture');
    this.captureEl.title = 'Capture time of the frame shown (UTC)';
    this.sound = el('button', 'sound', 'Sound');
    this.sound.type = 'button';
    this.sound.setAttribute('aria-pressed', 'false');
    this.sound.addEventListener('click', (ev) => {
      ev.stopPropagation();
      this.review.setAudio(this.review.audio === this ? null : this);
    });
    label.append(this.keyEl, this.nameEl, this.captureEl, this.sound);
    if (this.index > 8) this.keyEl.hidden = true;

    this.root.append(v, this.placeholder, label);
    this.root.addEventListener('click', () => this.review.toggleEnlarged(this));
  }

  watchFrames() {
    const v = this.video;
    if (typeof v.requestVideoFrameCallback !== 'function') return;
    const onFrame = (now, md) => {
      this.onFrame(md);
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  }

  onFrame(md) {
    // readyState drops to 0 when a new stream is asked for: a late callback for a frame of
    // the previous one must not count.
    if (this.start === null || this.video.readyState < 1) return;
    const mt = md.mediaTime;
    if (Number.isFinite(this.lastMediaTime)) {
      const d = (mt - this.lastMediaTime) * 1000;
      if (d > 5 && d < this.frameMs - 0.5) this.frameMs = d;
    }
    this.lastMediaTime = mt;
    this.frameCapture = this.start + mt * 1000;
    this.frameAt = performance.now();
    this.frameShownAt = md.expectedDisplayTime ?? this.frameAt;
    this.frames++;
    if (!this.firstFrameAt) {
      this.firstFrameAt = this.frameAt;
      this.firstCapture = this.frameCapture;
      this.review.poke();
    }
  }

  // displayClock is the capture instant the tile shows at time now (performance.now()),
  // from its last frame and when that frame was put on screen, at the given speed.
  displayClock(now, speed) {
    if (!Number.isFinite(this.frameCapture)) return NaN;
    return this.frameCapture + (now - this.frameShownAt) * speed;
  }

  // rangeAt returns the recorded range holding capture instant t, or null.
  rangeAt(t) {
    return this.ranges.find((r) => r.start <= t && t < r.end) ?? null;
  }

  // nextRange returns the first range starting after t, or null.
  nextRange(t) {
    return this.ranges.find((r) => r.start > t) ?? null;
  }

  // covers tells whether the loaded stream holds capture instant t.
  covers(t) {
    return this.start !== null && !this.error && this.start <= t && t < this.end;
  }

  // load asks for the stream that starts at capture instant start (inside range r), paused.
  load(start, r) {
    start = Math.round(start);
    const end = Math.min(r.end, start + WINDOW_MS, this.review.window.end);
    this.loadSeq++;
    this.start = start;
    this.end = end;
    this.error = '';
    this.loadedAt = performance.now();
    this.firstFrameAt = 0;
    this.frameCapture = NaN;
    this.firstCapture = NaN;
    this.lastMediaTime = NaN;
    this.errMs = 0;
    this.video.pause();
    this.video.playbackRate = this.review.speed;
    this.video.src = this.review.streamURL(this.source, start, end);
  }

  // unload drops the stream (nothing to show ahead).
  unload() {
    if (this.start === null) return;
    this.start = null;
    this.end = null;
    this.firstFrameAt = 0;
    this.frameCapture = NaN;
    this.video.removeAttribute('src');
    this.video.load();
  }

  // clockMs is the capture time of the element's position, or NaN.
  clockMs() {
    if (this.start === null || this.video.readyState < 1) return NaN;
    return this.start + this.video.currentTime * 1000;
  }

  // active tells whether the tile is playing the master instant now.
  active() {
    const v = this.video;
    return this.present && this.start !== null && !this.error && !v.paused && !v.ended && v.readyState >= 3 && this.firstFrameAt > 0;
  }

  // stalled tells whether the tile should be playing the master instant but waits for data.
  stalled() {
    const v = this.video;
    return this.present && this.start !== null && !this.error && !v.paused && !v.ended && v.readyState < 3 &&
      this.firstFrameAt > 0 && this.clockMs() < this.end - 500;
  }

  async failed() {
    const seq = this.loadSeq;
    const src = this.video.currentSrc || this.video.src;
    if (!src || this.start === null) return;
    let why = this.video.error?.message || 'the recording cannot be played';
    // the element cannot read the server's reason: ask again, and stop at the headers.
    const ctl = new AbortController();
    try {
      const res = await fetch(src, { signal: ctl.signal, cache: 'no-store' });
      if (!res.ok) why = await reasonOf(res);
    } catch {
      // the server is unreachable: the element's message says enough.
    } finally {
      ctl.abort();
    }
    if (seq !== this.loadSeq) return;
    this.error = why;
    console.warn(`review: ${this.source}: ${why}`);
    this.review.poke();
  }

  // render shows the tile's state: "no recording" with the next range, loading, error.
  render(master) {
    let state = 'showing';
    let headline = '';
    let reason = '';
    if (this.present && this.error) {
      state = 'error';
      headline = 'Cannot play';
      reason = this.error;
    } else if (!this.present) {
      state = 'absent';
      headline = 'no recording';
      const next = this.nextRange(master);
      const prev = [...this.ranges].reverse().find((r) => r.end <= master);
      reason = next ? `next recording at ${formatUTC(next.start)}` : 'nothing later in this window';
      if (prev) reason = `last recording ended ${formatUTC(prev.end)}; ${reason}`;
    } else if (!this.firstFrameAt || !Number.isFinite(this.frameCapture)) {
      state = 'loading';
      headline = 'Loading…';
    } else if (this.start > master + 1) {
      state = 'loading';
      headline = 'Catching up…';
    }
    if (this.root.dataset.state !== state) this.root.dataset.state = state;
    this.placeholder.hidden = state === 'showing';
    setText(this.headline, headline);
    setText(this.reason, reason);
    setText(this.captureEl, state === 'showing' ? formatUTC(this.frameCapture) : '—');
    const on = this.review.audio === this;
    this.sound.setAttribute('aria-pressed', String(on));
    setText(this.sound, on ? 'Sound on' : 'Sound');
    this.root.classList.toggle('audible', on);
  }
}
