// The review page: recordings of several sources of an incident, played side by side so that
// every tile shows the same capture instant, for after-action review.
//
// One master clock holds the capture instant under review (Unix ms on the common baseline).
// Each tile plays GET /v1/recordings/stream from an instant inside one of its recorded ranges
// (review-tile.js). While playing, the master is the median of the playing tiles' positions
// (or runs on the wall clock when no source holds the instant), and each tile's playbackRate
// is nudged so that its position meets the master; a tile too far off loads again ahead of
// the master and joins when the master reaches it. A tile whose source holds nothing at the
// master shows "no recording", loads its next range and joins when that range starts. A
// seek, or a frame step, loads every tile again at the new instant: the streams cannot seek.
//
// The page measures what it shows: for every animation frame, the spread between the
// capture times of the frames the playing tiles show (requestVideoFrameCallback), and for
// every seek the time until each tile shows its first frame. window.reviewStats exposes them.
//
// Address: review.html?token=&incident=&sources=a,b&start=&end=&t= (times in Unix ms or
// RFC 3339). The token is kept for the tab and removed from the address (api.js).

import { APIError, authHeaders, forgetToken, reasonOf, request, saveToken, takeToken } from './api.js';
import { formatISO, formatUTC, parseTime, percentile } from './review-time.js';
import { Timeline } from './review-timeline.js';
import { ReviewTile } from './review-tile.js';

const SPEEDS = [0.25, 0.5, 1, 2, 4, 8, 16];
// CONTROL_MS is how often the tiles are nudged towards the master.
const CONTROL_MS = 200;
// The time a tile takes to meet the others, in wall seconds.
const CATCH_UP_S = 0.6;
// Closer than this (ms) a tile is left alone.
const DEADBAND_MS = 2;
// How much of each animation frame's measure goes into a tile's smoothed error.
const ERR_SMOOTHING = 0.1;
// A tile without data for this long (ms) makes every tile wait for it.
const STALL_MS = 250;
// After a seek, playing on waits at most this long (ms) for every tile to have data.
const READY_WAIT_MS = 3000;
// A tile's playbackRate is nudged at most this much (relative).
const MAX_NUDGE = 0.2;
// A tile further than this from the master (ms, at 1×) loads again ahead of it.
const HARD_MS = 1000;
// A reloaded tile loads this far (wall ms) ahead of the master, to join it when it gets there.
const JOIN_LEAD_MS = 1500;
// Spread samples kept.
const SPREAD_KEEP = 1200;
// A seek waits at most this long for the tiles' first frames before playing on.
const SEEK_WAIT_MS = 10000;
const COVERAGE_REFRESH_MS = 15000;
const DEFAULT_WINDOW_MS = 60 * 60 * 1000;

const $ = (id) => document.getElementById(id);

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const n = v.length;
  return n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

function speedLabel(s) {
  return s === 0.25 ? '¼×' : s === 0.5 ? '½×' : `${s}×`;
}

class Review {
  constructor() {
    this.token = '';
    this.incident = '';
    this.sources = [];
    this.window = { start: NaN, end: NaN };
    this.tiles = [];
    this.master = NaN;
    this.anchorWall = 0;
    this.playing = false;
    this.speed = 1;
    this.audio = null;
    this.enlarged = null;
    this.seek = null; // the seek under way: {target, at, resume}
    this.spread = [];
    this.spreadCount = 0;
    this.seekToFrame = [];
    this.lastControl = 0;
    this.buffering = 0; // performance.now() since every tile waits for a stalled one
    this.stallSince = 0;
    this.stats = { state: 'loading', spreadMs: [], spreadCount: 0, p99: null, seekToFrameMs: [], tiles: [], errors: [] };
    window.reviewStats = this.stats;
  }

