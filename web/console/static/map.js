// The map page: every source that has a position, as a marker (a camera or a report, live or
// offline), kept up to date from GET /v1/sources every POLL_MS. Clicking a marker (or a source
// in the list) opens a panel with its live picture (WHEP, as the wall plays it), what is known
// of it, and a link to the review page at that moment.
//
// The map's background is the tile server the SFU is configured with (GET /v1/map), else a
// plain background with a latitude/longitude grid: the page then needs no other host, and the
// markers are placed and fitted all the same. The page's Content-Security-Policy allows images
// from the tile server's origin only (the SFU adds it when it serves map.html).
//
// The map fits every placed source until the user moves it; "Show all" fits them again.
// #map carries data-lat, data-lon and data-zoom (its centre and zoom) and data-background
// (tiles or grid), and each marker data-source, for the tests.

import { fetchSources, forgetToken, authHeaders, reasonOf, request, saveToken, takeToken } from './api.js';
import { lang, register, t } from './i18n.js';
import { mountNav, pageTitle } from './nav.js';
import { Backoff, WHEPSession } from './whep.js';
import { gridLayer } from './map-grid.js';

const POLL_MS = 2000;
// A live source's review link starts REVIEW_LEAD_MS before the moment it was opened, and its
// window spans REVIEW_WINDOW_MS each side.
const REVIEW_LEAD_MS = 10000;
const REVIEW_WINDOW_MS = 10 * 60 * 1000;
// Accuracy circles larger than this (metres) would hide the map: not drawn.
const MAX_CIRCLE_M = 20000;
const FIT_MAX_ZOOM = 17;
const SINGLE_ZOOM = 16;

register({
  en: {
    'map.title': 'Map',
    'map.region': 'Map of the sources',
    'map.side': 'Sources and the selected source',
    'map.summary': '{placed} of {n} sources on the map · {live} live',
    'map.fit': 'Show all',
    'map.fit.title': 'Zoom to show every source',
    'map.list': 'Sources',
    'map.list.empty': 'No source can be shown with this token yet.',
    'map.list.item': '{kind} · {state}',
    'map.list.no-position': 'no position',
    'map.kind.camera': 'camera',
    'map.kind.report': 'report',
    'map.kind.source': 'source',
    'map.kind.other': '{kind}',
    'map.state.live': 'live',
    'map.state.offline': 'offline',
    'map.marker': '{name}: {kind}, {state}',
    'map.panel.close': 'Close the panel',
    'map.panel.connecting': 'Connecting…',
    'map.panel.offline': 'Offline since {time}. The last known position is shown.',
    'map.panel.retry': 'No picture: {reason}. Trying again…',
    'map.panel.live': 'Live',
    'map.fact.kind': 'Kind',
    'map.fact.reporter': 'Reported by',
    'map.fact.position': 'Position',
    'map.fact.position.value': '{lat}, {lon} ±{acc} m',
    'map.fact.heading': 'Heading',
    'map.fact.at': 'Position from',
    'map.fact.note': 'Note',
    'map.fact.incident': 'Incident',
    'map.sound.on': 'Sound on',
    'map.sound.off': 'Sound off',
    'map.review': 'Review from {time}',
    'map.stale': 'The source list is not up to date: {reason}',
    'map.tiles.failed': 'Map tiles cannot be loaded from {host}; the grid is shown instead.',
    'map.no-leaflet': 'The map library did not load: ask the administrator to check the files the server ships with it.',
    'map.token.heading': 'Access token needed',
    'map.token.label': 'Paste the token you were given:',
    'map.token.submit': 'Open the map',
    'map.token.sso': 'Sign in with single sign-on',
    'map.token.needed': 'The map needs an access token: sign in, open the link you were given, or paste the token below.',
    'map.token.refused': 'The server refused the token: {reason}',
    'map.token.empty': 'Paste a token first: the field is empty.',
  },
  'zh-TW': {
    'map.title': '地圖',
    'map.region': '各來源的地圖',
    'map.side': '來源清單與選取的來源',
    'map.summary': '{n} 個來源中有 {placed} 個在地圖上 · {live} 個直播中',
    'map.fit': '顯示全部',
    'map.fit.title': '縮放地圖以顯示所有來源',
    'map.list': '來源',
    'map.list.empty': '此權杖目前沒有可顯示的來源。',
    'map.list.item': '{kind} · {state}',
    'map.list.no-position': '沒有位置',
    'map.kind.camera': '攝影機',
    'map.kind.report': '現場回報',
    'map.kind.source': '來源',
    'map.kind.other': '{kind}',
    'map.state.live': '直播中',
    'map.state.offline': '離線',
    'map.marker': '{name}：{kind}，{state}',
    'map.panel.close': '關閉面板',
    'map.panel.connecting': '連線中…',
    'map.panel.offline': '自 {time} 起離線。顯示最後已知的位置。',
    'map.panel.retry': '沒有畫面：{reason}。正在重試…',
    'map.panel.live': '直播中',
    'map.fact.kind': '類型',
    'map.fact.reporter': '回報人',
    'map.fact.position': '位置',
    'map.fact.position.value': '{lat}, {lon} ±{acc} 公尺',
    'map.fact.heading': '方向',
    'map.fact.at': '位置時間',
    'map.fact.note': '備註',
    'map.fact.incident': '事件',
    'map.sound.on': '開啟聲音',
    'map.sound.off': '關閉聲音',
    'map.review': '從 {time} 開始回放',
    'map.stale': '來源清單不是最新的：{reason}',
    'map.tiles.failed': '無法從 {host} 載入地圖圖磚；改為顯示經緯度格線。',
    'map.no-leaflet': '地圖程式庫未載入：請系統管理員檢查伺服器隨附的程式庫檔案。',
    'map.token.heading': '需要存取權杖',
    'map.token.label': '貼上您取得的權杖：',
    'map.token.submit': '開啟地圖',
    'map.token.sso': '使用單一登入',
    'map.token.needed': '地圖需要存取權杖：請登入、開啟您取得的連結，或在下方貼上權杖。',
    'map.token.refused': '伺服器拒絕了此權杖：{reason}',
    'map.token.empty': '請先貼上權杖：欄位是空的。',
  },
});

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';

