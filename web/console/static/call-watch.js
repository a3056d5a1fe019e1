// StallWatch finds subscribed videos that stopped decoding although the server says it
// forwards them (a layer other than "off", the track not muted). The page then subscribes to
// such a track again, which gives it a fresh forwarder on the server and a fresh keyframe:
// the last resort against a picture frozen by a lost keyframe request or a forwarding fault.
//
//   const watch = new StallWatch();
//   const stalled = await watch.check(videoReceivers, (id) => expectingPictures(id));
//   watch.reset(id); // the layer changed: give it a new window

export class StallWatch {
  // stallMs without a decoded frame counts as stalled; a track is retried at most once per
  // retryMs.
  constructor({ stallMs = 6000, retryMs = 15000, now = () => performance.now() } = {}) {
    this.stallMs = stallMs;
    this.retryMs = retryMs;
    this.now = now;
    this.state = new Map(); // track id → {receiver, frames, since, retriedAt}
  }

  // check reads the decoded frame counts of videos (track id → RTCRtpReceiver) and returns
  // the ids that stalled while expecting(id) was true.
  async check(videos, expecting) {
    const counts = await Promise.all([...videos].map(async ([id, receiver]) => [id, receiver, await framesDecoded(receiver)]));
    return this.update(counts, expecting);
  }

  // update applies counts ([id, receiver, frames]) and returns the stalled ids.
  update(counts, expecting) {
    const now = this.now();
    const out = [];
    const seen = new Set();
    for (const [id, receiver, frames] of counts) {
      seen.add(id);
      const s = this.state.get(id);
      if (!s || s.receiver !== receiver) {
        this.state.set(id, { receiver, frames, since: now, retriedAt: -Infinity });
        continue;
      }
      if (frames < 0 || frames !== s.frames || !expecting(id)) {
        s.frames = frames;
        s.since = now;
        continue;
      }
      if (now - s.since >= this.stallMs && now - s.retriedAt >= this.retryMs) {
        s.retriedAt = now;
        s.since = now;
        out.push(id);
      }
    }
    for (const id of [...this.state.keys()]) if (!seen.has(id)) this.state.delete(id);
    return out;
  }

  // reset starts id's window anew (its layer changed, or it was unmuted).
  reset(id) {
    const s = this.state.get(id);
    if (s) s.since = this.now();
  }
}

// framesDecoded returns the frames the receiver decoded so far (-1 when unknown).
async function framesDecoded(receiver) {
  try {
    const stats = await receiver.getStats();
    for (const r of stats.values()) {
      if (r.type === 'inbound-rtp' && r.kind === 'video') return r.framesDecoded ?? -1;
    }
  } catch {
    // the connection closed meanwhile.
  }
  return -1;
}
