// The call signalling client: one WebSocket to GET /v1/rooms/{room}/ws speaking the JSON
// protocol of internal/session/PROTOCOL.md.
//
//   const sig = new Signalling({ room: 'incident-1', token, name: 'Alice' });
//   sig.addEventListener('message', (e) => handle(e.detail));  // every server message after joined
//   sig.addEventListener('lost', (e) => resume(e.detail.reason)); // the socket broke
//   sig.addEventListener('bye', (e) => show(e.detail.reason));    // the server ended the session
//   const joined = await sig.join(resumeSession);                  // throws CallError
//   const answer = await sig.request({ type: 'offer', pc: 'publish', sdp, tracks }, 'answer');
//   await sig.leave();
//
// The token travels in the join message (browsers cannot set headers on a WebSocket). A ping
// every pingMs, answered by a pong, shows a dead path (a phone that changed networks keeps a
// socket that never closes by itself): without a message for silenceMs the socket is dropped
// with a code other than 1000/1001, so the server keeps the participant for its resume window.

import { Said, said } from './call-strings.js';

// CallError is a refusal by the server (code from PROTOCOL.md: unauthorized, forbidden,
// not_found, …) or a failure to talk to it (code 'network'). Its reason is the server's text,
// shown as it came, or a Said of the page, read in the language in use.
export class CallError extends Error {
  constructor(code, reason) {
    super();
    this.name = 'CallError';
    this.code = code;
    this.reason = reason instanceof Said ? reason : String(reason ?? '');
  }

  get message() {
    return String(this.reason);
  }

  // fatal tells whether trying again with the same token cannot work.
  get fatal() {
    return this.code === 'unauthorized' || this.code === 'forbidden' || this.code === 'room_full' || this.code === 'bad_request';
  }
}

// why returns what to show of err: a CallError's reason (the server's text, or a Said of the
// page), else the error's message.
export function why(err) {
  return err instanceof CallError ? err.reason : err?.message ?? `${err}`;
}

// DROP_CODE closes a socket the page gave up on: not 1000/1001, so the server waits for a resume.
const DROP_CODE = 4000;

// MAX_HOPS bounds how often a join follows the cluster to the node a room lives on.
const MAX_HOPS = 3;

