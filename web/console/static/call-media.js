// The two peer connections of a call participant (internal/session/PROTOCOL.md):
//
//   Publisher  — the "publish" connection, where the page offers: camera (simulcast q/h/f,
//                lowest first), microphone (Opus), screen. send(msg)/request(msg, want) go
//                to the signalling connection of the moment.
//   Subscriber — the "subscribe" connection, where the server offers one m-line per
//                subscription; remote tracks are told apart by the msid of their m-line
//                (stream id = participant, track id = room track id such as bob/camera).
//
// Both fire 'state' (detail {pc, state}) when their connection state changes, so the page can
// restart ICE when a network change breaks the media path. localMedia opens the camera and
// microphone; screenItems turns a shared screen into publish items.

// SIMULCAST are the camera's layers, lowest first, as the server expects them.
export const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

// GATHER_MS bounds ICE gathering before a description is sent; later candidates trickle.
const GATHER_MS = 2000;

// mediaSections parses an SDP into its m-sections: kind, port, mid, direction and the msid's
// stream and track ids.
export function mediaSections(sdp) {
  const out = [];
  let cur = null;
  for (const raw of String(sdp).split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('m=')) {
      const f = line.slice(2).split(' ');
      cur = { kind: f[0], port: f[1] ?? '', mid: '', direction: 'sendrecv', stream: '', track: '' };
      out.push(cur);
    } else if (!cur) {
      continue;
    } else if (line.startsWith('a=mid:')) {
      cur.mid = line.slice(6);
    } else if (line.startsWith('a=msid:')) {
      const [stream = '', track = ''] = line.slice(7).split(' ');
      cur.stream = stream;
      cur.track = track;
    } else if (/^a=(sendonly|recvonly|sendrecv|inactive)$/.test(line)) {
      cur.direction = line.slice(2);
    }
  }
  return out;
}

// gathered resolves when pc's ICE gathering completes or ms passes.
export function gathered(pc, ms = GATHER_MS) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

// Connection is what both peer connections share: creation, state events, trickled
// candidates once a description went out.
class Connection extends EventTarget {
  constructor(name, signal, iceServers) {
    super();
    this.name = name;
    this.signal = signal; // {send(msg), request(msg, want)}
    this.iceServers = iceServers;
    this.pc = null;
    this.described = false;
    this.closed = false;
  }

  get state() {
    return this.pc?.connectionState ?? 'new';
  }

  ensurePC() {
    if (this.pc) return this.pc;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
    pc.addEventListener('connectionstatechange', () => {
      if (!this.closed) this.dispatchEvent(new CustomEvent('state', { detail: { pc: this.name, state: pc.connectionState } }));
    });
    pc.addEventListener('icecandidate', (ev) => {
      const c = ev.candidate;
      if (!this.described || !c || !c.candidate) return;
      this.signal.send({ type: 'candidate', pc: this.name, candidate: c.candidate, sdp_mid: c.sdpMid ?? undefined, sdp_mline_index: c.sdpMLineIndex ?? undefined });
    });
    this.pc = pc;
    return pc;
  }

  // describe sets d as the local description and returns the SDP to send, with the
  // candidates gathered so far.
  async describe(d) {
    await this.pc.setLocalDescription(d);
    await gathered(this.pc);
    this.described = true;
    return this.pc.localDescription.sdp;
  }

  close() {
    this.closed = true;
    try {
      this.pc?.close();
    } catch {
      // already closed.
    }
    this.pc = null;
  }
}

// Publisher sends the page's camera, microphone and screen.
export class Publisher extends Connection {
  constructor(signal, iceServers) {
    super('publish', signal, iceServers);
    this.sources = new Map(); // source → {transceiver, track}
    // undescribed are the sources no answered offer described yet: every offer lists them,
    // so a publication survives an offer lost with a broken socket.
    this.undescribed = new Set();
    this.queue = Promise.resolve();
  }

  // serial runs fn after the negotiations before it, so offers never overlap.
  serial(fn) {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {});
    return run;
  }

  // publish adds tracks ({source, track, simulcast?}) and negotiates them.
  publish(items) {
    return this.serial(async () => {
      const pc = this.ensurePC();
      for (const { source, track, simulcast } of items) {
        const init = { direction: 'sendonly' };
        if (simulcast) init.sendEncodings = SIMULCAST.map((e) => ({ ...e }));
        const transceiver = pc.addTransceiver(track, init);
        if (track.kind === 'video') setPublishCodecs(transceiver);
        this.sources.set(source, { transceiver, track });
        this.undescribed.add(source);
      }
      await this.negotiate();
    });
  }

  // unpublish stops sending source: its m-line stops, which unpublishes it on the server.
  unpublish(source) {
    return this.serial(async () => {
      const s = this.sources.get(source);
      if (!s) return;
      this.sources.delete(source);
      this.undescribed.delete(source);
      try {
        s.transceiver.stop();
      } catch {
        // the connection closed meanwhile.
      }
      if (this.pc && !this.closed) await this.negotiate();
    });
  }

  // restartIce re-offers with new ICE credentials (after a network change).
  restartIce() {
    return this.serial(async () => {
      if (!this.pc || this.closed || this.sources.size === 0) return;
      await this.negotiate(true);
    });
  }

  // negotiate offers the connection's state, describing the sources not described yet.
  async negotiate(iceRestart = false) {
    const pc = this.pc;
    const sdp = await this.describe(await pc.createOffer({ iceRestart }));
    const sources = [...this.undescribed].filter((s) => this.sources.has(s));
    const tracks = sources.map((source) => ({ mid: this.sources.get(source).transceiver.mid, source }));
    const answer = await this.signal.request({ type: 'offer', pc: 'publish', sdp, tracks }, 'answer');
    if (pc !== this.pc) return; // closed meanwhile
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    for (const s of sources) this.undescribed.delete(s);
  }

  // has tells whether source is being published.
  has(source) {
    return this.sources.has(source);
  }
}

