// The call page: a two-way video call between the field commander and the EOC, over the
// room signalling of internal/session/PROTOCOL.md.
//
// The page joins with a token (?token= once, kept in sessionStorage, or the form) and a room
// (?room= or the form); publishes its camera (simulcast q/h/f) and microphone when the token
// may publish; shows one tile per participant with name, role, speaking highlight, muted state
// and the layer it receives; can share the screen; and can pin a field camera the token may
// view, shown large next to the call.
//
// Recovery: when the signalling socket breaks (or stops answering pings) the page joins again
// with {resume: session}, then re-offers the publish connection with an ICE restart and sends
// restart_ice for the subscribe connection. A media connection that fails (or stays
// disconnected) while signalling works gets the same ICE restart. A session the server no
// longer knows is replaced by a fresh join that publishes again.

import { mountNav } from './nav.js';
import { t } from './i18n.js';
import { forgetToken, onTokenChange, saveToken, takeToken } from './api.js';
import { Backoff } from './whep.js';
import { CallError, Signalling, why } from './call-signal.js';
import { Publisher, Subscriber, localMedia, screenItems } from './call-media.js';
import { displayName, roleName, said } from './call-strings.js';
import { Sound, Tile, el, fieldName, layerLabel, setText } from './call-tiles.js';
import { StallWatch } from './call-watch.js';

const METER_MS = 200;
// PHONE is the width below which the call is one scrolling column (as in call.css).
const PHONE = window.matchMedia('(max-width: 700px)');
const STALL_CHECK_MS = 2000;
// A media connection disconnected for this long is restarted without waiting for 'failed'.
const DISCONNECTED_GRACE_MS = 4000;
// ICE restarts for a connection's failures are at least this far apart.
const RESTART_GAP_MS = 3000;

const $ = (id) => document.getElementById(id);

class Call {
  constructor() {
    this.token = '';
    this.room = '';
    this.name = '';
    this.sig = null;
    this.session = '';
    this.me = null;
    this.grants = { publish: false, subscribe: false };
    this.iceServers = [];
    this.participants = new Map(); // the others: id → {id, name, role}
    this.tracks = new Map(); // room track id → TrackInfo
    this.layers = new Map(); // track id → {layer, reason}
    this.speaking = new Set();
    this.tiles = new Map(); // key → Tile
    this.publisher = null;
    this.subscriber = null;
    this.local = null; // {stream, video, audio}
    this.screen = null; // the shared screen's MediaStream
    this.micMuted = false;
    this.camMuted = false;
    this.pinned = '';
    this.fieldAudio = false;
    this.left = true;
    // generation counts fresh joins (and leaves), so work started for one is dropped in the next.
    this.generation = 0;
    this.reconnecting = false;
    this.lastRestart = 0;
    this.disconnectedTimers = new Map();
    this.watch = new StallWatch();
    this.signal = {
      send: (msg) => this.sig?.send(msg) ?? false,
      request: (msg, want) => (this.sig ? this.sig.request(msg, want) : Promise.reject(new CallError('network', said('call.sig.not-connected')))),
    };
    // what the page says (statusMsg, joinMsg, stageText) is kept as Saids for a language switch.
    this.title = said('call.title');
  }