// roomURL returns the room's WebSocket URL on the page's own server.
export function roomURL(room, loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/v1/rooms/${encodeURIComponent(room)}/ws`;
}

export class Signalling extends EventTarget {
  constructor({ room, token, name = '', autoSubscribe = true, joinTimeoutMs = 10000, requestTimeoutMs = 15000, pingMs = 4000, silenceMs = 10000 }) {
    super();
    this.url = roomURL(room);
    this.token = token;
    this.name = name;
    this.autoSubscribe = autoSubscribe;
    this.joinTimeoutMs = joinTimeoutMs;
    this.requestTimeoutMs = requestTimeoutMs;
    this.pingMs = pingMs;
    this.silenceMs = silenceMs;
    this.ws = null;
    this.nextID = 1;
    this.pending = new Map(); // id → {want, resolve, reject, timer}
    this.ended = false; // true once the socket closed, for whatever reason
    this.leaving = false;
    this.lastHeard = 0;
    this.pinger = 0;
    this.hops = 0; // joins sent on to the room's node (error code 'elsewhere')
  }

  get open() {
    return !this.ended && this.ws?.readyState === WebSocket.OPEN;
  }

  // join opens the socket and joins the room, resuming session when given. It resolves with
  // the joined message and throws a CallError with the server's reason when refused.
  join(resume = '') {
    if (this.ws) return Promise.reject(new CallError('conflict', said('call.sig.used')));
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.drop('', false);
        reject(err);
      };
      const timer = setTimeout(() => fail(new CallError('network', said('call.sig.join-timeout', { secs: this.joinTimeoutMs / 1000 }))), this.joinTimeoutMs);
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        fail(new CallError('network', said('call.sig.cannot-open', { url: this.url, reason: err?.message ?? err })));
        return;
      }
      this.ws = ws;
      ws.addEventListener('open', () => {
        const msg = { type: 'join', id: this.nextID++, token: this.token, auto_subscribe: this.autoSubscribe };
        if (resume) msg.resume = resume;
        if (this.name) msg.name = this.name;
        this.sendRaw(msg);
      });
      ws.addEventListener('message', (ev) => {
        if (this.ws !== ws) return; // a socket left for the room's node
        const msg = parse(ev.data);
        if (!msg) return;
        this.lastHeard = performance.now();
        if (settled) {
          this.dispatch(msg);
          return;
        }
        if (msg.type === 'joined') {
          settled = true;
          clearTimeout(timer);
          this.startPings();
          resolve(msg);
        } else if (msg.type === 'error' && msg.code === 'elsewhere' && msg.url && this.hops < MAX_HOPS) {
          // the room lives on another node of the cluster: join there.
          settled = true;
          clearTimeout(timer);
          this.ws = null;
          ws.close(1000);
          this.hops++;
          this.url = msg.url;
          resolve(this.join(resume));
        } else if (msg.type === 'error') {
          fail(new CallError(msg.code || 'internal', msg.reason || said('call.sig.join-refused')));
        }
        // a bye follows an error; nothing else comes before joined.
      });
      ws.addEventListener('close', (ev) => {
        if (this.ws !== ws) return;
        if (!settled) {
          fail(new CallError('network', said('call.sig.closed-early', { code: ev.code })));
          return;
        }
        this.closed(ev.code === 1000 || ev.code === 1001 ? said('call.sig.server-closed') : said('call.sig.broke', { code: ev.code }));
      });
      ws.addEventListener('error', () => {
        // a close event follows with the code.
      });
    });
  }

  // request sends msg with a fresh id and resolves with the reply of type want (or rejects
  // with a CallError from the server's error reply, a timeout or a broken socket).
  request(msg, want) {
    if (!this.open) return Promise.reject(new CallError('network', said('call.sig.not-connected')));
    const id = this.nextID++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CallError('network', said('call.sig.no-reply', { want, type: msg.type, secs: this.requestTimeoutMs / 1000 })));
      }, this.requestTimeoutMs);
      this.pending.set(id, { want, resolve, reject, timer });
      this.sendRaw({ ...msg, id });
    });
  }

  // send sends msg with a fresh id (so that an error reply can be matched) and tells whether
  // the socket took it.
  send(msg) {
    if (!this.open) return false;
    return this.sendRaw({ ...msg, id: msg.id ?? this.nextID++ });
  }

  sendRaw(msg) {
    try {
      this.ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  dispatch(msg) {
    const p = msg.id ? this.pending.get(msg.id) : null;
    if (p && (msg.type === p.want || msg.type === 'error')) {
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.type === 'error') p.reject(new CallError(msg.code || 'internal', msg.reason || said('call.sig.refused')));
      else p.resolve(msg);
      return;
    }
    if (msg.type === 'pong') return;
    if (msg.type === 'bye') {
      this.byeReason = msg.reason || said('call.sig.bye');
      return; // the close that follows reports it.
    }
    if (msg.type === 'moved') {
      // the room lives on another node now (a split cluster healed): the close that follows
      // is reported as lost, and the reconnection joins the room at its home.
      this.movedReason = msg.reason || said('call.sig.moved');
      return;
    }
    this.emit('message', msg);
  }

  startPings() {
    this.pinger = setInterval(() => {
      if (performance.now() - this.lastHeard > this.silenceMs) {
        this.drop(said('call.sig.silent', { secs: this.silenceMs / 1000 }), true);
        return;
      }
      this.sendRaw({ type: 'ping', id: this.nextID++ });
    }, this.pingMs);
  }

  // closed ends the connection once: requests fail, and the owner hears why (reason: a Said).
  closed(reason) {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.pinger);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new CallError('network', said('call.sig.ended', { reason })));
    }
    this.pending.clear();
    if (this.leaving) return;
    if (this.byeReason) this.emit('bye', { reason: this.byeReason });
    else this.emit('lost', { reason: this.movedReason || reason });
  }

  // drop abandons the socket without a goodbye, as a broken network would; the server keeps
  // the session for its resume window. report tells whether the owner hears of it ('lost').
  drop(reason, report = true) {
    const ws = this.ws;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try {
        ws.close(DROP_CODE, 'connection abandoned');
      } catch {
        // already closing.
      }
    }
    if (!report) this.leaving = true;
    this.closed(reason || said('call.sig.dropped'));
  }

  // leave says goodbye: the server ends the participation at once, then closes the socket.
  // It resolves when the server confirmed or after timeoutMs.
  leave(timeoutMs = 2000) {
    if (!this.open) {
      this.drop('', false);
      return Promise.resolve();
    }
    this.leaving = true;
    const ws = this.ws;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        try {
          ws.close(1000, 'left');
        } catch {
          // already closed.
        }
        this.closed(said('call.sig.left'));
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      ws.addEventListener('close', done, { once: true });
      this.sendRaw({ type: 'leave', id: this.nextID++ });
    });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function parse(data) {
  if (typeof data !== 'string') return null;
  try {
    const msg = JSON.parse(data);
    return msg && typeof msg.type === 'string' ? msg : null;
  } catch {
    return null;
  }
}
