// The common time baseline on the wall.
//
// Every source's frames carry their capture time on one baseline (the ingest host's clock),
// aligned from the camera's sender reports, a signalled reference clock, or arrival times.
// /v1/sources says how well, per track (`clock`); alignmentLabel turns that into a tile's
// label.
//
// The capture time of each frame reaches the browser in the abs-capture-time RTP header
// extension, which whep.js negotiates. Chromium exposes it as `captureTimestamp` in
// RTCRtpReceiver.getSynchronizationSources() (NTP milliseconds, for the frame with that
// entry's rtpTimestamp); it does not fill requestVideoFrameCallback's `captureTime` from it.
// A tile's LatencyMeter takes, for every presented frame, its capture time and its display
// time, which give the tile's capture-to-display latency. The browser's clock need not agree
// with the ingest host's: the same offset is in every tile's latency, and only their
// differences matter.
//
// In synced mode, PlayoutSync holds the faster tiles back with RTCRtpReceiver
// jitterBufferTarget (playoutDelayHint where that is all there is) so that every tile shows
// the same capture instant as the slowest one; the skew left between tiles is reported.

import { register, t } from './i18n.js';

export const NTP_UNIX_OFFSET_MS = 2208988800000;

// A tile's latency is the median over WINDOW_MS of presented frames, once it has MIN_SAMPLES.
const WINDOW_MS = 1500;
const MIN_SAMPLES = 8;
// jitterBufferTarget accepts 0 to 4000 ms.
const MAX_TARGET_MS = 4000;
// Changes smaller than DEADBAND_MS are not applied; GAIN of each correction is applied per
// step, so that noise in the measurement does not make the picture speed up and slow down.
const DEADBAND_MS = 4;
const GAIN = 0.5;
const VIDEO_CLOCK_KHZ = 90;
// A synchronization source entry more than this away from a frame is not used for it.
const MAX_ENTRY_AGE_MS = 2000;

// videoClock returns the clock health of a source's video track (else of its first track with
// one), as /v1/sources lists it, or null.
export function videoClock(tracks) {
  const withClock = (Array.isArray(tracks) ? tracks : []).filter((t) => t && t.clock && typeof t.clock === 'object');
  return (withClock.find((t) => t.kind === 'video') ?? withClock[0])?.clock ?? null;
}

function roundMs(v) {
  return Math.max(1, Math.round(v));
}

function signedMs(v) {
  const r = Math.round(v * 10) / 10;
  return `${r > 0 ? '+' : r < 0 ? '−' : ''}${Math.abs(r)}`;
}

register({
  en: {
    'align.trust.sender-reports': "the camera's clock (sender reports)",
    'align.trust.refclk': "the camera's clock, locked to a reference clock",
    'align.trust.arrival': 'arrival times (the constant part of the network delay is not known)',
    'align.trust.unaligned': 'nothing yet',
    'align.rest-on': 'capture times rest on {what}',
    'align.error': 'estimated error ±{ms} ms',
    'align.upstream': 'aligned by ingest',
    'align.skew': 'clock skew {ppm} ppm',
    'align.offset': 'camera clock {ms} ms off',
    'align.report-age': 'last report {secs} s ago',
    'align.path-delay': 'path delay {ms} ms',
    'align.text': '±{ms} ms',
    'align.arrival': 'aligned on arrival',
    'align.arrival-error': 'aligned on arrival ±{ms} ms',
    'align.unaligned': 'unaligned',
    'align.not-converged': 'not converged',
    'align.unaligned.why': 'capture times are not known yet',
    'align.not-converged.why': 'the alignment has not settled yet',
  },
  'zh-TW': {
    'align.trust.sender-reports': '攝影機的時鐘（傳送端報告）',
    'align.trust.refclk': '攝影機的時鐘，已鎖定參考時鐘',
    'align.trust.arrival': '抵達時間（網路延遲的固定部分未知）',
    'align.trust.unaligned': '尚無依據',
    'align.rest-on': '擷取時間依據：{what}',
    'align.error': '估計誤差 ±{ms} 毫秒',
    'align.upstream': '由 ingest 對齊',
    'align.skew': '時鐘偏移 {ppm} ppm',
    'align.offset': '攝影機時鐘偏差 {ms} 毫秒',
    'align.report-age': '最後報告於 {secs} 秒前',
    'align.path-delay': '路徑延遲 {ms} 毫秒',
    'align.text': '±{ms} 毫秒',
    'align.arrival': '依抵達時間對齊',
    'align.arrival-error': '依抵達時間對齊 ±{ms} 毫秒',
    'align.unaligned': '未對齊',
    'align.not-converged': '尚未收斂',
    'align.unaligned.why': '擷取時間尚未得知',
    'align.not-converged.why': '對齊尚未穩定',
  },
});