// withCameras gives sources without a position of their own the position of the pulled camera
// of that name, and adds the cameras with a position that are not sources now (disabled, or
// not live yet) as offline camera markers.
function withCameras(sources, cameras) {
  const byName = new Map(cameras.filter((c) => c && typeof c.name === 'string' && c.position).map((c) => [c.name, c]));
  const fixed = (c) => ({ lat: Number(c.position.lat), lon: Number(c.position.lon), accuracy_m: 0 });
  const out = sources.map((s) => {
    const c = byName.get(s.name);
    byName.delete(s.name);
    if (!c || s.position) return s;
    return { ...s, position: fixed(c), kind: s.kind || 'camera', note: s.note || c.label || '' };
  });
  for (const c of byName.values()) {
    out.push({ name: c.name, live: false, since: c.since ?? '', tracks: [], hasAudio: false, viewers: 0, bitrate: 0, publisher: '',
      reporter: '', kind: 'camera', incident: '', note: c.label ?? '', position: fixed(c) });
  }
  return out;
}

// positionOf returns a source's position as numbers ({lat, lon, accuracy, heading (NaN when
// not known), at (Unix ms)}), or null when it has no valid one.
function positionOf(src) {
  const p = src.position;
  if (!p || typeof p.lat !== 'number' || typeof p.lon !== 'number') return null;
  if (!(p.lat >= -90 && p.lat <= 90) || !(p.lon >= -180 && p.lon <= 180)) return null;
  return {
    lat: p.lat,
    lon: p.lon,
    accuracy: Math.max(0, Number(p.accuracy_m) || 0),
    heading: typeof p.heading === 'number' ? p.heading : NaN,
    at: Date.parse(p.at) || 0,
  };
}

function kindClass(kind) {
  return kind === 'camera' ? 'camera' : 'report';
}

function kindLabel(kind) {
  if (kind === 'camera' || kind === 'report') return t(`map.kind.${kind}`);
  return kind ? t('map.kind.other', { kind }) : t('map.kind.source');
}