  init() {
    this.sound = new Sound($('audio'));
    this.sound.addEventListener('blocked', () => ($('sound').hidden = false));
    this.sound.addEventListener('unblocked', () => ($('sound').hidden = true));
    $('sound').addEventListener('click', () => this.sound.enable());
    $('mic').addEventListener('click', () => this.toggleMic());
    $('camera').addEventListener('click', () => this.toggleCamera());
    $('screen').addEventListener('click', () => this.toggleScreen());
    $('leave').addEventListener('click', () => this.leave());
    $('unpin').addEventListener('click', () => this.pin(''));
    $('stage-sound').addEventListener('click', () => this.toggleFieldAudio());
    $('fields-list').addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-pin]');
      if (b) this.pin(b.dataset.pin === this.pinned ? '' : b.dataset.pin);
    });
    $('join-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submitForm();
    });
    // the tiles' space changes with the window, the stage and the header's wrapping.
    new ResizeObserver(() => this.layout()).observe($('tiles'));
    PHONE.addEventListener('change', () => this.layout());
    window.addEventListener('online', () => this.restartMedia('the network changed', true));
    window.addEventListener('pagehide', () => {
      if (!this.left) this.sig?.leave(0);
    });
    setInterval(() => this.meters(), METER_MS);
    setInterval(() => this.checkStalls(), STALL_CHECK_MS);
    window.addEventListener('langchange', () => this.relabel());
    this.relabel();

    const params = new URL(window.location.href).searchParams;
    this.token = takeToken();
    // a renewed sign-in: the participation goes on with the new token (resumes use it too).
    onTokenChange((token) => {
      this.token = token;
      this.sig?.request({ type: 'renew', token }, 'renewed').catch((err) => console.warn(`call: renew: ${err?.message ?? err}`));
    });
    this.room = (params.get('room') ?? '').trim();
    this.name = displayName(params.get('name') ?? '');
    if (this.token && this.room) this.start();
    else this.showForm(said(this.token ? 'call.join.need-room' : 'call.join.need-both'));
  }

  // relabel writes again, in the language now in use, what the page wrote itself.
  relabel() {
    this.renderTitle();
    this.setStatus(this.statusMsg);
    this.renderForm();
    this.renderButtons();
    this.render();
    this.renderStage();
  }

  renderTitle() {
    const text = String(this.title);
    setText($('title'), text);
    if (document.title !== text) document.title = text;
  }

  // phase is what the page is doing: form, joining, in-call, reconnecting, ended.
  setPhase(phase) {
    document.body.dataset.call = phase;
    const inCall = phase === 'in-call' || phase === 'reconnecting';
    $('controls').hidden = !inCall;
    $('call').hidden = !inCall && phase !== 'joining';
    $('join-panel').hidden = phase !== 'form' && phase !== 'ended';
    if (phase === 'form' || phase === 'ended') $('rec').hidden = true;
  }

  // setStatus shows msg (a Said, or '' for none) in the header.
  setStatus(msg) {
    this.statusMsg = msg;
    const text = String(msg ?? '').trim();
    setText($('status'), text);
    $('status').hidden = text === '';
  }

  // showForm shows the join form with reason (a Said).
  showForm(reason, { ended = false } = {}) {
    this.setPhase(ended ? 'ended' : 'form');
    this.setStatus('');
    this.formEnded = ended;
    this.renderForm(reason);
    $('room-input').value = this.room;
    $('name-input').value = this.name;
    $('token-input').value = '';
    (!this.room ? $('room-input') : !this.token ? $('token-input') : $('join-submit')).focus();
  }

  // renderForm writes the join form's reason (msg, a Said), placeholder and button.
  renderForm(msg = this.joinMsg) {
    this.joinMsg = msg;
    setText($('join-reason'), String(msg ?? ''));
    $('token-input').placeholder = this.token ? t('call.join.keep-token') : '';
    setText($('join-submit'), t(this.formEnded ? 'call.join.again' : 'call.join.submit'));
  }

  submitForm() {
    const token = $('token-input').value.trim() || this.token;
    const room = $('room-input').value.trim();
    if (!room || !/^[A-Za-z0-9._-]{1,64}$/.test(room)) {
      this.renderForm(said('call.join.bad-room'));
      return;
    }
    if (!token) {
      this.renderForm(said('call.join.need-token'));
      return;
    }
    this.token = token;
    this.room = room;
    this.name = displayName($('name-input').value);
    saveToken(token);
    const url = new URL(window.location.href);
    url.searchParams.set('room', room);
    if (this.name) url.searchParams.set('name', this.name);
    else url.searchParams.delete('name');
    window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
    this.start();
  }

  async start() {
    this.left = false;
    this.setPhase('joining');
    this.setStatus(said('call.joining', { room: this.room }));
    this.title = said('call.title.room', { room: this.room });
    this.renderTitle();
    try {
      await this.connect('');
    } catch (err) {
      this.failJoin(err);
    }
  }

  failJoin(err) {
    this.teardown();
    this.left = true;
    if (err?.code === 'unauthorized') {
      forgetToken();
      this.token = '';
    }
    this.showForm(said(err?.code === 'network' ? 'call.join.unreachable' : 'call.join.refused', { reason: why(err) }));
  }

  // connect joins (resuming session when given) on a new socket and starts or restarts the
  // media. It throws a CallError when the join is refused.
  async connect(resume) {
    const sig = new Signalling({ room: this.room, token: this.token, name: this.name });
    sig.addEventListener('message', (e) => this.sig === sig && this.onMessage(e.detail));
    sig.addEventListener('lost', (e) => this.sig === sig && this.onLost(e.detail.reason));
    sig.addEventListener('bye', (e) => this.sig === sig && this.onBye(e.detail.reason));
    const joined = await sig.join(resume);
    if (this.left) {
      sig.leave();
      return;
    }
    this.sig = sig;
    if (!joined.resumed) this.generation++;
    this.onJoined(joined);
    if (joined.resumed) {
      this.restartMedia('resumed', true);
      // a pin asked for while the socket was down never reached the server.
      if (this.pinned && !this.subscriber?.tracks.has(this.pinned)) this.subscribeField(this.pinned);
    } else {
      await this.startMedia();
    }
  }

  onJoined(j) {
    this.session = j.session;
    this.me = j.participant;
    this.grants = j.grants ?? { publish: false, subscribe: false };
    this.iceServers = (j.ice_servers ?? []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
    this.participants = new Map((j.participants ?? []).map((p) => [p.id, p]));
    this.tracks = new Map((j.tracks ?? []).map((t) => [t.id, t]));
    if (!j.resumed) this.layers.clear();
    this.speaking.clear();
    $('rec').hidden = !j.recorded;
    this.setPhase('in-call');
    this.setStatus(this.grants.publish ? '' : said('call.watch-only'));
    $('screen').hidden = !this.grants.publish || typeof navigator.mediaDevices?.getDisplayMedia !== 'function';
    $('mic').disabled = !this.grants.publish;
    $('camera').disabled = !this.grants.publish;
    this.ensureSubscriber();
    this.render();
  }

  ensureSubscriber() {
    if (this.subscriber) return this.subscriber;
    const s = new Subscriber(this.signal, this.iceServers);
    s.addEventListener('tracks', () => this.onRemoteTracks());
    s.addEventListener('state', (e) => this.onPCState(e.detail));
    this.subscriber = s;
    return s;
  }

  async startMedia() {
    if (this.pinned) this.subscribeField(this.pinned);
    if (!this.grants.publish) return;
    if (!this.local) {
      const generation = this.generation;
      const local = await localMedia((key, vars) => this.setStatus(said(key, vars)));
      if (this.left || generation !== this.generation) {
        // left (or joined anew) while the browser asked for the devices.
        for (const t of local?.stream.getTracks() ?? []) t.stop();
        return;
      }
      this.local = local;
    }
    if (!this.local) return;
    if (this.local.audio) this.local.audio.enabled = !this.micMuted;
    if (this.local.video) this.local.video.enabled = !this.camMuted;
    if (this.local.audio) this.sound.attach('local:microphone', this.local.audio, { local: true });
    const pub = this.ensurePublisher();
    const items = [];
    if (this.local.video) items.push({ source: 'camera', track: this.local.video, simulcast: true });
    if (this.local.audio) items.push({ source: 'microphone', track: this.local.audio });
    this.render();
    try {
      await pub.publish(items);
      if (this.screen) await pub.publish(screenItems(this.screen));
    } catch (err) {
      if (pub === this.publisher && !this.left) this.setStatus(said('call.send-failed', { reason: why(err) }));
    }
  }

  ensurePublisher() {
    if (this.publisher) return this.publisher;
    const pub = new Publisher(this.signal, this.iceServers);
    pub.addEventListener('state', (e) => this.onPCState(e.detail));
    this.publisher = pub;
    return pub;
  }

  // resetMedia drops both connections (the server forgot the session); the own camera and
  // microphone stay open for the next publish.
  resetMedia() {
    this.publisher?.close();
    this.subscriber?.close();
    this.publisher = null;
    this.subscriber = null;
    for (const id of this.sound.ids()) if (!id.startsWith('local:')) this.sound.detach(id);
    this.layers.clear();
  }

  teardown() {
    this.generation++;
    this.resetMedia();
    for (const t of this.local?.stream.getTracks() ?? []) t.stop();
    for (const t of this.screen?.getTracks() ?? []) t.stop();
    this.local = null;
    this.screen = null;
    this.sound.clear();
    for (const tile of this.tiles.values()) tile.remove();
    this.tiles.clear();
    this.participants.clear();
    this.tracks.clear();
    this.pinned = '';
    this.fieldAudio = false;
    this.renderStage();
  }

  onMessage(msg) {
    switch (msg.type) {
      case 'offer':
        if (msg.pc === 'subscribe') {
          this.ensureSubscriber().onOffer(msg.sdp).catch((err) => {
            console.warn(`call: subscribe offer: ${err?.message ?? err}`);
            this.setStatus(said('call.receive-failed', { reason: why(err) }));
          });
        }
        return;
      case 'participant_joined':
        if (msg.participant?.id && msg.participant.id !== this.me?.id) this.participants.set(msg.participant.id, msg.participant);
        break;
      case 'participant_left':
        this.participants.delete(msg.participant?.id);
        for (const [id, t] of this.tracks) if (t.participant === msg.participant?.id) this.tracks.delete(id);
        break;
      case 'track_published':
      case 'track_muted':
        if (msg.track?.id) this.tracks.set(msg.track.id, msg.track);
        if (msg.track?.participant === this.me?.id) this.syncOwnMute(msg.track);
        this.watch.reset(msg.track?.id);
        break;
      case 'track_unpublished':
        this.tracks.delete(msg.track?.id);
        this.layers.delete(msg.track?.id);
        if (msg.track?.id === this.pinned) this.stageNote(said('call.stage.went-away', { reason: msg.reason || said('call.stage.stopped') }));
        break;
      case 'unsubscribed':
        this.layers.delete(msg.track);
        if (msg.track === this.pinned && msg.reason && msg.reason !== 'unsubscribed') this.stageNote(said('call.stage.ended', { reason: msg.reason }));
        break;
      case 'layer':
        this.layers.set(msg.track, { layer: msg.layer, reason: msg.reason });
        this.watch.reset(msg.track);
        console.info(`call: ${msg.track} on layer ${JSON.stringify(msg.layer)} (${msg.reason}; downlink estimate ${Math.round((msg.estimate_bps ?? 0) / 1000)} kbit/s)`);
        break;
      case 'speakers':
        this.speaking = new Set((msg.speakers ?? []).map((s) => s.participant));
        break;
      case 'error':
        this.setStatus(said('call.request-refused', { reason: msg.reason }));
        return;
      default:
        return;
    }
    this.render();
  }

  onLost(reason) {
    if (this.left) return;
    this.setPhase('reconnecting');
    this.setStatus(said('call.lost', { reason }));
    this.reconnect();
  }

  onBye(reason) {
    if (this.left) return;
    this.teardown();
    this.left = true;
    this.showForm(said('call.ended', { reason }), { ended: true });
  }

  // reconnect resumes the session on a new socket, retrying with backoff; a session the
  // server no longer has is replaced by a fresh join.
  async reconnect() {
    if (this.reconnecting) return;
    this.reconnecting = true;
    const backoff = new Backoff(500, 5000);
    let resume = this.session;
    try {
      while (!this.left) {
        try {
          await this.connect(resume);
          return;
        } catch (err) {
          if (this.left) return;
          if (err?.code === 'not_found' && resume) {
            this.resetMedia();
            resume = '';
            this.setStatus(said('call.rejoining'));
            continue;
          }
          if (err instanceof CallError && err.fatal) {
            this.failJoin(err);
            return;
          }
          this.setStatus(said('call.reconnecting', { reason: why(err) }));
          await new Promise((r) => setTimeout(r, backoff.next()));
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }

  onPCState({ pc, state }) {
    clearTimeout(this.disconnectedTimers.get(pc));
    if (state === 'failed') {
      this.restartMedia(`the ${pc} connection failed`);
    } else if (state === 'disconnected') {
      this.disconnectedTimers.set(pc, setTimeout(() => {
        const c = pc === 'publish' ? this.publisher : this.subscriber;
        if (c?.state === 'disconnected') this.restartMedia(`the ${pc} connection was lost`);
      }, DISCONNECTED_GRACE_MS));
    }
  }

  // restartMedia restarts ICE on both connections: the publish one by a new offer, the
  // subscribe one by asking the server for one. Without a working socket, reconnect does it.
  restartMedia(why, force = false) {
    if (this.left || !this.sig?.open) return;
    const now = performance.now();
    if (!force && now - this.lastRestart < RESTART_GAP_MS) return;
    this.lastRestart = now;
    console.info(`call: restarting ICE (${why})`);
    this.publisher?.restartIce().catch((err) => console.warn(`call: publish ICE restart: ${err?.message ?? err}`));
    this.subscriber?.restartIce();
  }

  async leave() {
    if (this.left) return;
    this.left = true;
    const sig = this.sig;
    this.sig = null;
    this.teardown();
    this.showForm(said('call.left'), { ended: true });
    await sig?.leave();
  }

  // Own media.

  toggleMic() {
    this.micMuted = !this.micMuted;
    if (this.local?.audio) this.local.audio.enabled = !this.micMuted;
    this.syncOwnMute(this.tracks.get(`${this.me?.id}/microphone`));
    this.render();
  }

  toggleCamera() {
    this.camMuted = !this.camMuted;
    if (this.local?.video) this.local.video.enabled = !this.camMuted;
    this.syncOwnMute(this.tracks.get(`${this.me?.id}/camera`));
    this.render();
  }

  // syncOwnMute tells the room when an own track's muted state differs from the wanted one
  // (also for a track published after the button was pressed).
  syncOwnMute(track) {
    if (!track || track.participant !== this.me?.id) return;
    const want = track.source === 'microphone' ? this.micMuted : track.source === 'camera' ? this.camMuted : track.muted;
    if (track.muted !== want) this.signal.send({ type: 'mute', track: track.id, muted: want });
  }

  async toggleScreen() {
    if (this.screen) {
      this.stopScreen();
      return;
    }
    if (!this.grants.publish || this.left) return;
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: true });
    } catch (err) {
      this.setStatus(said('call.screen.failed', { reason: why(err) }));
      return;
    }
    this.screen = stream;
    const v = stream.getVideoTracks()[0];
    if (v) {
      v.contentHint = 'detail';
      v.addEventListener('ended', () => this.stopScreen());
    }
    this.render();
    try {
      await this.ensurePublisher().publish(screenItems(stream));
    } catch (err) {
      this.setStatus(said('call.screen.send-failed', { reason: why(err) }));
      this.stopScreen();
    }
  }

  stopScreen() {
    const s = this.screen;
    if (!s) return;
    this.screen = null;
    for (const t of s.getTracks()) t.stop();
    for (const source of ['screen', 'screen_audio']) {
      if (this.publisher?.has(source)) this.publisher.unpublish(source).catch(() => {});
    }
    this.render();
  }

  // Field cameras.

  // pin shows field track id large next to the call (subscribed with pinned: true, so it is
  // the last to lose quality), replacing the one pinned before; '' unpins.
  pin(id) {
    const prev = this.pinned;
    if (prev === id) return;
    if (prev) {
      this.unsubscribe(prev);
      if (this.fieldAudio) this.unsubscribe(fieldAudioOf(prev));
    }
    this.pinned = id;
    this.fieldAudio = false;
    $('fields').open = false;
    this.stageNote('');
    if (id) this.subscribeField(id);
    this.render();
  }

  subscribeField(id) {
    this.signal.request({ type: 'subscribe', track: id, pinned: true }, 'subscribed').catch((err) => {
      if (this.pinned === id) this.stageNote(said('call.stage.cannot-show', { reason: why(err) }));
    });
    if (this.fieldAudio) this.signal.request({ type: 'subscribe', track: fieldAudioOf(id) }, 'subscribed').catch(() => {});
  }

  unsubscribe(id) {
    this.signal.request({ type: 'unsubscribe', track: id }, 'unsubscribed').catch(() => {});
  }

  toggleFieldAudio() {
    if (!this.pinned) return;
    const id = fieldAudioOf(this.pinned);
    this.fieldAudio = !this.fieldAudio;
    if (this.fieldAudio) this.signal.request({ type: 'subscribe', track: id }, 'subscribed').catch((err) => this.stageNote(said('call.stage.no-sound', { reason: why(err) })));
    else this.unsubscribe(id);
    this.render();
  }

  // stageNote shows msg (a Said, or '' for none) on the stage.
  stageNote(msg) {
    this.stageText = msg;
    this.renderStage();
  }

  // checkStalls subscribes again to videos that stopped decoding while the server says it
  // forwards them.
  async checkStalls() {
    const sub = this.subscriber;
    if (this.left || !sub || sub.state !== 'connected' || !this.sig?.open) return;
    const videos = new Map([...sub.tracks].filter(([, r]) => r.kind === 'video').map(([id, r]) => [id, r.receiver]));
    const stalled = await this.watch.check(videos, (id) => {
      const info = this.tracks.get(id);
      const layer = this.layers.get(id);
      return Boolean(info && !info.muted && layer && layer.layer !== 'off');
    });
    for (const id of stalled) {
      if (sub !== this.subscriber) return;
      console.warn(`call: no new picture of ${id} for ${this.watch.stallMs / 1000} s although the server forwards it; subscribing again`);
      this.signal.request({ type: 'unsubscribe', track: id }, 'unsubscribed')
        .then(() => this.signal.request({ type: 'subscribe', track: id, pinned: id === this.pinned }, 'subscribed'))
        .catch((err) => console.warn(`call: subscribing again to ${id}: ${err?.message ?? err}`));
    }
  }

  // Rendering.

  onRemoteTracks() {
    const remote = this.subscriber?.tracks ?? new Map();
    for (const id of this.sound.ids()) {
      if (!id.startsWith('local:') && !remote.has(id)) this.sound.detach(id);
    }
    for (const [id, r] of remote) {
      if (r.kind === 'audio') this.sound.attach(id, r.track);
    }
    this.render();
  }

  render() {
    if (!this.me) return;
    const wanted = new Map();
    wanted.set(this.me.id, { participant: this.me.id, self: true });
    if (this.screen) wanted.set(`${this.me.id}/screen`, { participant: this.me.id, self: true, screen: true });
    for (const id of this.participants.keys()) {
      wanted.set(id, { participant: id });
      if (this.tracks.has(`${id}/screen`)) wanted.set(`${id}/screen`, { participant: id, screen: true });
    }
    for (const [key, tile] of this.tiles) {
      if (!wanted.has(key)) {
        tile.remove();
        this.tiles.delete(key);
      }
    }
    const grid = $('tiles');
    let changed = false;
    for (const [key, w] of wanted) {
      let tile = this.tiles.get(key);
      if (!tile) {
        tile = new Tile({ key, ...w });
        this.tiles.set(key, tile);
        grid.append(tile.root);
        changed = true;
      }
      this.renderTile(tile);
    }
    if (changed || grid.children.length !== this.lastCount) this.layout();
    this.lastCount = grid.children.length;
    const n = this.participants.size + 1;
    setText($('summary'), t('call.count', { n }));
    this.renderButtons();
    this.renderFields();
    this.renderStage();
  }

  renderTile(tile) {
    const pid = tile.participant;
    const self = tile.self;
    const info = self ? this.me : this.participants.get(pid);
    let name = self ? t('call.tile.you', { name: info?.name ?? pid }) : info?.name ?? pid;
    if (tile.screen) name = t('call.tile.screen', { name });
    const videoID = `${pid}/${tile.screen ? 'screen' : 'camera'}`;
    const cam = this.tracks.get(videoID);
    const mic = this.tracks.get(`${pid}/microphone`);
    let track = null;
    let source = videoID;
    if (self) {
      track = tile.screen ? this.screen?.getVideoTracks()[0] ?? null : this.local?.video ?? null;
      source = `local:${tile.screen ? 'screen' : 'camera'}`;
    } else {
      track = this.subscriber?.tracks.get(videoID)?.track ?? null;
    }
    tile.setVideo(track, source);
    const layer = self ? undefined : this.layers.get(videoID);
    tile.update({
      name,
      role: tile.screen ? '' : roleName(info?.role),
      micMuted: tile.screen ? undefined : self ? (this.local?.audio ? this.micMuted : null) : mic ? mic.muted : null,
      camMuted: self ? !tile.screen && this.camMuted : cam?.muted ?? false,
      hasVideo: self ? Boolean(track) : Boolean(cam),
      layer: layer?.layer,
      layerReason: layer?.reason,
      speaking: !tile.screen && this.speaking.has(pid),
    });
  }

  renderButtons() {
    const mic = $('mic');
    setText(mic, t(this.micMuted ? 'call.mic.unmute' : 'call.mic.mute'));
    mic.setAttribute('aria-pressed', String(this.micMuted));
    mic.disabled = !this.local?.audio;
    const cam = $('camera');
    setText(cam, t(this.camMuted ? 'call.camera.start' : 'call.camera.stop'));
    cam.setAttribute('aria-pressed', String(this.camMuted));
    cam.disabled = !this.local?.video;
    const screen = $('screen');
    setText(screen, t(this.screen ? 'call.screen.stop' : 'call.screen.share'));
    screen.setAttribute('aria-pressed', String(Boolean(this.screen)));
  }

  // renderFields lists the field cameras the token may view, each with a pin button.
  renderFields() {
    const list = $('fields-list');
    const cams = [...this.tracks.values()].filter((t) => t.source === 'field' && t.kind === 'video').sort((a, b) => (a.id < b.id ? -1 : 1));
    setText($('fields-count'), String(cams.length));
    $('fields-empty').hidden = cams.length > 0;
    const ids = cams.map((t) => t.id);
    const have = [...list.querySelectorAll('button[data-pin]')].map((b) => b.dataset.pin);
    if (ids.join('\n') !== have.join('\n')) {
      list.replaceChildren(...ids.map((id) => {
        const li = el('li');
        const b = el('button', 'pin');
        b.type = 'button';
        b.dataset.pin = id;
        li.append(b);
        return li;
      }));
    }
    for (const b of list.querySelectorAll('button[data-pin]')) {
      const on = b.dataset.pin === this.pinned;
      setText(b, t(on ? 'call.fields.unpin' : 'call.fields.pin', { name: fieldName(b.dataset.pin) }));
      b.setAttribute('aria-pressed', String(on));
    }
  }

  renderStage() {
    const stage = $('stage');
    const id = this.pinned;
    stage.hidden = !id;
    $('call').classList.toggle('has-stage', Boolean(id));
    const video = $('stage-video');
    if (!id) {
      if (video.srcObject) video.srcObject = null;
      delete video.dataset.source;
      return;
    }
    video.dataset.source = id;
    const track = this.subscriber?.tracks.get(id)?.track ?? null;
    if ((video.srcObject?.getTracks()[0] ?? null) !== track) {
      video.srcObject = track ? new MediaStream([track]) : null;
      if (track) video.play().catch(() => {});
    }
    const listed = this.tracks.has(id);
    const layer = this.layers.get(id);
    const label = layerLabel(layer?.layer, layer?.reason);
    setText($('stage-name'), fieldName(id));
    setText($('stage-layer'), label.text);
    let note = String(this.stageText ?? '');
    if (!note && !listed) note = t('call.stage.offline');
    if (!note && label.paused) note = t('call.stage.paused');
    if (!note && !track) note = t('call.stage.connecting');
    setText($('stage-reason'), note);
    $('stage-placeholder').hidden = note === '';
    stage.dataset.state = note === '' ? 'video' : 'placeholder';
    const hasAudio = this.tracks.has(fieldAudioOf(id));
    $('stage-sound').hidden = !hasAudio;
    setText($('stage-sound'), t(this.fieldAudio ? 'call.stage.sound-off' : 'call.stage.sound-on'));
    $('stage-sound').setAttribute('aria-pressed', String(this.fieldAudio));
  }

  // layout sizes the 16:9 tiles to the column count that shows them largest in the space
  // they have (beside the stage when a field camera is pinned), every row the tiles' height
  // so none overlaps another. On a phone call.css makes one full-width column that scrolls.
  layout() {
    const grid = $('tiles');
    const n = grid.children.length;
    if (n === 0 || PHONE.matches) return;
    const gap = 6;
    const w = grid.clientWidth || window.innerWidth;
    const h = grid.clientHeight || window.innerHeight;
    let cols = 1;
    let best = 0;
    for (let c = 1; c <= n; c++) {
      const rows = Math.ceil(n / c);
      const tw = Math.min((w - gap * (c - 1)) / c, ((h - gap * (rows - 1)) / rows) * (16 / 9));
      if (tw > best) {
        best = tw;
        cols = c;
      }
    }
    const tw = Math.max(120, Math.floor(best));
    const set = (k, v) => {
      if (grid.style.getPropertyValue(k) !== v) grid.style.setProperty(k, v);
    };
    set('--cols', String(cols));
    set('--tile-w', `${tw}px`);
    set('--tile-h', `${Math.floor((tw * 9) / 16)}px`);
  }

  meters() {
    if (!this.me) return;
    for (const tile of this.tiles.values()) {
      if (tile.screen) continue;
      const id = tile.self ? 'local:microphone' : `${tile.participant}/microphone`;
      tile.setLevel(this.sound.level(id));
    }
  }
}

function fieldAudioOf(videoID) {
  return videoID.replace(/\/video$/, '/audio');
}

// The call is reachable from the browser's developer console, for diagnosis on site.
window.fieldvideoCall = new Call();
mountNav('call');
window.fieldvideoCall.init();
