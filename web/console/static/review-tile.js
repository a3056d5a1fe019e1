// One source of the review page: a <video> playing a window of a recording from the
// playback API, and what it shows.
//
// The contract of GET /v1/recordings/stream: presentation time 0 of the file is capture time
// `start` on the common baseline when start lies inside a recorded range (an edit list hides
// the frames decoded from the keyframe before it; the first frame's mediaTime may be up to
// one frame negative). Asked by byte range, as a media element asks, the server renders the
// window whole and serves every range of it, so the element seeks anywhere inside it: a tile
// loads a window of a few minutes once, and seeks and frame steps set currentTime. The
// capture time of a frame is start + mediaTime, and of the element's position
// start + currentTime.

import { reasonOf } from './api.js';
import { t } from './i18n.js';
import { formatUTC } from './review-time.js';
import './review-strings.js';

// PHASE_FRAMES is how many recent frames measure a tile's phase.
const PHASE_FRAMES = 25;
// SHOWN_KEEP is how many recent frames are kept to tell which one was on screen when.
const SHOWN_KEEP = 20;

// A tile loads a window of its recorded range around the instant asked: BEFORE_MS before it
// and up to WINDOW_MS in all. The server keeps a rendered window in memory, so it is kept
// short enough to render quickly and long enough that playing rarely leaves it.
const BEFORE_MS = 60 * 1000;
const WINDOW_MS = 4 * 60 * 1000;
// After its seek, a tile that reports no new frame for FRAME_WAIT_MS seeks again NUDGE_S
// further: Chromium may present nothing for a seek to the position it holds, and a frame
// presented while the page is busy may be reported late. A tile that reports no frame
// after that seek either counts as there (the element showed the frame asked already).
const FRAME_WAIT_MS = 300;
const NUDGE_S = 0.0005;
// A tile that presents, after its seek, only frames that do not cover the target (the
// recording has no picture there: a hole in its video) counts as there after HOLE_WAIT_MS,
// showing the frame the element presented.
const HOLE_WAIT_MS = 1000;

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
    this.start = null; // capture ms of the loaded window's presentation zero
    this.end = null; // capture ms where the loaded window ends
    this.loadSeq = 0;
    // The last seek: the capture instant asked, and performance.now() of its request, of
    // the element's seek and of its 'seeked'.
    this.target = NaN;
    this.seekAt = 0;
    this.seekIssued = 0;
    this.seekedAt = 0;
    this.seekWanted = false; // the seek waits for the stream's metadata
    this.firstFrameAt = 0; // performance.now() of the first frame shown after the last seek
    this.firstCapture = NaN; // capture ms of that frame
    this.frames = 0; // frames shown since the last seek
    this.frameCapture = NaN; // capture ms of the frame shown
    this.offCapture = NaN; // capture ms of the last frame presented after the seek that does not cover its target
    this.frameAt = 0; // performance.now() of that frame's callback
    this.errMs = 0; // how far ahead of the others the tile shows (capture ms)
    this.errN = 0; // frames errMs is measured over
    this.phases = []; // capture time less display time of recent frames
    this.phaseFrom = 0; // frames before this performance.now() are not measured
    this.shown = []; // recent frames presented: {at (expected display time), capture, gap}
    this.frameMs = 40; // the shortest frame interval seen
    this.lastMediaTime = NaN;
    this.unreported = 0; // frames presented with no callback (the page was busy)
    this.dropped = 0; // frames the browser dropped (decoded too late to show), while playing
    this.droppedSeen = 0; // the video element's dropped frame count at the last callback
    this.intervals = []; // capture intervals between recent reported frames
    this.present = false; // the source holds the master instant
    this.error = ''; // why the window cannot be played: the server's or the browser's words
    this.errorKey = ''; // or, when neither gave any, a key of review-strings.js
    this.build();
    this.watchFrames();
  }

  build() {
    this.root = el('article', 'tile');
    this.root.tabIndex = 0;
    this.root.dataset.tile = this.source;
    this.root.dataset.state = 'loading';

    const v = el('video', 'video');
    v.dataset.source = this.source;
    v.muted = true;
    v.playsInline = true;
    v.preload = 'auto';
    v.disablePictureInPicture = true;
    v.addEventListener('error', () => this.failed());
    v.addEventListener('ended', () => this.review.poke());
    v.addEventListener('loadedmetadata', () => {
      if (this.seekWanted) this.issueSeek();
    });
    v.addEventListener('seeked', () => {
      if (v.seeking || !this.seekIssued) return;
      this.seekedAt = performance.now();
      this.review.poke();
    });
    this.video = v;

    this.placeholder = el('div', 'placeholder');
    this.headline = el('p', 'headline', t('review.tile.loading'));
    this.reason = el('p', 'reason');
    this.placeholder.append(this.headline, this.reason);

    const label = el('footer', 'label');
    this.keyEl = el('span', 'key', String(this.index + 1));
    this.nameEl = el('span', 'name', this.source);
    this.captureEl = el('span', 'capture');
    this.sound = el('button', 'sound', t('review.tile.sound'));
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
    this.relabel();
  }

  // relabel writes the tile's titles in the language in use (render writes the rest).
  relabel() {
    this.root.title = t('review.tile.title', { name: this.source });
    this.keyEl.title = t('review.tile.key', { n: this.index + 1 });
    this.captureEl.title = t('review.tile.capture');
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
    // readyState drops to 0 when a new window is asked for: a late callback for a frame of
    // the previous one must not count, nor one of the position left by a seek (the first
    // frame after a seek must cover its target).
    const v = this.video;
    if (this.start === null || v.readyState < 1 || this.seekWanted) return;
    const mt = md.mediaTime;
    const capture = this.start + mt * 1000;
    if (!this.firstFrameAt && this.seekIssued && !this.covering(capture)) {
      // once the element has seeked, a frame that does not cover the target is what it
      // shows there (there() takes it when no covering frame comes)
      if (this.seekedAt && !v.seeking) this.offCapture = capture;
      return;
    }
    // Callbacks are best effort: a frame presented while the page was busy is not reported.
    // When the capture time skips a frame the browser did not drop, what the tile showed
    // between the last reported frame and this one is unknown (shownAt says so).
    let unreported = false;
    const droppedNow = v.getVideoPlaybackQuality?.().droppedVideoFrames ?? 0;
    if (Number.isFinite(this.lastMediaTime)) {
      const d = (mt - this.lastMediaTime) * 1000;
      if (d > 5 && d < this.frameMs - 0.5) this.frameMs = d;
      const usual = this.usualInterval(d);
      if (!v.paused && this.review.speed <= 1 && d > 1.5 * usual) {
        if (droppedNow > this.droppedSeen) this.dropped++;
        else unreported = true;
      }
    }
    this.droppedSeen = droppedNow;
    if (unreported) this.unreported++;
    this.lastMediaTime = mt;
    this.frameCapture = capture;
    this.frameAt = performance.now();
    if (md.expectedDisplayTime) {
      this.shown.push({ at: md.expectedDisplayTime, capture, gap: unreported });
      if (this.shown.length > SHOWN_KEEP) this.shown.shift();
    }
    // the tile's phase: capture time less display time (at the common speed), per frame
    if (!v.paused && this.frameAt > this.phaseFrom && md.expectedDisplayTime) {
      this.phases.push(capture - md.expectedDisplayTime * this.review.speed);
      if (this.phases.length > PHASE_FRAMES) this.phases.shift();
    }
    this.frames++;
    if (!this.firstFrameAt) {
      this.firstFrameAt = this.frameAt;
      this.firstCapture = capture;
      this.review.poke();
    }
  }

  // usualInterval notes the capture interval d between two reported frames and returns the
  // median of the recent ones (capture times jitter: the shortest one seen is no measure).
  usualInterval(d) {
    if (d > 5 && d < 1000) {
      this.intervals.push(d);
      if (this.intervals.length > 31) this.intervals.shift();
    }
    const v = [...this.intervals].sort((a, b) => a - b);
    return v.length ? v[v.length >> 1] : 40;
  }

  // covering tells whether a frame captured at capture is the one that covers the last
  // seek's target: at it or at most about one frame before it.
  covering(capture) {
    return capture <= this.target + 2 && capture > this.target - 1.5 * Math.max(this.frameMs, 40) - 2;
  }

  // shownAt returns the capture ms of the frame on screen at display time t (the last one
  // presented by then), or NaN when the tile's recent frames do not tell.
  shownAt(t) {
    for (let i = this.shown.length - 1; i >= 0; i--) {
      if (this.shown[i].at > t) continue;
      if (this.shown[i + 1]?.gap) return NaN; // it was followed by frames not reported
      return this.shown[i].capture;
    }
    return NaN;
  }

  // remeasure forgets the tile's phase, from now until settle ms from now.
  remeasure(settle = 0) {
    this.phases = [];
    this.phaseFrom = performance.now() + settle;
    this.errMs = 0;
    this.errN = 0;
  }

  // phase returns the mean of the recent frames' phase, or NaN.
  phase() {
    return this.phases.length ? this.phases.reduce((a, b) => a + b, 0) / this.phases.length : NaN;
  }

  // rangeAt returns the recorded range holding capture instant t, or null.
  rangeAt(t) {
    return this.ranges.find((r) => r.start <= t && t < r.end) ?? null;
  }

  // nextRange returns the first range starting after t, or null.
  nextRange(t) {
    return this.ranges.find((r) => r.start > t) ?? null;
  }

  // covers tells whether the loaded window holds capture instant t, and lead ms after it
  // unless the window ends where the recording does.
  covers(t, lead = 0) {
    if (this.start === null || this.error || t < this.start || t >= this.end) return false;
    const r = this.rangeAt(t);
    return t + lead < this.end || !r || this.end >= Math.min(r.end, this.review.window.end);
  }

  // load asks for the window of range r around capture instant t, paused at its start.
  load(t, r) {
    const start = Math.round(Math.max(r.start, t - BEFORE_MS));
    const end = Math.round(Math.min(r.end, start + WINDOW_MS, this.review.window.end));
    this.loadSeq++;
    this.start = start;
    this.end = end;
    this.error = '';
    this.errorKey = '';
    this.target = start;
    this.seekIssued = 0;
    this.seekedAt = 0;
    this.seekWanted = false;
    this.resetShown();
    this.video.pause();
    this.video.playbackRate = this.review.speed;
    this.video.src = this.review.streamURL(this.source, start, end);
  }

  // unload drops the stream (nothing to show ahead).
  unload() {
    if (this.start === null) return;
    this.start = null;
    this.end = null;
    this.resetShown();
    this.video.removeAttribute('src');
    this.video.load();
  }

  resetShown() {
    this.firstFrameAt = 0;
    this.firstCapture = NaN;
    this.frames = 0;
    this.frameCapture = NaN;
    this.offCapture = NaN;
    this.lastMediaTime = NaN;
    this.shown = [];
    this.remeasure();
  }

  // seekTo pauses the tile and shows the frame covering capture instant t (inside the
  // loaded window): at once, or when the element knows the stream's length.
  seekTo(t) {
    this.video.pause();
    this.target = t;
    this.seekAt = performance.now();
    this.seekIssued = 0;
    this.seekedAt = 0;
    this.nudged = false;
    const shown = this.frameCapture;
    this.resetShown();
    this.frameCapture = shown;
    if (this.video.readyState >= 1) this.issueSeek();
    else this.seekWanted = true;
  }

  issueSeek() {
    this.seekWanted = false;
    this.seekIssued = performance.now();
    this.video.currentTime = Math.max(0, (this.target - this.start) / 1000);
  }

  // nudge seeks again a fraction of a millisecond past the target, so that the element
  // presents (and reports) the frame it shows there.
  nudge() {
    this.nudged = true;
    this.seekedAt = 0;
    this.video.currentTime = Math.max(0, (this.target - this.start) / 1000) + NUDGE_S;
  }

  // there tells whether the last seek is done: the element has seeked and presented the
  // frame asked (or presented none new for a while: it showed that frame already; or,
  // for HOLE_WAIT_MS, only frames that do not cover it: the recording has none that does).
  there(now) {
    if (this.error) return true;
    if (!this.seekedAt) return false;
    if (this.firstFrameAt) return true;
    if (now - this.seekedAt < FRAME_WAIT_MS) return false;
    if (!this.nudged && !Number.isFinite(this.offCapture)) {
      this.nudge();
      return false;
    }
    if (!this.covering(this.frameCapture)) {
      if (!Number.isFinite(this.offCapture) || now - this.seekedAt < HOLE_WAIT_MS) return false;
      this.frameCapture = this.offCapture;
    }
    this.firstFrameAt = now;
    this.firstCapture = this.frameCapture;
    this.frames = Math.max(this.frames, 1);
    return true;
  }

  // clockMs is the capture time of the element's position, or NaN.
  clockMs() {
    if (this.start === null || this.video.readyState < 1) return NaN;
    return this.start + this.video.currentTime * 1000;
  }

  // active tells whether the tile is playing the master instant now.
  active() {
    const v = this.video;
    return this.present && this.start !== null && !this.error && !v.paused && !v.ended && !v.seeking && v.readyState >= 3 && this.firstFrameAt > 0;
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
    let why = this.video.error?.message || '';
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
    this.errorKey = why ? '' : 'review.tile.unplayable';
    this.error = why || 'the recording cannot be played';
    console.warn(`review: ${this.source}: ${this.error}`);
    this.review.poke();
  }

  // render shows the tile's state: "no recording" with the next range, loading, error.
  render(master) {
    let state = 'showing';
    let headline = '';
    let reason = '';
    if (this.present && this.error) {
      state = 'error';
      headline = t('review.tile.error');
      reason = this.errorKey ? t(this.errorKey) : this.error;
    } else if (!this.present) {
      state = 'absent';
      headline = t('review.tile.absent');
      const next = this.nextRange(master);
      const prev = [...this.ranges].reverse().find((r) => r.end <= master);
      reason = next ? t('review.tile.next', { time: formatUTC(next.start) }) : t('review.tile.nothing-later');
      if (prev) reason = t('review.tile.last', { time: formatUTC(prev.end), next: reason });
    } else if (!Number.isFinite(this.frameCapture) || (!this.firstFrameAt && !this.review.sync)) {
      state = 'loading';
      headline = t('review.tile.loading');
    }
    if (this.root.dataset.state !== state) this.root.dataset.state = state;
    this.placeholder.hidden = state === 'showing';
    setText(this.headline, headline);
    setText(this.reason, reason);
    setText(this.captureEl, state === 'showing' ? formatUTC(this.frameCapture) : '—');
    const on = this.review.audio === this;
    this.sound.setAttribute('aria-pressed', String(on));
    setText(this.sound, t(on ? 'review.tile.sound-on' : 'review.tile.sound'));
    this.root.classList.toggle('audible', on);
  }
}
