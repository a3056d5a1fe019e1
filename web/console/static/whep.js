// A small WHEP client (RFC 9725 style): one receive-only RTCPeerConnection per session.
//
//   const s = new WHEPSession({ endpoint: '/cam1/whep', token });
//   s.addEventListener('ended', (e) => console.log(e.detail.reason));
//   await s.connect();            // throws WHEPError
//   video.srcObject = s.stream;
//   …
//   s.close();                    // DELETEs the session
//
// Events (all CustomEvent):
//   'track'            detail {track}: a remote track was added to stream.
//   'statechange'      detail {state}: the peer connection's connectionState changed.
//   'ended'            detail {reason}: the session ended without close() — the connection
//                      failed or closed, or stayed disconnected for disconnectedTimeoutMs.
//                      Fired once; the owner should close() it and, if it wants, start anew.
// The server's answer carries all its candidates, so no trickle ICE is sent.
//
// The offer asks for the abs-capture-time RTP header extension where the browser lets a page
// choose its header extensions (RTCRtpTransceiver.setHeaderExtensionsToNegotiate; Chromium
// leaves it out otherwise): the server then stamps every frame with its capture time, which
// the receiver's getSynchronizationSources() shows as captureTimestamp. captureTimes tells
// whether the server agreed.
//
// Backoff gives the delays between attempts for a page that reconnects by itself.

import { authHeaders, reasonOf, request } from './api.js';