  async init() {
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const tok = $('token-input').value.trim();
      if (!tok) return;
      saveToken(tok);
      this.token = tok;
      $('token-panel').hidden = true;
      this.open();
    });
    $('pick-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.pickSubmitted();
    });
    $('pick-incident').addEventListener('change', () => this.fillSources($('pick-incident').value, []));
    this.bindControls();
    this.token = takeToken();
    if (!this.token) {
      this.askToken('');
      return;
    }
    this.open();
  }

  askToken(reason) {
    $('player').hidden = true;
    $('token-reason').textContent = reason;
    $('token-panel').hidden = false;
    $('token-input').focus();
  }

  setStatus(text) {
    $('status').textContent = text;
    $('status').hidden = text === '';
    if (text) this.stats.errors.push(text);
  }

  // api GETs path as JSON; errors carry the server's plain-text reason.
  async api(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params ?? {})) {
      for (const x of [].concat(v)) q.append(k, String(x));
    }
    const res = await request(`${path}?${q}`, { headers: authHeaders(this.token), cache: 'no-store' });
    if (!res.ok) throw new APIError(await reasonOf(res), res.status);
    return res.json();
  }

  fail(err) {
    if (err?.unauthorized || err?.status === 403) {
      forgetToken();
      this.token = '';
      this.askToken(`The server refused the token: ${err.message}`);
      return;
    }
    this.setStatus(err?.message ?? String(err));
  }

  // open reads the address, the recordings list and the coverage, and builds the tiles.
  async open() {
    const q = new URLSearchParams(window.location.search);
    let list;
    try {
      list = await this.api('/v1/recordings');
    } catch (err) {
      this.fail(err);
      return;
    }
    this.list = list;
    const incidents = Array.isArray(list.incidents) ? list.incidents : [];
    this.incident = q.get('incident') || list.default_incident || incidents[0]?.incident || '';
    const inc = incidents.find((i) => i.incident === this.incident);
    const known = (inc?.sources ?? []).map((s) => s.source).sort();
    this.sources = (q.get('sources') ?? q.getAll('source').join(',')).split(',').map((s) => s.trim()).filter(Boolean);
    if (!this.sources.length) this.sources = known.slice(0, 9);
    let start = parseTime(q.get('start'));
    let end = parseTime(q.get('end'));
    if (!Number.isFinite(start) || !Number.isFinite(end)) {
      const chosen = (inc?.sources ?? []).filter((s) => this.sources.includes(s.source));
      const first = Math.min(...chosen.map((s) => Date.parse(s.first)));
      const last = Math.max(...chosen.map((s) => Date.parse(s.last)));
      if (!Number.isFinite(end)) end = Number.isFinite(last) ? last : Date.now();
      if (!Number.isFinite(start)) start = Number.isFinite(first) ? Math.max(first, end - DEFAULT_WINDOW_MS) : end - DEFAULT_WINDOW_MS;
    }
    this.fillPicker(incidents, start, end);
    if (!this.incident || !this.sources.length) {
      $('pick').open = true;
      this.showEmpty(this.incident ? 'Choose the sources to review.' : 'There are no recordings yet.');
      return;
    }
    if (!(end > start)) {
      $('pick').open = true;
      this.showEmpty('The window is empty: "To" must be after "From".');
      return;
    }
    this.window = { start, end };
    try {
      await this.loadCoverage();
    } catch (err) {
      $('pick').open = true;
      this.fail(err);
      return;
    }
    let t = parseTime(q.get('t'), start);
    if (!Number.isFinite(t)) t = this.firstRecorded();
    t = Math.min(Math.max(t, start), end - 1);
    this.build();
    $('player').hidden = false;
    this.setStatus('');
    this.seekTo(t);
    this.loop();
    setInterval(() => this.loadCoverage().catch((err) => this.fail(err)), COVERAGE_REFRESH_MS);
  }

  showEmpty(text) {
    $('empty').textContent = text;
    $('empty').hidden = false;
  }

  firstRecorded() {
    const starts = (this.coverage ?? []).flatMap((c) => c.ranges.map((r) => r.start));
    return starts.length ? Math.min(...starts) : this.window.start;
  }

  async loadCoverage() {
    const body = await this.api('/v1/recordings/coverage', {
      incident: this.incident, source: this.sources, start: Math.round(this.window.start), end: Math.round(this.window.end),
    });
    this.coverage = (body.sources ?? []).map((c) => ({
      source: c.source,
      ranges: (c.ranges ?? []).map((r) => ({ start: Date.parse(r.start), end: Date.parse(r.end) })),
    }));
    for (const tile of this.tiles) tile.ranges = this.coverage.find((c) => c.source === tile.source)?.ranges ?? [];
    this.timeline?.setSources(this.window.start, this.window.end, this.coverage);
    $('summary').textContent = `${this.incident} · ${this.sources.length} source${this.sources.length === 1 ? '' : 's'} · ${formatUTC(this.window.start)} – ${formatUTC(this.window.end)} UTC · site ${body.site ?? '?'}`;
  }

  build() {
    const grid = $('grid');
    this.tiles = this.sources.map((s, i) => {
      const tile = new ReviewTile(s, i, this);
      tile.ranges = this.coverage.find((c) => c.source === s)?.ranges ?? [];
      grid.append(tile.root);
      return tile;
    });
    grid.dataset.count = String(this.tiles.length);
    this.timeline = new Timeline($('timeline'), (t) => this.seekTo(t));
    this.timeline.setSources(this.window.start, this.window.end, this.coverage);
  }

  streamURL(source, start, end) {
    const q = new URLSearchParams({ incident: this.incident, source, start: String(start), end: String(Math.round(end)), token: this.token });
    return `/v1/recordings/stream?${q}`;
  }

  // now returns the master instant.
  now() {
    if (!this.playing || this.seek || this.buffering) return this.master;
    return this.master + (performance.now() - this.anchorWall) * this.speed;
  }

  // seekTo moves the master to capture instant t and loads every tile there. Playing goes
  // on once every tile that holds t shows its first frame.
  seekTo(t, { resume = this.playing || !!this.seek?.resume } = {}) {
    t = Math.min(Math.max(Math.round(t), this.window.start), this.window.end - 1);
    this.master = t;
    this.playing = false;
    this.buffering = 0;
    this.seek = { target: t, at: performance.now(), resume };
    for (const tile of this.tiles) {
      tile.video.pause();
      const r = tile.rangeAt(t);
      tile.present = !!r;
      if (r) tile.load(t, r);
      else this.prepareAbsent(tile, t);
    }
    this.saveAddress();
    this.poke();
  }

  // prepareAbsent loads the absent tile's next range, paused, to join when it starts.
  prepareAbsent(tile, t) {
    const next = tile.nextRange(t);
    if (!next) {
      tile.unload();
      return;
    }
    if (tile.start !== next.start) tile.load(next.start, next);
  }

  // seekDone checks whether the seek under way has its first frames, and then plays on
  // once every tile has data to play with (so that they start together).
  seekDone() {
    const s = this.seek;
    if (!s) return;
    const now = performance.now();
    const mine = this.tiles.filter((t) => t.present && !t.error && t.start === s.target);
    const waiting = mine.filter((t) => !t.firstFrameAt);
    if (waiting.length && now - s.at < SEEK_WAIT_MS) return;
    if (!s.shownAt) {
      s.shownAt = now;
      const shown = mine.filter((t) => t.firstFrameAt);
      if (shown.length && !waiting.length) {
        this.seekToFrame.push(Math.round(Math.max(...shown.map((t) => t.firstFrameAt)) - s.at));
        if (this.seekToFrame.length > 50) this.seekToFrame.shift();
      }
    }
    if (s.resume && !this.ready(mine) && now - s.shownAt < READY_WAIT_MS) return;
    this.seek = null;
    if (s.resume) this.play();
  }

  // ready tells whether the tiles have data to play on.
  ready(tiles) {
    return tiles.every((t) => !t.firstFrameAt || t.error || t.video.readyState >= 3 || t.video.ended);
  }

  play() {
    if (this.seek) {
      this.seek.resume = true;
      return;
    }
    if (this.master >= this.window.end - 1) {
      this.seekTo(this.window.start, { resume: true });
      return;
    }
    this.playing = true;
    this.buffering = 0;
    this.stallSince = 0;
    this.anchorWall = performance.now();
    this.resetErrors();
    for (const tile of this.tiles) {
      if (tile.present && tile.covers(this.master)) this.startTile(tile);
    }
    this.poke();
  }

  startTile(tile) {
    const v = tile.video;
    v.playbackRate = this.speed;
    v.play().catch((err) => {
      if (err?.name === 'NotAllowedError' && !v.muted) {
        this.setAudio(null);
        this.setStatus('The browser blocked the sound: click a tile\'s Sound button to hear it.');
        v.play().catch(() => {});
      }
    });
  }

  pause() {
    if (this.seek) {
      this.seek.resume = false;
      return;
    }
    this.master = this.now();
    this.playing = false;
    this.buffering = 0;
    for (const tile of this.tiles) tile.video.pause();
    this.saveAddress();
    this.poke();
  }

  toggle() {
    if (this.playing || this.seek?.resume) this.pause();
    else this.play();
  }

  // step moves one frame forward (+1) or back (−1) from the frame shown, paused.
  step(dir) {
    if (this.playing) this.pause();
    const ref = this.tiles.find((t) => t.present && Number.isFinite(t.frameCapture));
    const frame = Math.min(...this.tiles.map((t) => t.frameMs));
    const shown = ref ? ref.frameCapture : this.master;
    // +1 ms: the stream shows the frame that covers its start, so start just inside the
    // wanted frame.
    this.seekTo(shown + dir * frame + 1, { resume: false });
  }

  jump(ms) {
    this.seekTo(this.now() + ms);
  }

  setSpeed(dir) {
    const i = SPEEDS.indexOf(this.speed);
    const next = SPEEDS[Math.min(SPEEDS.length - 1, Math.max(0, i + dir))];
    if (next === this.speed) return;
    this.master = this.now();
    this.anchorWall = performance.now();
    this.speed = next;
    for (const tile of this.tiles) tile.video.playbackRate = next;
    this.resetErrors();
    this.poke();
  }

  setAudio(tile) {
    this.audio = tile;
    for (const t of this.tiles) t.video.muted = t !== tile;
    this.poke();
  }

  toggleEnlarged(tile) {
    const on = tile && this.enlarged !== tile;
    this.enlarged?.root.classList.remove('enlarged');
    this.enlarged = on ? tile : null;
    tile?.root.classList.toggle('enlarged', on);
    $('grid').classList.toggle('has-enlarged', !!on);
  }

  // saveAddress keeps the review's place in the address bar, so that a reload (or the link)
  // opens it at the same instant.
  saveAddress() {
    window.history.replaceState(window.history.state, '', this.link(false));
  }

  link(absolute = true) {
    const q = new URLSearchParams({
      incident: this.incident, sources: this.sources.join(','), start: formatISO(this.window.start), end: formatISO(this.window.end),
      t: formatISO(this.now()),
    });
    const path = `${window.location.pathname}?${q}`;
    return absolute ? `${window.location.origin}${path}` : path;
  }

  async copyLink() {
    const url = this.link();
    const out = $('link-out');
    out.value = url;
    out.hidden = false;
    out.select();
    try {
      await navigator.clipboard.writeText(url);
      out.title = 'Copied to the clipboard';
    } catch {
      out.title = 'Copy this link (the browser did not allow the page to copy it)';
    }
  }

  // poke runs a control step soon (after a tile's state changed).
  poke() {
    this.lastControl = 0;
  }

  loop() {
    const frame = () => {
      this.tick();
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }

  // tick runs every animation frame: master clock, tile control, spread, display.
  tick() {
    const nowWall = performance.now();
    if (this.seek) this.seekDone();
    if (this.playing) this.advance(nowWall);
    if (nowWall - this.lastControl >= CONTROL_MS) {
      this.lastControl = nowWall;
      this.control();
    }
    this.measure();
    this.show();
  }

  // advance moves the master: to the median of the playing tiles' positions, else on the
  // wall clock when no source holds the instant; it holds still while the tiles that hold
  // it load. When a tile runs out of data, every tile waits for it.
  advance(nowWall) {
    if (this.buffering) {
      const mine = this.tiles.filter((t) => t.present && t.covers(this.master));
      if (!this.ready(mine) && nowWall - this.buffering < SEEK_WAIT_MS) return;
      this.buffering = 0;
      this.anchorWall = nowWall;
      for (const t of mine) if (t.firstFrameAt && this.master >= t.start) this.startTile(t);
      this.resetErrors();
      return;
    }
    if (this.tiles.some((t) => t.stalled())) {
      this.stallSince ||= nowWall;
      if (nowWall - this.stallSince > STALL_MS) {
        this.stallSince = 0;
        this.buffering = nowWall;
        for (const t of this.tiles) t.video.pause();
        return;
      }
    } else {
      this.stallSince = 0;
    }
    const active = this.tiles.filter((t) => t.active());
    let m;
    if (active.length) {
      m = median(active.map((t) => t.clockMs()));
    } else if (this.tiles.some((t) => t.present && !t.error)) {
      m = this.master; // waiting for the tiles
    } else {
      m = this.master + (nowWall - this.anchorWall) * this.speed;
    }
    this.master = m;
    this.anchorWall = nowWall;
    if (this.master >= this.window.end - 1) {
      this.master = this.window.end - 1;
      this.pause();
      return;
    }
    // how far ahead of the others each tile shows, from its frames (smoothed)
    const shown = active.filter((t) => Number.isFinite(t.frameCapture) && nowWall - t.frameAt < 500);
    if (shown.length < 2) return;
    const d = shown.map((t) => t.displayClock(nowWall, t.video.playbackRate));
    const mid = median(d);
    shown.forEach((t, i) => {
      t.errMs += ERR_SMOOTHING * (d[i] - mid - t.errMs);
    });
  }

  resetErrors() {
    for (const t of this.tiles) t.errMs = 0;
  }

  // control starts, nudges and reloads tiles as the master moves.
  control() {
    if (this.seek || this.buffering) return;
    const m = this.master;
    for (const tile of this.tiles) {
      const r = tile.rangeAt(m);
      const was = tile.present;
      tile.present = !!r;
      if (!r) {
        if (was) tile.video.pause();
        this.prepareAbsent(tile, m);
        continue;
      }
      const v = tile.video;
      if (tile.error) continue; // shown on the tile; a seek tries again
      if (!tile.covers(m)) {
        if (v.ended && tile.end !== null && m < tile.end) continue; // ran ahead to its end
        const lead = this.playing ? JOIN_LEAD_MS * this.speed : 0;
        tile.load(Math.min(m + lead, r.end - 1), r);
        continue;
      }
      if (!this.playing) continue;
      if (v.paused) {
        // a tile loaded ahead joins when the master reaches its start.
        if (tile.firstFrameAt && m >= tile.start) {
          tile.errMs = 0;
          this.startTile(tile);
        }
        continue;
      }
      if (!tile.active()) continue;
      if (Math.abs(tile.clockMs() - m) > HARD_MS * Math.max(1, this.speed)) {
        tile.load(Math.min(m + JOIN_LEAD_MS * this.speed, r.end - 1), r);
        continue;
      }
      let rate = this.speed;
      if (Math.abs(tile.errMs) > DEADBAND_MS) {
        const nudge = Math.max(-MAX_NUDGE, Math.min(MAX_NUDGE, -tile.errMs / (1000 * CATCH_UP_S * this.speed)));
        rate = this.speed * (1 + nudge);
      }
      rate = Math.min(16, Math.max(0.0625, rate));
      if (Math.abs(v.playbackRate - rate) > 0.001) v.playbackRate = rate;
    }
  }

  // measure samples the spread between the capture times of the frames the playing tiles
  // show now.
  measure() {
    if (!this.playing || this.seek || this.buffering) return;
    const shown = this.tiles.filter((t) => t.active() && Number.isFinite(t.frameCapture)).map((t) => t.frameCapture);
    if (shown.length < 2) return;
    this.spread.push(Math.max(...shown) - Math.min(...shown));
    if (this.spread.length > SPREAD_KEEP) this.spread.shift();
    this.spreadCount++;
  }

  show() {
    const m = this.now();
    setText($('clock'), `${formatUTC(m)} UTC`);
    setText($('play'), this.playing || this.seek?.resume ? 'Pause' : 'Play');
    setText($('speed'), speedLabel(this.speed));
    const recent = this.spread.slice(-250);
    const p99 = percentile(recent, 99);
    const last = recent.at(-1);
    setText($('spread'), Number.isFinite(p99) ? `spread ${Math.round(last)} ms · p99 ${Math.round(p99)} ms` : 'spread —');
    this.timeline?.setPlayhead(m, this.playing);
    for (const tile of this.tiles) tile.render(m);
    const st = this.stats;
    st.state = this.seek ? 'seeking' : this.buffering ? 'buffering' : this.playing ? 'playing' : 'paused';
    st.playing = this.playing;
    st.speed = this.speed;
    st.masterMs = m;
    st.spreadMs = this.spread;
    st.spreadCount = this.spreadCount;
    st.p99 = Number.isFinite(p99) ? p99 : null;
    st.seekToFrameMs = this.seekToFrame;
    st.audio = this.audio?.source ?? null;
    st.enlarged = this.enlarged?.source ?? null;
    st.tiles = this.tiles.map((t) => ({
      source: t.source, state: t.root.dataset.state, present: t.present, captureMs: t.frameCapture, clockMs: t.clockMs(),
      startMs: t.start, firstMs: t.firstCapture, frames: t.frames, rate: t.video.playbackRate, errMs: t.errMs, error: t.error,
    }));
  }

  bindControls() {
    $('play').addEventListener('click', () => this.toggle());
    $('step-back').addEventListener('click', () => this.step(-1));
    $('step-fwd').addEventListener('click', () => this.step(1));
    $('back-10').addEventListener('click', () => this.jump(-10000));
    $('fwd-10').addEventListener('click', () => this.jump(10000));
    $('slower').addEventListener('click', () => this.setSpeed(-1));
    $('faster').addEventListener('click', () => this.setSpeed(1));
    $('link').addEventListener('click', () => this.copyLink());
    $('help').addEventListener('click', () => {
      $('keys').hidden = !$('keys').hidden;
      $('help').setAttribute('aria-expanded', String(!$('keys').hidden));
    });
    $('goto').addEventListener('keydown', (ev) => {
      if (ev.key !== 'Enter') return;
      ev.preventDefault();
      ev.stopPropagation();
      const t = parseTime($('goto').value, this.master);
      if (!Number.isFinite(t)) {
        this.setStatus(`"${$('goto').value}" is not a time: give HH:MM:SS.mmm (UTC), RFC 3339 with a zone, or Unix ms`);
        return;
      }
      if (t < this.window.start || t >= this.window.end) {
        this.setStatus(`${formatUTC(t)} is outside the review window; change the window above`);
        return;
      }
      this.setStatus('');
      this.seekTo(t);
    });
    document.addEventListener('keydown', (ev) => this.key(ev));
  }

  key(ev) {
    if (ev.target.closest?.('input, select, textarea, summary') || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    // a focused button acts on space and Enter itself.
    if (ev.target.closest?.('button') && (ev.key === ' ' || ev.key === 'Enter')) return;
    if ($('player').hidden) return;
    const k = ev.key;
    let done = true;
    if (k === ' ') this.toggle();
    else if (k === 'ArrowLeft') (ev.shiftKey ? this.jump(-10000) : this.step(-1));
    else if (k === 'ArrowRight') (ev.shiftKey ? this.jump(10000) : this.step(1));
    else if (k === '+' || k === '=') this.setSpeed(1);
    else if (k === '-' || k === '_') this.setSpeed(-1);
    else if (/^[1-9]$/.test(k)) {
      const tile = this.tiles[Number(k) - 1];
      if (tile) this.setAudio(this.audio === tile ? null : tile);
    } else if (k === 'f' || k === 'Enter') {
      const focused = this.tiles.find((t) => t.root === document.activeElement);
      this.toggleEnlarged(focused ?? this.enlarged ?? this.audio ?? this.tiles[0]);
    } else if (k === 'Escape') {
      if (this.enlarged) this.toggleEnlarged(this.enlarged);
      $('keys').hidden = true;
    } else done = false;
    if (done) ev.preventDefault();
  }

  // fillPicker fills the incident, window and source choices.
  fillPicker(incidents, start, end) {
    const sel = $('pick-incident');
    sel.replaceChildren(...incidents.map((i) => {
      const o = document.createElement('option');
      o.value = i.incident;
      o.textContent = i.incident;
      return o;
    }));
    sel.value = this.incident;
    $('pick-start').value = formatISO(start);
    $('pick-end').value = formatISO(end);
    this.fillSources(this.incident, this.sources);
  }

  fillSources(incident, chosen) {
    const inc = (this.list?.incidents ?? []).find((i) => i.incident === incident);
    const box = $('pick-sources');
    const legend = box.querySelector('legend');
    const labels = (inc?.sources ?? []).map((s) => {
      const l = document.createElement('label');
      const c = document.createElement('input');
      c.type = 'checkbox';
      c.value = s.source;
      c.checked = chosen.includes(s.source);
      l.append(c, ` ${s.source}`);
      l.title = `recorded ${formatUTC(Date.parse(s.first))} – ${formatUTC(Date.parse(s.last))} UTC`;
      return l;
    });
    box.replaceChildren(legend, ...labels);
  }

  pickSubmitted() {
    const start = parseTime($('pick-start').value);
    const end = parseTime($('pick-end').value, start);
    const sources = [...$('pick-sources').querySelectorAll('input:checked')].map((c) => c.value);
    if (!Number.isFinite(start) || !Number.isFinite(end)) {
      this.setStatus('Give "From" and "To" as RFC 3339 times with a zone (2026-12-05T03:30:00Z) or Unix ms');
      return;
    }
    if (!sources.length) {
      this.setStatus('Choose at least one source');
      return;
    }
    const q = new URLSearchParams({ incident: $('pick-incident').value, sources: sources.join(','), start: formatISO(start), end: formatISO(end) });
    window.location.assign(`${window.location.pathname}?${q}`);
  }
}

new Review().init();
