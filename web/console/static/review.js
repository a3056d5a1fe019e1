// The review page: recordings of several sources of an incident, played side by side so that
// every tile shows the same capture instant, for after-action review.
//
// One master clock holds the capture instant under review (Unix ms on the common baseline).
// Each tile loads a window of a few minutes of its source from GET /v1/recordings/stream
// (review-tile.js) and seeks inside it; it loads again only when the master leaves the window.
// While playing, the master is the median of the playing tiles' positions (or runs on the wall
// clock when no source holds the instant).
//
// The tiles are kept in lockstep by aligning them: every tile pauses, seeks to the master
// (currentTime), and once each has seeked and presented the frame covering it, all play
// together. A seek, a frame step and a speed change align; so does a tile joining (its source's
// recording starts), a tile leaving its window, a stalled tile, and drift: each playing tile's
// phase (capture time less display time of its recent frames) is compared with the others',
// and when one is more than CORRECT_MS of display time off, the tiles align again (at most
// once every QUIET_MS). A tile whose source holds nothing at the master shows "no recording"
// and has its next range loaded, paused, to join when it starts.
//
// The page measures what it shows: for every animation frame, the spread between the
// capture times of the frames the playing tiles show (requestVideoFrameCallback), and for
// every seek the time until each tile shows the frame asked. window.reviewStats exposes them.
//
// Address: review.html?token=&incident=&sources=a,b&start=&end=&t= (times in Unix ms or
// RFC 3339). The token is kept for the tab and removed from the address (api.js).

import { mountNav, pageTitle } from './nav.js';
import { t } from './i18n.js';
import './review-strings.js';
import { APIError, authHeaders, forgetToken, reasonOf, request, saveToken, takeToken } from './api.js';
import { formatISO, formatUTC, parseTime, percentile } from './review-time.js';
import { Timeline } from './review-timeline.js';
import { inputMethods } from './review-input.js';
import { ReviewTile } from './review-tile.js';