// WHEPError is a failed connect. status is the HTTP status of the offer (0 when the server
// could not be reached or the browser failed before sending it); message says why.
export class WHEPError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = 'WHEPError';
    this.status = status;
  }

  // retryable tells whether trying again later may work without changing anything: the source
  // is not published yet (404), the server or network had a problem, or the offer timed out.
  get retryable() {
    return this.status === 0 || this.status === 404 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

export class WHEPSession extends EventTarget {
  // endpoint: the WHEP URL (absolute or relative to the page), e.g. '/cam1/whep'.
  // token: the bearer token. video/audio: which kinds to receive.
  // gatherTimeoutMs bounds ICE gathering before the offer is sent as it is.
  // disconnectedTimeoutMs: how long 'disconnected' may last before the session counts as ended.
  constructor({
    endpoint,
    token,
    video = true,
    audio = true,
    iceServers = [],
    gatherTimeoutMs = 2000,
    requestTimeoutMs = 10000,
    disconnectedTimeoutMs = 4000,
    captureTimes = true,
  }) {
    super();
    this.endpoint = new URL(endpoint, window.location.href).href;
    this.token = token;
    this.kinds = [video && 'video', audio && 'audio'].filter(Boolean);
    this.iceServers = iceServers;
    this.gatherTimeoutMs = gatherTimeoutMs;
    this.requestTimeoutMs = requestTimeoutMs;
    this.disconnectedTimeoutMs = disconnectedTimeoutMs;
    this.wantCaptureTimes = captureTimes;
    // captureTimes is true once the answer accepted abs-capture-time.
    this.captureTimes = false;
    this.stream = new MediaStream();
    // location is the session's URL once the server created it.
    this.location = '';
    this.pc = null;
    this.closed = false;
    this.endedReason = '';
    this.disconnectedTimer = 0;
  }

  get connectionState() {
    return this.pc?.connectionState ?? 'new';
  }

  // connect negotiates the session. It resolves once the answer is applied (media follows
  // when ICE and DTLS complete) and throws a WHEPError when the server refuses the offer or
  // cannot be reached. It may be called once.
  async connect() {
    if (this.pc || this.closed) throw new WHEPError('this WHEP session was already used; create a new one');
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
    this.pc = pc;
    for (const kind of this.kinds) {
      const t = pc.addTransceiver(kind, { direction: 'recvonly' });
      if (this.wantCaptureTimes) askForCaptureTimes(t);
    }
    pc.addEventListener('track', (ev) => {
      this.stream.addTrack(ev.track);
      this.emit('track', { track: ev.track });
    });
    pc.addEventListener('connectionstatechange', () => this.onState());

    let offer;
    try {
      offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      await this.gathered();
    } catch (err) {
      throw new WHEPError(`the browser could not make an offer: ${err?.message ?? err}`);
    }
    this.checkOpen();

    const res = await request(this.endpoint, {
      method: 'POST',
      headers: authHeaders(this.token, { 'Content-Type': 'application/sdp' }),
      body: pc.localDescription?.sdp ?? offer.sdp,
    }, this.requestTimeoutMs).catch((err) => {
      throw new WHEPError(err?.message ?? `${err}`, 0);
    });
    if (res.status !== 201) throw new WHEPError(await reasonOf(res), res.status);
    const loc = res.headers.get('Location');
    if (loc) this.location = new URL(loc, this.endpoint).href;
    const answer = await res.text().catch(() => '');
    if (this.closed) {
      // closed while the offer was in flight: release the session the server just made.
      this.deleteSession(false);
      throw new WHEPError('the session was closed while connecting');
    }
    if (!answer.startsWith('v=')) throw new WHEPError('the server answered without an SDP answer', res.status);
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    } catch (err) {
      throw new WHEPError(`the browser rejected the server's answer: ${err?.message ?? err}`, res.status);
    }
    this.captureTimes = answer.split('\n').some((l) => l.startsWith('a=extmap:') && l.trim().endsWith(ABS_CAPTURE_TIME));
    this.checkOpen();
  }

  // receiver returns the RTCRtpReceiver of the first track of kind ('video', 'audio'), or null.
  receiver(kind) {
    return this.pc?.getReceivers().find((r) => r.track?.kind === kind) ?? null;
  }

  // close ends the session: closes the peer connection and DELETEs the server's resource.
  // keepalive lets the DELETE outlive the page (for pagehide). Safe to call more than once.
  close({ keepalive = false } = {}) {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.disconnectedTimer);
    // the DELETE goes first, so the server learns that the viewer left rather than that its
    // connection broke.
    this.deleteSession(keepalive);
    for (const track of this.stream.getTracks()) track.stop();
    try {
      this.pc?.close();
    } catch {
      // already closed.
    }
  }

  deleteSession(keepalive) {
    const url = this.location;
    if (!url) return;
    this.location = '';
    fetch(url, { method: 'DELETE', headers: authHeaders(this.token), keepalive }).catch(() => {
      // the server may be gone; it ends sessions whose peer disappears by itself.
    });
  }

  checkOpen() {
    if (this.closed) throw new WHEPError('the session was closed while connecting');
  }

  // gathered resolves when ICE gathering completes or gatherTimeoutMs passes, whichever is
  // first; the offer then carries the candidates found so far.
  gathered() {
    const pc = this.pc;
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
      const timer = setTimeout(done, this.gatherTimeoutMs);
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  onState() {
    const state = this.pc.connectionState;
    this.emit('statechange', { state });
    clearTimeout(this.disconnectedTimer);
    if (this.closed) return;
    if (state === 'failed' || state === 'closed') {
      this.end(`the connection ${state}`);
    } else if (state === 'disconnected') {
      this.disconnectedTimer = setTimeout(() => {
        if (!this.closed && this.pc.connectionState === 'disconnected') {
          this.end(`the connection was lost for more than ${this.disconnectedTimeoutMs / 1000} s`);
        }
      }, this.disconnectedTimeoutMs);
    }
  }

  end(reason) {
    if (this.endedReason || this.closed) return;
    this.endedReason = reason;
    this.emit('ended', { reason });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

// ABS_CAPTURE_TIME ends the URI of the abs-capture-time header extension.
const ABS_CAPTURE_TIME = '/rtp-hdrext/abs-capture-time';

// askForCaptureTimes makes the transceiver offer abs-capture-time, where the browser allows.
function askForCaptureTimes(transceiver) {
  if (typeof transceiver.getHeaderExtensionsToNegotiate !== 'function') return;
  try {
    const exts = transceiver.getHeaderExtensionsToNegotiate();
    let changed = false;
    for (const e of exts) {
      if (e.uri.endsWith(ABS_CAPTURE_TIME) && e.direction === 'stopped') {
        e.direction = 'recvonly';
        changed = true;
      }
    }
    if (changed) transceiver.setHeaderExtensionsToNegotiate(exts);
  } catch (err) {
    console.warn(`whep: cannot ask for capture times: ${err?.message ?? err}`);
  }
}

// Backoff gives the delays before reconnecting: capped exponential (0.5 s → 8 s by default)
// with ±25 % jitter, so that many pages do not retry in step after an SFU restart.
export class Backoff {
  constructor(min = 500, max = 8000) {
    this.min = min;
    this.max = max;
    this.attempt = 0;
  }

  next() {
    const base = Math.min(this.max, this.min * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 20);
    const jittered = base * (0.75 + Math.random() * 0.5);
    return Math.round(Math.min(this.max, Math.max(this.min, jittered)));
  }

  // jumpToMax jumps to the longest delay, for errors that waiting a little will not fix.
  jumpToMax() {
    this.attempt = 20;
  }

  reset() {
    this.attempt = 0;
  }
}