// publishCodecs orders the video codecs a publish offer lists: H.264 in packetization mode 1
// first (what the server records and every viewer decodes), then VP8, then the rest.
export function publishCodecs(codecs) {
  const rank = (c) => {
    if (/h264/i.test(c.mimeType)) return /packetization-mode=1/.test(c.sdpFmtpLine ?? '') ? 0 : 1;
    if (/vp8/i.test(c.mimeType)) return 2;
    return /rtx|red|ulpfec/i.test(c.mimeType) ? 4 : 3;
  };
  return [...codecs].sort((a, b) => rank(a) - rank(b));
}

function setPublishCodecs(transceiver) {
  if (typeof transceiver.setCodecPreferences !== 'function' || !RTCRtpSender.getCapabilities) return;
  const codecs = publishCodecs(RTCRtpSender.getCapabilities('video')?.codecs ?? []);
  if (!codecs.some((c) => /h264|vp8/i.test(c.mimeType))) return;
  try {
    transceiver.setCodecPreferences(codecs);
  } catch {
    // the browser's default order stays.
  }
}

// Subscriber answers the server's offers and maps the remote tracks to room track ids.
export class Subscriber extends Connection {
  constructor(signal, iceServers) {
    super('subscribe', signal, iceServers);
    // tracks: room track id → {track, participant, kind}; replaced after every negotiation.
    this.tracks = new Map();
    this.queue = Promise.resolve();
  }

  // onOffer answers one offer; offers are handled in order.
  onOffer(sdp) {
    const run = this.queue.then(() => this.answer(sdp));
    this.queue = run.catch(() => {});
    return run;
  }

  async answer(sdp) {
    if (this.closed) return;
    const pc = this.ensurePC();
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await this.describe(await pc.createAnswer());
    if (pc !== this.pc) return;
    this.signal.send({ type: 'answer', pc: 'subscribe', sdp: answer });
    this.map(sdp);
  }

  // map finds, for every m-line the server sends on, the receiver's track.
  map(sdp) {
    const byMid = new Map();
    for (const s of mediaSections(sdp)) {
      if (s.port !== '0' && s.track && (s.direction === 'sendonly' || s.direction === 'sendrecv')) byMid.set(s.mid, s);
    }
    const tracks = new Map();
    for (const tr of this.pc.getTransceivers()) {
      const s = byMid.get(tr.mid);
      if (s && tr.receiver?.track) tracks.set(s.track, { track: tr.receiver.track, participant: s.stream, kind: s.kind, receiver: tr.receiver });
    }
    this.tracks = tracks;
    this.dispatchEvent(new CustomEvent('tracks', { detail: { tracks } }));
  }

  // restartIce asks the server for an offer with new ICE credentials.
  restartIce() {
    if (this.pc && !this.closed) this.signal.send({ type: 'restart_ice' });
  }
}

// screenItems are the tracks of a shared screen, as publish items.
export function screenItems(stream) {
  const items = [];
  const v = stream.getVideoTracks()[0];
  const a = stream.getAudioTracks()[0];
  if (v) items.push({ source: 'screen', track: v });
  if (a) items.push({ source: 'screen_audio', track: a });
  return items;
}

// VIDEO and AUDIO are what the page asks of the camera and microphone.
const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30, max: 30 } };
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

// localMedia opens the camera and microphone, or what of them works; null when nothing does.
// report(key, vars) tells the person what does not work, with a key of call-strings.js.
export async function localMedia(report) {
  if (!navigator.mediaDevices?.getUserMedia) {
    report('call.media.insecure');
    return null;
  }
  let firstErr = null;
  for (const c of [{ video: VIDEO, audio: AUDIO }, { audio: AUDIO }, { video: VIDEO }]) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(c);
      if (!(c.video && c.audio)) report(c.video ? 'call.media.only-camera' : 'call.media.only-microphone', { reason: firstErr?.message ?? '' });
      return { stream, video: stream.getVideoTracks()[0] ?? null, audio: stream.getAudioTracks()[0] ?? null };
    } catch (err) {
      firstErr ??= err;
    }
  }
  report('call.media.unavailable', { name: firstErr?.name ?? 'error', reason: firstErr?.message ?? '' });
  return null;
}