function timeLabel(ms) {
  if (!ms) return '—';
  return new Date(ms).toLocaleTimeString(lang(), { hour12: false });
}

// reviewLink is the review page's address for source at instant ms.
function reviewLink(src, ms) {
  const q = new URLSearchParams();
  if (src.incident) q.set('incident', src.incident);
  q.set('sources', src.name);
  q.set('start', String(Math.round(ms - REVIEW_WINDOW_MS)));
  q.set('end', String(Math.round(ms + REVIEW_WINDOW_MS)));
  q.set('t', String(Math.round(ms)));
  return `review.html?${q}`;
}

// markerFace draws a marker's face: a camera or a person with a phone, and the heading arrow.
function markerFace(kind) {
  const face = document.createElement('div');
  face.className = 'fv-marker-face';
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', kind === 'camera'
    ? 'M3 7h11a2 2 0 0 1 2 2v1.5l4-2.5v8l-4-2.5V15a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2V9a2 2 0 0 1 2-2z'
    : 'M12 2a4 4 0 1 1 0 8a4 4 0 0 1 0-8zM4 21c0-4.4 3.6-8 8-8s8 3.6 8 8z');
  svg.append(path);
  face.append(svg);
  return face;
}

class SourceMarker {
  constructor(page, src, pos) {
    this.page = page;
    this.name = src.name;
    this.kind = '';
    this.arrow = document.createElement('div');
    this.arrow.className = 'fv-marker-heading';
    this.label = document.createElement('span');
    this.label.className = 'fv-marker-label';
    this.label.textContent = src.name;
    this.body = document.createElement('div');
    this.body.className = 'fv-marker';
    const icon = window.L.divIcon({ html: this.body, className: 'fv-marker-icon', iconSize: [36, 36], iconAnchor: [18, 18] });
    this.marker = window.L.marker([pos.lat, pos.lon], { icon, keyboard: true, title: src.name, riseOnHover: true });
    this.marker.on('click', () => page.select(this.name, true));
    this.marker.addTo(page.map);
    this.circle = null;
    this.update(src, pos);
  }

  update(src, pos) {
    const kind = kindClass(src.kind);
    if (kind !== this.kind) {
      this.kind = kind;
      this.body.replaceChildren(markerFace(kind), this.arrow, this.label);
    }
    this.body.className = `fv-marker fv-${kind} ${src.live ? 'is-live' : 'is-offline'}${this.page.selected === src.name ? ' is-selected' : ''}`;
    const ll = this.marker.getLatLng();
    if (ll.lat !== pos.lat || ll.lng !== pos.lon) this.marker.setLatLng([pos.lat, pos.lon]);
    this.arrow.hidden = Number.isNaN(pos.heading);
    if (!this.arrow.hidden) this.arrow.style.transform = `rotate(${pos.heading}deg)`;
    const el = this.marker.getElement();
    if (el) {
      el.dataset.source = src.name;
      el.dataset.state = src.live ? 'live' : 'offline';
      el.dataset.kind = kind;
      el.setAttribute('aria-label', t('map.marker', { name: src.name, kind: kindLabel(src.kind), state: t(`map.state.${src.live ? 'live' : 'offline'}`) }));
    }
    const showCircle = pos.accuracy > 0 && pos.accuracy <= MAX_CIRCLE_M;
    if (showCircle && !this.circle) {
      this.circle = window.L.circle([pos.lat, pos.lon], { radius: pos.accuracy, interactive: false, className: `fv-accuracy fv-accuracy-${kind}` }).addTo(this.page.map);
    } else if (!showCircle && this.circle) {
      this.circle.remove();
      this.circle = null;
    }
    if (this.circle) {
      this.circle.setLatLng([pos.lat, pos.lon]);
      this.circle.setRadius(pos.accuracy);
    }
  }

  remove() {
    this.marker.remove();
    this.circle?.remove();
  }
}