// alignmentLabel describes a track's clock health for a tile: text ("±4 ms", "aligned on
// arrival ±12 ms"), warn (a short warning for a badge: "unaligned", "not converged", or '')
// and title (the details, for a tooltip), in the console's language.
export function alignmentLabel(clock) {
  if (!clock || typeof clock !== 'object' || typeof clock.trust !== 'string') {
    return { text: '', warn: '', title: '' };
  }
  const trust = clock.trust;
  const err = Number(clock.error_ms);
  const known = Number.isFinite(err) && err >= 0;
  const words = ['sender-reports', 'refclk', 'arrival', 'unaligned'].includes(trust) ? t(`align.trust.${trust}`) : trust;
  const details = [t('align.rest-on', { what: words })];
  if (known) details.push(t('align.error', { ms: Math.round(err * 10) / 10 }));
  if (clock.upstream) {
    details.push(t('align.upstream'));
  } else {
    if (Number.isFinite(clock.skew_ppm) && clock.skew_ppm !== 0) details.push(t('align.skew', { ppm: signedMs(clock.skew_ppm) }));
    if (Number.isFinite(clock.offset_ms) && clock.offset_ms !== 0) details.push(t('align.offset', { ms: signedMs(clock.offset_ms) }));
    if (Number.isFinite(clock.report_age_ms) && clock.report_age_ms >= 0) details.push(t('align.report-age', { secs: (clock.report_age_ms / 1000).toFixed(1) }));
  }
  if (Number.isFinite(clock.path_delay_ms) && clock.path_delay_ms > 0) details.push(t('align.path-delay', { ms: Math.round(clock.path_delay_ms) }));

  let text = '';
  let warn = '';
  switch (trust) {
    case 'sender-reports':
    case 'refclk':
      text = known ? t('align.text', { ms: roundMs(err) }) : '';
      break;
    case 'arrival':
      text = known ? t('align.arrival-error', { ms: roundMs(err) }) : t('align.arrival');
      break;
    default:
      warn = t('align.unaligned');
  }
  if (!warn && !clock.converged) warn = t('align.not-converged');
  if (warn) details.push(t(warn === t('align.unaligned') ? 'align.unaligned.why' : 'align.not-converged.why'));
  return { text, warn, title: details.join('; ') };
}

// captureTimeOf returns the capture time (Unix ms, on the sources' baseline) of the video frame
// that requestVideoFrameCallback metadata md describes, from the receiver's synchronization
// sources (abs-capture-time), else from md.captureTime, else NaN. fromBaseline says whether it
// came from abs-capture-time.
export function captureTimeOf(md, sources, timeOrigin) {
  if (md && Number.isFinite(md.rtpTimestamp)) {
    for (const s of sources ?? []) {
      if (!Number.isFinite(s?.captureTimestamp) || s.captureTimestamp <= 0 || !Number.isFinite(s.rtpTimestamp)) continue;
      // the entry may describe a newer frame: step back by the RTP time between the two.
      const dt = ((md.rtpTimestamp - s.rtpTimestamp) | 0) / VIDEO_CLOCK_KHZ;
      if (Math.abs(dt) > MAX_ENTRY_AGE_MS) continue;
      return { at: s.captureTimestamp - NTP_UNIX_OFFSET_MS + dt, fromBaseline: true };
    }
  }
  if (md && Number.isFinite(md.captureTime) && md.captureTime > 0) {
    return { at: timeOrigin + md.captureTime, fromBaseline: false };
  }
  return { at: NaN, fromBaseline: false };
}