const SPEEDS = [0.25, 0.5, 1, 2, 4, 8, 16];
// CONTROL_MS is how often the tiles are checked against the master.
const CONTROL_MS = 200;
// A tile further than CORRECT_MS of display time (measured over at least MIN_SAMPLES frames)
// from the others makes the tiles align again, at most once every QUIET_MS.
const CORRECT_MS = 20;
const MIN_SAMPLES = 15;
const QUIET_MS = 2000;
// Frames shown within SETTLE_MS of the tiles starting do not measure a tile's phase.
const SETTLE_MS = 200;
// A tile without data for this long (ms) makes the tiles align again (and wait for it).
const STALL_MS = 250;
// While playing, a tile's window must hold LEAD_MS (at 1×) after the master, else it loads the
// next one.
const LEAD_MS = 2000;
// An alignment waits at most ALIGN_WAIT_MS for the tiles to show the frame asked, and then
// at most READY_WAIT_MS for them to have data to play on.
const ALIGN_WAIT_MS = 10000;
const READY_WAIT_MS = 3000;
// A forward frame step seeks at most STEP_TRIES frame intervals past the frame shown.
const STEP_TRIES = 4;
// The spread is measured at the display instant MEASURE_LAG_MS before each animation frame.
const MEASURE_LAG_MS = 100;
// Spread samples kept.
const SPREAD_KEEP = 1200;
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
    this.startedAt = 0; // performance.now() when the tiles last started together
    this.playing = false;
    this.speed = 1;
    this.audio = null;
    this.enlarged = null;
    // The alignment under way: {target, at, resume, seek (a reviewer's seek, timed), shownAt}.
    this.sync = null;
    // The forward frame step under way: {ref (tile), from (capture ms), frame, tries}.
    this.stepping = null;
    this.quietUntil = 0; // no alignment for drift before this performance.now()
    this.stallSince = 0;
    this.spread = [];
    this.spreadCount = 0;
    this.unmeasured = 0; // display instants at which a tile's frame on screen was not known
    this.wide = []; // recent samples more than a frame and a half apart, and which tile was behind
    this.seekToFrame = [];
    this.lastControl = 0;
    this.corrections = 0;
    this.events = [];
    this.stats = { state: 'loading', spreadMs: [], spreadCount: 0, p99: null, seekToFrameMs: [], tiles: [], errors: [] };
    window.reviewStats = this.stats;
    // What the page says outside the tiles, as [key, vars], written again after a language
    // switch: the status, the token form's reason, the empty page's note.
    this.said = { status: null, token: null, empty: null };
    this.site = '';
  }

  async init() {
    pageTitle('review.title');
    window.addEventListener('langchange', () => this.relabel());
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
      this.askToken(null);
      return;
    }
    this.open();
  }

  // relabel writes again, in the language now in use, what the page wrote itself.
  relabel() {
    this.say('status', $('status'));
    this.say('token', $('token-reason'));
    this.say('empty', $('empty'));
    this.summarize();
    this.timeline?.render();
    for (const tile of this.tiles) tile.relabel();
    this.relabelPicker();
  }

  // say writes what the page says in place (a [key, vars] of this.said) into node.
  say(place, node) {
    const text = this.said[place] ? t(...this.said[place]) : '';
    setText(node, text);
    return text;
  }

  // askToken shows the token form with a reason: [key, vars], or null for none.
  askToken(reason) {
    $('player').hidden = true;
    this.said.token = reason;
    this.say('token', $('token-reason'));
    $('token-panel').hidden = false;
    $('token-input').focus();
  }

  // setStatus shows a message of key with vars in the header, or none for no key.
  setStatus(key, vars) {
    this.said.status = key ? [key, vars] : null;
    const text = this.say('status', $('status'));
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
      this.askToken(['review.token.refused', { reason: err.message }]);
      return;
    }
    this.setStatus('review.server', { reason: err?.message ?? String(err) });
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
      this.showEmpty(this.incident ? 'review.empty.choose' : 'review.empty.none');
      return;
    }
    if (!(end > start)) {
      $('pick').open = true;
      this.showEmpty('review.empty.window');
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

  showEmpty(key) {
    this.said.empty = [key, {}];
    this.say('empty', $('empty'));
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
    this.site = body.site ?? '?';
    this.summarize();
  }

  summarize() {
    if (!this.site) return;
    const n = this.sources.length;
    setText($('summary'), t(n === 1 ? 'review.summary.one' : 'review.summary', {
      incident: this.incident, n, from: formatUTC(this.window.start), to: formatUTC(this.window.end), site: this.site,
    }));
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
    if (!this.playing || this.sync) return this.master;
    return this.master + (performance.now() - this.anchorWall) * this.speed;
  }

  // seekTo moves the master to capture instant t and aligns every tile there; playing goes
  // on once they all show it.
  seekTo(t, { resume = this.playing || !!this.sync?.resume, step = null } = {}) {
    this.stepping = step;
    t = Math.min(Math.max(Math.round(t), this.window.start), this.window.end - 1);
    this.align(t, { resume, seek: true });
    this.saveAddress();
  }

  // align pauses every tile and seeks the ones whose source holds t there (loading a window
  // when theirs does not hold it); syncDone plays them together once they show it.
  align(t, { resume, seek = false }) {
    this.master = t;
    this.playing = false;
    this.stallSince = 0;
    this.sync = { target: t, at: performance.now(), resume, seek, shownAt: 0 };
    for (const tile of this.tiles) {
      tile.video.pause();
      const r = tile.rangeAt(t);
      tile.present = !!r;
      if (!r) {
        this.prepareAbsent(tile, t);
        continue;
      }
      if (!tile.covers(t, resume ? LEAD_MS * this.speed : 0)) tile.load(t, r);
      tile.seekTo(t);
    }
    this.poke();
  }

  // prepareAbsent loads the absent tile's next range, paused, to join when it starts.
  prepareAbsent(tile, t) {
    const next = tile.nextRange(t);
    if (!next) {
      tile.unload();
      return;
    }
    if (!tile.covers(next.start)) tile.load(next.start, next);
  }

  // syncDone checks whether the alignment under way is done: every tile that holds the
  // target shows it; then, to play on, every one has data to play with.
  syncDone(now) {
    const s = this.sync;
    const mine = this.tiles.filter((t) => t.present);
    const there = mine.filter((t) => t.there(now));
    if (there.length < mine.length && now - s.at < ALIGN_WAIT_MS) return;
    if (!s.shownAt) {
      s.shownAt = now;
      const shown = mine.filter((t) => !t.error && t.firstFrameAt);
      if (s.seek && shown.length && there.length === mine.length) {
        this.seekToFrame.push(Math.round(Math.max(...shown.map((t) => t.firstFrameAt)) - s.at));
        if (this.seekToFrame.length > 50) this.seekToFrame.shift();
      }
      this.note(`aligned at ${formatUTC(s.target)} in ${Math.round(now - s.at)} ms: ${mine.map((t) => `${t.source} ${Math.round(t.seekIssued - s.at)}/${Math.round(t.seekedAt - s.at)}/${Math.round(t.firstFrameAt - s.at)}`).join(' ')}`);
      if (there.length < mine.length) this.note(`${mine.filter((t) => !t.there(now)).map((t) => t.source).join(', ')} not there in time`);
    }
    if (s.resume && !this.ready(mine) && now - s.shownAt < READY_WAIT_MS) return;
    this.sync = null;
    if (this.stepping) this.stepOn();
    if (s.resume) this.startAll();
  }

  // ready tells whether the tiles have data to play on.
  ready(tiles) {
    return tiles.every((t) => t.error || t.video.readyState >= 3 || t.video.ended);
  }

  // startAll plays every tile that holds the master, together.
  startAll() {
    if (this.master >= this.window.end - 1) return;
    this.playing = true;
    this.stallSince = 0;
    this.anchorWall = performance.now();
    this.startedAt = this.anchorWall;
    const starting = this.tiles.filter((t) => t.present && !t.error && t.covers(this.master));
    for (const t of starting) {
      t.remeasure(SETTLE_MS);
      t.video.playbackRate = this.speed;
    }
    for (const t of starting) this.startTile(t);
    this.poke();
  }

  startTile(tile) {
    const v = tile.video;
    v.play().catch((err) => {
      if (err?.name === 'NotAllowedError' && !v.muted) {
        this.setAudio(null);
        this.setStatus('review.sound-blocked');
        v.play().catch(() => {});
      }
    });
  }

  play() {
    if (this.sync) {
      this.sync.resume = true;
      return;
    }
    if (this.master >= this.window.end - 1) {
      this.seekTo(this.window.start, { resume: true });
      return;
    }
    // the tiles are paused on the master's frame, unless a tile moved meanwhile (joined,
    // failed, loaded): align them to be sure they start together.
    this.align(this.master, { resume: true });
  }

  pause() {
    if (this.sync) {
      this.sync.resume = false;
      return;
    }
    this.stepping = null;
    // Paused, every tile shows the frame covering the instant paused at: an element
    // stopped mid-play may present one more frame, ahead of its position.
    this.align(Math.min(this.now(), this.window.end - 1), { resume: false });
    this.saveAddress();
  }

  toggle() {
    if (this.playing || this.sync?.resume) this.pause();
    else this.play();
  }

  // step moves one frame forward (+1) or back (−1) from the frame shown on the first tile,
  // paused. A tile shows the frame that covers the instant: back aims just before the frame
  // shown; forward the shortest frame interval seen past it, and further (stepOn) when the
  // recording's next frame came later than that (capture times jitter). The master ends
  // just inside the frame reached, as a seek to that frame puts it.
  step(dir) {
    if (this.playing) this.pause();
    const ref = this.tiles.find((t) => t.present && Number.isFinite(t.frameCapture));
    const shown = ref ? ref.frameCapture : this.master;
    const frame = Math.max(5, Math.min(...this.tiles.map((t) => t.frameMs)));
    const step = ref ? { ref, from: shown, dir, frame, tries: 1 } : null;
    this.seekTo(dir < 0 ? shown - 1 : shown + frame + 1, { resume: false, step });
  }

  // stepOn goes on with a frame step once its seek is done: one interval further when a
  // forward step ended on the frame it started from (up to STEP_TRIES intervals), and
  // to just inside the frame reached when the master is elsewhere in it.
  stepOn() {
    const s = this.stepping;
    this.stepping = null;
    const f = s.ref.frameCapture;
    if (!Number.isFinite(f)) return;
    if (f === s.from) {
      if (s.dir < 0 || s.tries >= STEP_TRIES) return;
      const tries = s.tries + 1;
      this.seekTo(s.from + tries * s.frame + 1, { resume: false, step: { ...s, tries } });
      return;
    }
    if (Math.round(f + 1) !== this.master) this.seekTo(f + 1, { resume: false });
  }

  jump(ms) {
    this.seekTo(this.now() + ms);
  }

  // setSpeed changes the speed; playing tiles align again to start together at it (Chromium
  // follows a playbackRate change on each element at its own moment).
  setSpeed(dir) {
    const i = SPEEDS.indexOf(this.speed);
    const next = SPEEDS[Math.min(SPEEDS.length - 1, Math.max(0, i + dir))];
    if (next === this.speed) return;
    const m = this.now();
    this.speed = next;
    for (const tile of this.tiles) tile.video.playbackRate = next;
    if (this.playing) this.align(m, { resume: true });
    else this.master = m;
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
  // tick runs every animation frame: alignment, master clock, tile control, spread, display.
  tick() {
    const nowWall = performance.now();
    if (this.sync) this.syncDone(nowWall);
    if (this.playing) this.advance(nowWall);
    if (nowWall - this.lastControl >= CONTROL_MS) {
      this.lastControl = nowWall;
      this.control(nowWall);
    }
    this.measure(nowWall);
    this.show();
  }

  // advance moves the master to the median of the playing tiles' positions, else on the wall
  // clock when no source holds the instant, and measures how far each tile is off the others:
  // the mean over its recent frames of their capture time less the time they went on screen,
  // against the median of the tiles'.
  advance(nowWall) {
    const active = this.tiles.filter((t) => t.active());
    let m;
    if (active.length) m = median(active.map((t) => t.clockMs()));
    else if (this.tiles.some((t) => t.present && !t.error)) m = this.master; // waiting for the tiles
    else m = this.master + (nowWall - this.anchorWall) * this.speed;
    this.master = m;
    this.anchorWall = nowWall;
    if (this.master >= this.window.end - 1) {
      this.master = this.window.end - 1;
      this.pause();
      return;
    }
    const measured = active.filter((t) => t.phases.length >= MIN_SAMPLES);
    if (measured.length === 1 && active.length === 1) {
      measured[0].errMs = 0;
      measured[0].errN = measured[0].phases.length;
    }
    if (measured.length < 2) return;
    const phases = measured.map((t) => t.phase());
    const mid = median(phases);
    measured.forEach((t, i) => {
      t.errMs = phases[i] - mid;
      t.errN = t.phases.length;
    });
  }

  // aligned tells whether every playing tile is measured within CORRECT_MS of the others.
  aligned() {
    const active = this.tiles.filter((t) => t.active());
    return this.playing && !this.sync && active.length > 0 &&
      active.every((t) => t.errN >= MIN_SAMPLES && Math.abs(t.errMs) < this.correctMs());
  }

  // correctMs is how far off (capture ms) a tile is corrected: CORRECT_MS of display time.
  correctMs() {
    return CORRECT_MS * Math.max(1, this.speed);
  }

  // control follows the master: a tile whose source starts or stops holding it joins or
  // leaves, a tile whose window runs out loads the next, and a stalled or drifting tile makes
  // the tiles align again.
  control(now) {
    if (this.sync) return;
    const m = this.master;
    let why = '';
    for (const tile of this.tiles) {
      const r = tile.rangeAt(m);
      const was = tile.present;
      tile.present = !!r;
      if (!r) {
        if (was) tile.video.pause();
        this.prepareAbsent(tile, m);
        continue;
      }
      if (tile.error) continue; // shown on the tile; a seek tries again
      if (!was) why ||= `${tile.source} joins`;
      else if (!this.playing) continue;
      else if (!tile.covers(m, LEAD_MS * this.speed)) why ||= `${tile.source} loads its next window`;
      else if (tile.video.paused && !tile.video.ended) why ||= `${tile.source} paused`;
    }
    if (why && !this.playing) {
      this.align(m, { resume: false });
      return;
    }
    if (!this.playing) return;
    if (this.tiles.some((t) => t.stalled())) {
      this.stallSince ||= now;
      if (now - this.stallSince > STALL_MS) why ||= `waiting for ${this.tiles.filter((t) => t.stalled()).map((t) => t.source).join(', ')}`;
    } else {
      this.stallSince = 0;
    }
    const off = this.tiles.filter((t) => t.active() && t.errN >= MIN_SAMPLES && Math.abs(t.errMs) >= this.correctMs());
    if (!why && off.length && now >= this.quietUntil) {
      why = off.map((t) => `${t.source} ${t.errMs.toFixed(1)} ms off`).join(', ');
      this.corrections++;
      this.quietUntil = now + QUIET_MS;
    }
    if (!why) return;
    this.note(`${why}: align at ${formatUTC(m)}`);
    this.align(this.now(), { resume: true });
  }

  // measure samples, once an animation frame, the spread between the capture times of the
  // frames the playing tiles had on screen at one display instant: MEASURE_LAG_MS ago, so
  // that every tile's requestVideoFrameCallback for it has come (each element reports its
  // frames on its own schedule, so the last frame each reported is no common instant).
  measure(nowWall) {
    const at = nowWall - MEASURE_LAG_MS;
    if (!this.playing || this.sync || at < this.startedAt + SETTLE_MS) return;
    const active = this.tiles.filter((t) => t.active());
    const shown = active.map((t) => t.shownAt(at));
    if (shown.length < 2) return;
    if (shown.some((c) => !Number.isFinite(c))) {
      this.unmeasured++;
      return;
    }
    const hi = Math.max(...shown);
    const lo = Math.min(...shown);
    this.spread.push(hi - lo);
    if (this.spread.length > SPREAD_KEEP) this.spread.shift();
    this.spreadCount++;
    if (hi - lo > 1.5 * Math.max(...active.map((t) => t.frameMs))) {
      // which tile is behind, for whoever looks into a wide spread
      const behind = active.filter((t, i) => shown[i] === lo).map((t) => t.source).join('+');
      const ahead = active.filter((t, i) => shown[i] === hi).map((t) => t.source).join('+');
      this.wide.push(`${Math.round(at)} ${Math.round(hi - lo)} ms: ${behind} behind ${ahead}`);
      if (this.wide.length > 20) this.wide.shift();
    }
  }

  note(text) {
    this.events.push(`${Math.round(performance.now())} ${text}`);
    if (this.events.length > 50) this.events.shift();
  }

  show() {
    const m = this.now();
    setText($('clock'), t('review.clock', { time: formatUTC(m) }));
    setText($('play'), t(this.playing || this.sync?.resume ? 'review.pause' : 'review.play'));
    setText($('speed'), speedLabel(this.speed));
    const recent = this.spread.slice(-250);
    const p99 = percentile(recent, 99);
    const last = recent.at(-1);
    setText($('spread'), Number.isFinite(p99) ? t('review.spread', { last: Math.round(last), p99: Math.round(p99) }) : t('review.spread.none'));
    this.timeline?.setPlayhead(m, this.playing);
    for (const tile of this.tiles) tile.render(m);
    const st = this.stats;
    st.state = this.sync ? 'seeking' : this.playing ? 'playing' : 'paused';
    st.playing = this.playing;
    st.speed = this.speed;
    st.masterMs = m;
    st.spreadMs = this.spread;
    st.spreadCount = this.spreadCount;
    st.unmeasured = this.unmeasured;
    st.wide = this.wide;
    st.p99 = Number.isFinite(p99) ? p99 : null;
    st.seekToFrameMs = this.seekToFrame;
    st.aligned = this.aligned();
    st.corrections = this.corrections;
    st.events = this.events;
    st.audio = this.audio?.source ?? null;
    st.enlarged = this.enlarged?.source ?? null;
    st.tiles = this.tiles.map((t) => ({
      source: t.source, state: t.root.dataset.state, present: t.present, captureMs: t.frameCapture, clockMs: t.clockMs(),
      startMs: t.start, firstMs: t.firstCapture, frames: t.frames, rate: t.video.playbackRate, errMs: t.errMs, error: t.error,
      unreported: t.unreported, dropped: t.dropped, frameMs: t.frameMs, intervals: t.intervals,
    }));
  }
}

Object.assign(Review.prototype, inputMethods);

mountNav('review');
new Review().init();