// Panel shows the selected source: its live picture and what is known of it.
class Panel {
  constructor(page) {
    this.page = page;
    this.name = '';
    this.src = null;
    this.session = null;
    this.backoff = new Backoff();
    this.retryTimer = 0;
    this.openedAt = 0;
    this.problem = '';
    this.sound = false;
    this.video = $('panel-video');
    $('panel-close').addEventListener('click', () => page.select(''));
    $('panel-sound').addEventListener('click', () => {
      this.sound = !this.sound;
      this.video.muted = !this.sound;
      this.render();
    });
  }

  open(name) {
    if (name === this.name) return;
    this.close();
    this.name = name;
    this.openedAt = Date.now();
    this.video.dataset.source = name;
    $('panel').hidden = false;
    this.backoff.reset();
  }

  close() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    this.session?.close();
    this.session = null;
    this.video.srcObject = null;
    delete this.video.dataset.source;
    this.name = '';
    this.src = null;
    this.problem = '';
    $('panel').hidden = true;
  }

  update(src) {
    if (!this.name) return;
    this.src = src;
    if (src?.live && !this.session && !this.retryTimer) this.connect();
    this.render();
  }

  async connect() {
    const name = this.name;
    const s = new WHEPSession({ endpoint: `/${encodeURIComponent(name)}/whep`, token: this.page.token });
    this.session = s;
    s.addEventListener('ended', (ev) => this.retry(s, ev.detail.reason));
    this.video.srcObject = s.stream;
    this.video.muted = !this.sound;
    try {
      await s.connect();
      if (this.session !== s) return;
      this.problem = '';
      this.video.play?.().catch(() => {});
    } catch (err) {
      this.retry(s, err.message, err.retryable === false);
    }
    this.render();
  }

  retry(s, reason, giveUp = false) {
    if (this.session !== s) return;
    s.close();
    this.session = null;
    this.problem = reason;
    this.render();
    if (giveUp) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = 0;
      if (this.src?.live && this.name) this.connect();
    }, this.backoff.next());
  }

  render() {
    const src = this.src;
    if (!this.name) return;
    $('panel-name').textContent = this.name;
    const pos = src ? positionOf(src) : null;
    let state = t('map.panel.connecting');
    if (src && !src.live) state = t('map.panel.offline', { time: timeLabel(Date.parse(src.since) || pos?.at) });
    else if (this.problem) state = t('map.panel.retry', { reason: this.problem });
    else if (this.session?.connectionState === 'connected') state = t('map.panel.live');
    $('panel-state').textContent = state;
    $('panel-placeholder').textContent = src && !src.live ? t('map.state.offline') : '';
    $('panel-placeholder').hidden = !(src && !src.live);
    const facts = [];
    if (src) {
      facts.push(['map.fact.kind', kindLabel(src.kind)]);
      if (src.reporter) facts.push(['map.fact.reporter', src.reporter]);
      if (src.incident) facts.push(['map.fact.incident', src.incident]);
      if (pos) {
        facts.push(['map.fact.position', t('map.fact.position.value', { lat: pos.lat.toFixed(5), lon: pos.lon.toFixed(5), acc: Math.round(pos.accuracy) })]);
        if (!Number.isNaN(pos.heading)) facts.push(['map.fact.heading', `${Math.round(pos.heading)}°`]);
        facts.push(['map.fact.at', timeLabel(pos.at)]);
      }
      if (src.note) facts.push(['map.fact.note', src.note]);
    }
    const dl = $('panel-facts');
    dl.replaceChildren(...facts.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = t(k);
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }));
    const sound = $('panel-sound');
    sound.hidden = !src?.hasAudio || !src?.live;
    sound.textContent = t(this.sound ? 'map.sound.off' : 'map.sound.on');
    sound.setAttribute('aria-pressed', String(this.sound));
    const at = src?.live ? this.openedAt - REVIEW_LEAD_MS : pos?.at || Date.parse(src?.since) || this.openedAt;
    const review = $('panel-review');
    review.href = src ? reviewLink(src, at) : 'review.html';
    review.textContent = t('map.review', { time: timeLabel(at) });
  }
}

class MapPage {
  constructor() {
    this.token = '';
    this.map = null;
    this.markers = new Map(); // source → SourceMarker
    this.sources = [];
    this.selected = '';
    this.userMoved = false;
    this.fitting = false;
    this.placedKey = '';
    this.pollTimer = 0;
    this.background = null;
  }