// LatencyMeter keeps a tile's recent capture-to-display latencies.
export class LatencyMeter {
  constructor() {
    this.samples = []; // [performance time of display, latency ms]
    this.fromBaseline = false;
    this.seen = false; // a frame had a capture time
  }

  // record takes one presented frame: its display time (performance.now() time base) and
  // its capture time (Unix ms).
  record(displayPerf, captureUnix, fromBaseline, timeOrigin) {
    if (!Number.isFinite(captureUnix) || !Number.isFinite(displayPerf)) return;
    this.seen = true;
    this.fromBaseline = fromBaseline;
    this.samples.push([displayPerf, timeOrigin + displayPerf - captureUnix]);
    this.prune(displayPerf);
  }

  prune(now) {
    let drop = 0;
    while (drop < this.samples.length && now - this.samples[drop][0] > WINDOW_MS) drop++;
    if (drop) this.samples.splice(0, drop);
  }

  reset() {
    this.samples = [];
  }

  // latency returns the median latency of the last WINDOW_MS, or NaN when there are too few
  // samples that recent.
  latency(now) {
    this.prune(now);
    if (this.samples.length < MIN_SAMPLES) return NaN;
    const v = this.samples.map((s) => s[1]).sort((a, b) => a - b);
    const mid = v.length >> 1;
    return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  }
}

// planDelays decides how long to hold each tile back so that all show the same capture instant.
// tiles: [{ name, latencyMs, extraMs }], where extraMs is the hold-back applied now (null:
// none). The reference is the slowest tile that is not held back; every other tile moves
// GAIN of the way towards it (an integral controller, so that delays the browser adds by
// itself, such as for lip sync, need not be known). Holds under DEADBAND_MS are released.
// Returns { refMs, skewMs, extraMs: {name: ms or null} } for the tiles with a latency.
export function planDelays(tiles) {
  const ok = tiles.filter((t) => Number.isFinite(t.latencyMs));
  const extraMs = {};
  if (ok.length === 0) return { refMs: NaN, skewMs: NaN, extraMs };
  const lat = ok.map((t) => t.latencyMs);
  const skewMs = ok.length > 1 ? Math.max(...lat) - Math.min(...lat) : NaN;
  const free = ok.filter((t) => t.extraMs == null);
  if (free.length === 0) {
    // every tile is held back: release the least held, which becomes the reference.
    const least = ok.reduce((a, b) => (b.extraMs < a.extraMs ? b : a));
    for (const t of ok) extraMs[t.name] = t === least ? null : t.extraMs;
    return { refMs: least.latencyMs, skewMs, extraMs };
  }
  const refMs = Math.max(...free.map((t) => t.latencyMs));
  for (const t of ok) {
    const err = refMs - t.latencyMs;
    const cur = t.extraMs ?? 0;
    if (Math.abs(err) <= DEADBAND_MS) {
      extraMs[t.name] = t.extraMs ?? null;
      continue;
    }
    const next = Math.min(MAX_TARGET_MS, Math.round(cur + GAIN * err));
    extraMs[t.name] = next > DEADBAND_MS ? next : null;
  }
  return { refMs, skewMs, extraMs };
}

// jitterStats returns a receiver's inbound-rtp jitter buffer counters, or null.
async function jitterStats(receiver) {
  let found = null;
  try {
    (await receiver.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp') found = s;
    });
  } catch {
    return null;
  }
  if (!found || !Number.isFinite(found.jitterBufferEmittedCount)) return null;
  return {
    emitted: found.jitterBufferEmittedCount,
    target: found.jitterBufferTargetDelay,
    minimum: found.jitterBufferMinimumDelay,
  };
}

function setTarget(receiver, ms) {
  if ('jitterBufferTarget' in receiver) {
    receiver.jitterBufferTarget = ms;
  } else if ('playoutDelayHint' in receiver) {
    receiver.playoutDelayHint = ms == null ? null : ms / 1000;
  }
}

// PlayoutSync measures the tiles' latencies and, when enabled, evens them out. tick() runs
// about once a second; each tile it is given must offer meter (a LatencyMeter), name,
// playing() and receivers() ({video, audio}, either may be null).
export class PlayoutSync {
  constructor() {
    this.enabled = false;
    this.stats = new WeakMap(); // receiver → {emitted, minimum, minMs}: jitter buffer minimum
    this.held = new Map(); // tile name → {extraMs, video, audio}: what is applied
    this.skewMs = NaN;
    this.behind = ''; // the name of the tile furthest behind, when two or more are measured
    this.measured = 0;
    this.capturable = true; // false once tiles play but none has capture times
  }

  // extraMs returns how long a tile is held back now, or undefined.
  extraMs(name) {
    return this.held.get(name)?.extraMs;
  }

  setEnabled(on) {
    this.enabled = on;
    if (!on) {
      for (const name of [...this.held.keys()]) this.release(name);
    }
  }

  release(name) {
    const h = this.held.get(name);
    if (!h) return;
    this.held.delete(name);
    for (const r of [h.video, h.audio]) if (r) setTarget(r, null);
  }

  // minimum returns a receiver's own minimum jitter buffer delay (ms) over the time since
  // the previous tick, from its stats counters; 0 when unknown.
  async minimum(receiver) {
    if (!receiver) return 0;
    const now = await jitterStats(receiver);
    const prev = this.stats.get(receiver);
    let minMs = prev?.minMs ?? 0;
    if (now && prev && now.emitted > prev.emitted && Number.isFinite(now.minimum) && Number.isFinite(prev.minimum)) {
      minMs = Math.max(0, ((now.minimum - prev.minimum) / (now.emitted - prev.emitted)) * 1000);
    }
    if (now) this.stats.set(receiver, { ...now, minMs });
    return minMs;
  }

  async tick(tiles) {
    const now = performance.now();
    let rows = [];
    let playing = 0;
    for (const tile of tiles) {
      if (!tile.playing()) continue;
      playing++;
      const { video, audio } = tile.receivers();
      const latencyMs = tile.meter.latency(now);
      if (!video || !Number.isFinite(latencyMs)) continue;
      let h = this.held.get(tile.name);
      if (h && h.video !== video) {
        // a new session: what was applied belongs to the old one.
        this.held.delete(tile.name);
        h = undefined;
      }
      // read every tick, so that the minimum is current when a hold starts.
      const videoMin = await this.minimum(video);
      const audioMin = audio ? await this.minimum(audio) : 0;
      rows.push({ name: tile.name, latencyMs, extraMs: h?.extraMs ?? null, video, audio, videoMin, audioMin, fromBaseline: tile.meter.fromBaseline });
    }
    // capture times estimated by the browser (captureTime) are not on the sources' baseline:
    // they are used only when no tile has better.
    if (rows.some((r) => r.fromBaseline)) rows = rows.filter((r) => r.fromBaseline);
    const plan = planDelays(rows);
    this.skewMs = plan.skewMs;
    // the tile showing the oldest capture instant is the one behind.
    const slowest = rows.filter((r) => Number.isFinite(r.latencyMs)).reduce((a, b) => (a && a.latencyMs >= b.latencyMs ? a : b), null);
    this.behind = rows.length > 1 && slowest ? slowest.name : '';
    this.measured = rows.length;
    this.capturable = rows.length > 0 || playing === 0 || tiles.some((t) => t.meter.seen);
    const names = new Set(rows.map((r) => r.name));
    for (const name of [...this.held.keys()]) if (!names.has(name)) this.release(name);
    if (!this.enabled) return;
    for (const row of rows) {
      const extra = plan.extraMs[row.name];
      if (extra == null) {
        this.release(row.name);
        continue;
      }
      // the target counts from the receiver's own minimum, so that extra is all hold-back.
      setTarget(row.video, Math.min(MAX_TARGET_MS, Math.round(row.videoMin + extra)));
      if (row.audio) setTarget(row.audio, Math.min(MAX_TARGET_MS, Math.round(row.audioMin + extra)));
      this.held.set(row.name, { extraMs: extra, video: row.video, audio: row.audio });
    }
  }
}