  async init() {
    mountNav('map');
    pageTitle('map.title');
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const tok = $('token-input').value.trim();
      if (!tok) {
        $('token-reason').textContent = t('map.token.empty');
        return;
      }
      saveToken(tok);
      $('token-input').value = '';
      this.start(tok);
    });
    $('fit').addEventListener('click', () => {
      this.userMoved = false;
      this.fit(true);
    });
    window.addEventListener('langchange', () => this.render());
    if (!window.L) {
      this.setStatus(t('map.no-leaflet'));
      return;
    }
    this.panel = new Panel(this);
    const tok = takeToken();
    if (tok) this.start(tok);
    else this.askToken(t('map.token.needed'));
  }

  askToken(reason) {
    clearTimeout(this.pollTimer);
    $('token-panel').hidden = false;
    $('map-area').hidden = true;
    $('side').hidden = true;
    $('token-reason').textContent = reason;
    $('token-input').focus();
  }

  async start(tok) {
    this.token = tok;
    $('token-panel').hidden = true;
    $('map-area').hidden = false;
    $('side').hidden = false;
    if (!this.map) await this.makeMap();
    this.poll();
  }

  async makeMap() {
    const L = window.L;
    const el = $('map');
    const map = L.map(el, { zoomControl: true, attributionControl: false, minZoom: 2, maxZoom: 19, worldCopyJump: true });
    this.map = map;
    map.setView([20, 0], 2);
    const settings = await this.settings();
    if (settings.tiles) {
      el.dataset.background = 'tiles';
      const layer = L.tileLayer(settings.tiles, { maxZoom: 19, attribution: escapeHTML(settings.attribution ?? '') });
      let warned = false;
      layer.on('tileerror', () => {
        if (warned) return;
        warned = true;
        let host = settings.tiles;
        try {
          host = new URL(settings.tiles.replace(/\{[a-z]\}/g, '0'), window.location.href).host;
        } catch {
          // the template as it is names the server well enough.
        }
        this.setStatus(t('map.tiles.failed', { host }));
        el.dataset.background = 'grid';
        this.background = gridLayer().addTo(map);
      });
      layer.addTo(map);
      if (settings.attribution) L.control.attribution({ prefix: false }).addTo(map);
    } else {
      el.dataset.background = 'grid';
      this.background = gridLayer().addTo(map);
    }
    // a drag or a zoom the page did not make is the user's: the map stops fitting by itself.
    map.on('dragstart zoomstart', () => {
      if (!this.fitting) this.userMoved = true;
    });
    map.on('moveend zoomend', () => this.noteView());
    this.noteView();
  }

  async settings() {
    try {
      const res = await request('/v1/map', { headers: authHeaders(this.token), cache: 'no-store' });
      if (!res.ok) throw new Error(await reasonOf(res));
      return await res.json();
    } catch (err) {
      console.warn(`map: no map settings (${err?.message ?? err}); drawing the grid`);
      return {};
    }
  }

  noteView() {
    const c = this.map.getCenter();
    const el = $('map');
    el.dataset.lat = String(c.lat);
    el.dataset.lon = String(c.lng);
    el.dataset.zoom = String(this.map.getZoom());
  }

  setStatus(text) {
    $('status').textContent = text;
    $('status').hidden = !text;
  }

  // cameras returns the pulled cameras ingest lists (GET /v1/cameras through the SFU), for
  // their fixed positions; [] when the token may not read them or no ingest is configured,
  // which is then not asked again for a minute.
  async cameras() {
    if (performance.now() < (this.camerasAfter ?? 0)) return this.cameraList ?? [];
    try {
      const res = await request('/v1/cameras', { headers: authHeaders(this.token), cache: 'no-store' });
      if (!res.ok) throw new Error(await reasonOf(res));
      const body = await res.json();
      this.cameraList = Array.isArray(body?.cameras) ? body.cameras : [];
      this.camerasAfter = 0;
    } catch {
      this.cameraList = [];
      this.camerasAfter = performance.now() + 60000;
    }
    return this.cameraList;
  }

  async poll() {
    clearTimeout(this.pollTimer);
    try {
      this.sources = withCameras(await fetchSources(this.token), await this.cameras());
      this.setStatus('');
      this.render();
    } catch (err) {
      if (err?.unauthorized) {
        forgetToken();
        this.askToken(t('map.token.refused', { reason: err.message }));
        return;
      }
      this.setStatus(t('map.stale', { reason: err?.message ?? `${err}` }));
    }
    this.pollTimer = setTimeout(() => this.poll(), POLL_MS);
  }

  render() {
    if (!this.map) return;
    const seen = new Set();
    let placed = 0;
    for (const src of this.sources) {
      const pos = positionOf(src);
      if (!pos) continue;
      placed++;
      seen.add(src.name);
      const m = this.markers.get(src.name);
      if (m) m.update(src, pos);
      else this.markers.set(src.name, new SourceMarker(this, src, pos));
    }
    for (const [name, m] of this.markers) {
      if (!seen.has(name)) {
        m.remove();
        this.markers.delete(name);
      }
    }
    const live = this.sources.filter((s) => s.live).length;
    $('summary').textContent = t('map.summary', { placed, n: this.sources.length, live });
    this.renderList();
    const key = [...seen].sort().join('\n');
    if (key !== this.placedKey) {
      this.placedKey = key;
      this.fit(false);
    }
    if (this.selected) this.panel.update(this.sources.find((s) => s.name === this.selected) ?? null);
  }

  renderList() {
    const list = $('list');
    const items = this.sources.map((src) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'map-list-item';
      b.dataset.source = src.name;
      b.dataset.state = src.live ? 'live' : 'offline';
      if (src.name === this.selected) b.setAttribute('aria-current', 'true');
      const name = document.createElement('span');
      name.className = 'map-list-name';
      name.textContent = src.name;
      const what = document.createElement('span');
      what.className = 'map-list-what';
      const state = t(`map.state.${src.live ? 'live' : 'offline'}`);
      what.textContent = positionOf(src) ? t('map.list.item', { kind: kindLabel(src.kind), state }) : `${t('map.list.item', { kind: kindLabel(src.kind), state })} · ${t('map.list.no-position')}`;
      b.append(name, what);
      b.addEventListener('click', () => this.select(src.name, true));
      li.append(b);
      return li;
    });
    const focused = document.activeElement?.closest?.('.map-list-item')?.dataset.source;
    list.replaceChildren(...items);
    if (focused) list.querySelector(`[data-source="${CSS.escape(focused)}"]`)?.focus();
    $('list-empty').hidden = this.sources.length > 0;
  }

  // select opens the panel of name ('' closes it); pan moves the map to its marker.
  select(name, pan = false) {
    this.selected = name;
    if (!name) this.panel.close();
    else this.panel.open(name);
    for (const [n, m] of this.markers) m.body.classList.toggle('is-selected', n === name);
    const src = this.sources.find((s) => s.name === name) ?? null;
    const pos = src ? positionOf(src) : null;
    if (pan && pos && !this.map.getBounds().pad(-0.1).contains([pos.lat, pos.lon])) {
      this.fitting = true;
      this.map.panTo([pos.lat, pos.lon], { animate: false });
      this.fitting = false;
    }
    this.fitting = true;
    this.map.invalidateSize();
    this.fitting = false;
    this.renderList();
    if (name) this.panel.update(src);
  }

  // fit shows every placed source, unless the user moved the map (force: even then).
  fit(force) {
    if ((this.userMoved && !force) || this.markers.size === 0) return;
    const lls = [...this.markers.values()].map((m) => m.marker.getLatLng());
    this.fitting = true;
    if (lls.length === 1) this.map.setView(lls[0], SINGLE_ZOOM, { animate: false });
    else this.map.fitBounds(window.L.latLngBounds(lls), { padding: [48, 48], maxZoom: FIT_MAX_ZOOM, animate: false });
    this.fitting = false;
    this.noteView();
  }
}

function escapeHTML(s) {
  const d = document.createElement('div');
  d.textContent = s;
  return d.innerHTML;
}

new MapPage().init();
