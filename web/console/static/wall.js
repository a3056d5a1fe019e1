// The EOC wall: one tile per source the token may view, each playing over WHEP and
// recovering by itself when the source, the network or the server comes and goes.
//
// Every POLL_MS the wall reads /v1/sources and adds, updates or removes tiles (wall-tile.js:
// each tile runs its own session loop with backoff). Tiles never move in the page (moving a
// playing video pauses it): layouts (wall-layout.js) only change the grid's columns, which
// tiles a page shows and where the focused tile is placed.
//
// A tile receives its source's audio only while its sound is on; turning it on or off starts
// a new session. Muted tiles need no audio, and receiving it would cost more than decoding
// time: Chromium delays a tile's video to keep it in step with its audio (lip sync), and on a
// busy machine the audio buffer, and with it the picture's delay, grows by seconds.
//
// Each tile shows how well its source is aligned on the common time baseline, and measures
// its capture-to-display latency (timeline.js). The "Synced" switch in the header makes all
// tiles show the same capture instant; the header shows the skew left between them and names
// the tile that is behind.
//
// Kiosk mode (the Kiosk button, or #kiosk at the end of the address) hides the header and the cursor
// and runs full screen where the browser allows; nothing in it needs a person: sessions,
// the source list and the layout recover by themselves after a network or server loss.

import { fetchSources, forgetToken, saveToken, takeToken } from './api.js';
import { register, t, translate } from './i18n.js';
import { mountNav, pageTitle } from './nav.js';
import { PlayoutSync } from './timeline.js';
import { LAYOUTS, NARROW_PX, perPage, plan } from './wall-layout.js';
import { Tile } from './wall-tile.js';

const POLL_MS = 2000;
const TICK_MS = 500;
// How often synced mode re-measures and re-balances the tiles.
const SYNC_MS = 1000;
// A skew above BEHIND_MS names the tile that is behind.
const BEHIND_MS = 100;
const SYNCED_KEY = 'fieldvideo.synced';
const LAYOUT_KEY = 'fieldvideo.wall.layout';
const FOCUS_KEY = 'fieldvideo.wall.focus';

register({
  en: {
    'wall.title': 'EOC wall',
    'wall.summary': '{n} sources · {live} live',
    'wall.summary.one': '1 source · {live} live',
    'wall.loading': 'Loading the source list…',
    'wall.stale-list': 'The source list is not up to date: {reason}',
    'wall.synced.on': 'Synced: on',
    'wall.synced.off': 'Synced: off',
    'wall.synced.on.title': 'Every tile shows the same capture instant; faster tiles are held back. Click to play each tile as fast as it can.',
    'wall.synced.off.title': 'Each tile plays as fast as it can. Click to make every tile show the same capture instant.',
    'wall.in-sync': 'in sync within {ms} ms',
    'wall.apart': '{ms} ms apart',
    'wall.behind': '{name} is {ms} ms behind',
    'wall.in-sync-behind': 'in sync within {ms} ms · {name} behind',
    'wall.skew.title': 'The {n} playing tiles show capture instants up to {ms} ms apart; {name} shows the oldest.',
    'wall.no-capture': 'no capture times',
    'wall.no-capture.title': 'This browser does not report the capture time of the frames it shows, so the tiles cannot be synced.',
    'wall.layout': 'Layout',
    'wall.layout.auto': 'All',
    'wall.layout.1': '1',
    'wall.layout.2x2': '2×2',
    'wall.layout.3x3': '3×3',
    'wall.layout.4x4': '4×4',
    'wall.layout.focus': 'Focus + strip',
    'wall.page': 'Page {page} of {pages}',
    'wall.page.prev': 'Previous page',
    'wall.page.next': 'Next page',
    'wall.kiosk': 'Kiosk',
    'wall.kiosk.title': 'Full screen without the header; Esc leaves',
    'wall.kiosk.exit': 'Leave kiosk mode',
    'wall.change-token': 'Change token',
    'wall.token.heading': 'Access token needed',
    'wall.token.label': 'Paste the wall token you were given:',
    'wall.token.submit': 'Open the wall',
    'wall.token.sso': 'Sign in with single sign-on',
    'wall.token.empty': 'Paste a token first: the field is empty.',
    'wall.token.new': 'Paste the new token.',
    'wall.token.needed': 'This wall needs an access token: sign in, open the link you were given (it ends in ?token=…), or paste the token below.',
    'wall.token.refused': 'The server refused the token: {reason}. Sign in again or paste a valid token.',
    'wall.empty': 'No camera can be shown with this token yet. Sources appear here as soon as they are published.',
    'wall.noscript': 'The wall needs JavaScript: enable it for this site.',
  },
  'zh-TW': {
    'wall.title': '應變中心電視牆',
    'wall.summary': '{n} 個來源 · {live} 個直播中',
    'wall.summary.one': '1 個來源 · {live} 個直播中',
    'wall.loading': '正在載入來源清單…',
    'wall.stale-list': '來源清單不是最新的：{reason}',
    'wall.synced.on': '同步：開',
    'wall.synced.off': '同步：關',
    'wall.synced.on.title': '每個畫面顯示同一擷取時刻；較快的畫面會被延後。點一下讓每個畫面盡快播放。',
    'wall.synced.off.title': '每個畫面盡快播放。點一下讓每個畫面顯示同一擷取時刻。',
    'wall.in-sync': '同步誤差 {ms} 毫秒內',
    'wall.apart': '相差 {ms} 毫秒',
    'wall.behind': '{name} 落後 {ms} 毫秒',
    'wall.in-sync-behind': '同步誤差 {ms} 毫秒內 · {name} 落後',
    'wall.skew.title': '{n} 個播放中的畫面，擷取時刻最多相差 {ms} 毫秒；{name} 顯示的最舊。',
    'wall.no-capture': '沒有擷取時間',
    'wall.no-capture.title': '此瀏覽器不提供畫面的擷取時間，因此無法同步各畫面。',
    'wall.layout': '版面',
    'wall.layout.auto': '全部',
    'wall.layout.1': '1',
    'wall.layout.2x2': '2×2',
    'wall.layout.3x3': '3×3',
    'wall.layout.4x4': '4×4',
    'wall.layout.focus': '焦點＋縮圖列',
    'wall.page': '第 {page} 頁，共 {pages} 頁',
    'wall.page.prev': '上一頁',
    'wall.page.next': '下一頁',
    'wall.kiosk': '展示模式',
    'wall.kiosk.title': '全螢幕且隱藏標題列；按 Esc 離開',
    'wall.kiosk.exit': '離開展示模式',
    'wall.change-token': '更換權杖',
    'wall.token.heading': '需要存取權杖',
    'wall.token.label': '貼上您取得的電視牆權杖：',
    'wall.token.submit': '開啟電視牆',
    'wall.token.sso': '使用單一登入',
    'wall.token.empty': '請先貼上權杖：欄位是空的。',
    'wall.token.new': '請貼上新的權杖。',
    'wall.token.needed': '此電視牆需要存取權杖：請登入、開啟您取得的連結（結尾為 ?token=…），或在下方貼上權杖。',
    'wall.token.refused': '伺服器拒絕了此權杖：{reason}。請重新登入或貼上有效的權杖。',
    'wall.empty': '此權杖目前沒有可顯示的攝影機。來源一發布就會出現在這裡。',
    'wall.noscript': '電視牆需要 JavaScript：請為此網站啟用。',
  },
});

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// Wall owns the page: token form, source polling, tiles, layout and kiosk mode.
class Wall {
  constructor() {
    const $ = (id) => document.getElementById(id);
    this.grid = $('grid');
    this.empty = $('empty');
    this.summary = $('summary');
    this.status = $('status');
    this.changeToken = $('change-token');
    this.syncToggle = $('sync-toggle');
    this.syncStatus = $('sync-status');
    this.layoutSelect = $('layout');
    this.pager = $('pager');
    this.pagePrev = $('page-prev');
    this.pageNext = $('page-next');
    this.pageLabel = $('page-label');
    this.kioskButton = $('kiosk');
    this.kioskExit = $('kiosk-exit');
    this.sync = new PlayoutSync();
    this.syncTimer = 0;
    this.balancing = false;
    this.tokenPanel = $('token-panel');
    this.tokenForm = $('token-form');
    this.tokenInput = $('token-input');
    this.tokenReason = $('token-reason');
    this.tiles = new Map();
    this.token = '';
    this.polling = null;
    this.ticker = 0;
    this.visibleAt = 0;
    this.enlarged = null;
    this.layoutName = loadSetting(LAYOUT_KEY, 'auto');
    if (!LAYOUTS.includes(this.layoutName)) this.layoutName = 'auto';
    this.focusName = loadSetting(FOCUS_KEY, '');
    this.page = 0;
    this.narrow = false;
    this.tokenReasonKey = null; // the key and vars of the token form's reason, for a language switch
  }

  init() {
    mountNav('wall');
    pageTitle('wall.title');
    for (const name of LAYOUTS) {
      const o = document.createElement('option');
      o.value = name;
      o.setAttribute('data-i18n', `wall.layout.${name}`);
      this.layoutSelect.append(o);
    }
    translate(this.layoutSelect);
    this.layoutSelect.value = this.layoutName;
    this.layoutSelect.addEventListener('change', () => this.setLayout(this.layoutSelect.value));
    this.pagePrev.addEventListener('click', () => this.turn(-1));
    this.pageNext.addEventListener('click', () => this.turn(1));
    this.kioskButton.addEventListener('click', () => this.setKiosk(true, { fullscreen: true }));
    this.kioskExit.addEventListener('click', () => this.setKiosk(false));
    document.addEventListener('fullscreenchange', () => {
      if (!document.fullscreenElement && this.kioskFullscreen) this.setKiosk(false);
    });
    this.tokenForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = this.tokenInput.value.trim();
      if (!token) {
        this.showTokenForm('wall.token.empty');
        return;
      }
      saveToken(token);
      this.tokenInput.value = '';
      this.start(token);
    });
    this.changeToken.addEventListener('click', () => {
      this.stop();
      forgetToken();
      this.token = '';
      this.showTokenForm('wall.token.new');
    });
    this.syncToggle.addEventListener('click', () => this.setSynced(!this.sync.enabled));
    this.setSynced(loadSynced());
    document.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Escape') return;
      if (this.enlarged) this.toggleEnlarged(this.enlarged);
      else if (document.body.classList.contains('kiosk')) this.setKiosk(false);
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) this.visibleAt = performance.now();
    });
    // end the sessions when the page goes away; the DELETEs outlive it.
    window.addEventListener('pagehide', () => this.stop({ keepalive: true }));
    window.addEventListener('pageshow', (ev) => {
      if (ev.persisted && this.token) this.start(this.token);
    });
    window.addEventListener('langchange', () => this.relabel());
    new ResizeObserver(() => this.layout()).observe(this.grid);

    const url = new URL(window.location.href);
    if (url.searchParams.has('kiosk') || url.hash === '#kiosk') this.setKiosk(true);
    const token = takeToken();
    if (token) {
      this.start(token);
    } else {
      this.showTokenForm('wall.token.needed');
    }
  }

  // relabel redraws what is written in the page's language after a switch.
  relabel() {
    this.summarize();
    this.setSynced(this.sync.enabled);
    this.renderPager();
    if (this.tokenReasonKey) this.tokenReason.textContent = t(...this.tokenReasonKey);
    for (const tile of this.tiles.values()) tile.render();
  }

  start(token) {
    this.stop();
    this.token = token;
    this.tokenPanel.hidden = true;
    this.tokenReasonKey = null;
    this.grid.hidden = false;
    this.changeToken.hidden = false;
    this.setStatus(t('wall.loading'));
    const ctrl = new AbortController();
    this.polling = ctrl;
    this.poll(ctrl.signal);
    this.ticker = setInterval(() => {
      for (const tile of this.tiles.values()) tile.tick();
    }, TICK_MS);
    this.syncToggle.hidden = false;
    this.syncTimer = setInterval(() => this.balance(), SYNC_MS);
  }

  // setSynced turns synced playout on or off, and remembers it for the browser tab.
  setSynced(on) {
    this.sync.setEnabled(on);
    saveSynced(on);
    this.syncToggle.setAttribute('aria-pressed', String(on));
    setText(this.syncToggle, t(on ? 'wall.synced.on' : 'wall.synced.off'));
    this.syncToggle.title = t(on ? 'wall.synced.on.title' : 'wall.synced.off.title');
    this.showSync();
  }

  async balance() {
    if (this.balancing) return;
    this.balancing = true;
    try {
      await this.sync.tick([...this.tiles.values()]);
    } catch (err) {
      console.warn(`wall: synced playout: ${err?.message ?? err}`);
    } finally {
      this.balancing = false;
    }
    this.showSync();
    for (const tile of this.tiles.values()) tile.renderAlignment();
  }

  // showSync shows the skew between the tiles' capture instants on screen, and which tile
  // is behind.
  showSync() {
    const s = this.sync;
    let text = '';
    let title = '';
    const ms = Math.round(s.skewMs);
    const name = s.behind ?? '';
    if (Number.isFinite(s.skewMs)) {
      if (s.enabled) text = ms > BEHIND_MS && name ? t('wall.in-sync-behind', { ms, name }) : t('wall.in-sync', { ms });
      else text = ms > BEHIND_MS && name ? t('wall.behind', { name, ms }) : t('wall.apart', { ms });
      title = t('wall.skew.title', { n: s.measured, ms, name });
    } else if (!s.capturable) {
      text = t('wall.no-capture');
      title = t('wall.no-capture.title');
    }
    setText(this.syncStatus, text);
    this.syncStatus.title = title;
    this.syncStatus.hidden = text === '' || this.syncToggle.hidden;
    this.syncStatus.dataset.skewMs = Number.isFinite(s.skewMs) ? String(ms) : '';
    this.syncStatus.dataset.behind = Number.isFinite(s.skewMs) ? name : '';
    this.syncStatus.dataset.synced = String(s.enabled);
    for (const tile of this.tiles.values()) {
      tile.root.classList.toggle('behind', Number.isFinite(s.skewMs) && ms > BEHIND_MS && tile.name === name);
    }
  }

  stop({ keepalive = false } = {}) {
    this.polling?.abort();
    this.polling = null;
    clearInterval(this.ticker);
    clearInterval(this.syncTimer);
    for (const tile of this.tiles.values()) tile.dispose({ keepalive });
    this.tiles.clear();
    this.enlarged = null;
    this.grid.replaceChildren();
    this.empty.hidden = true;
    this.summarize();
    this.renderPager();
  }

  // showTokenForm shows the token form with the reason of a key (and its vars).
  showTokenForm(key, vars = {}) {
    this.setKiosk(false);
    this.grid.hidden = true;
    this.empty.hidden = true;
    this.changeToken.hidden = true;
    this.syncToggle.hidden = true;
    this.showSync();
    this.setStatus('');
    this.tokenReasonKey = [key, vars];
    this.tokenReason.textContent = t(key, vars);
    this.tokenPanel.hidden = false;
    this.tokenInput.focus();
  }

  // unauthorized is called when the server refuses the token.
  unauthorized(reason) {
    if (!this.token) return;
    console.warn(`wall: token refused: ${reason}`);
    this.stop();
    this.token = '';
    forgetToken();
    this.showTokenForm('wall.token.refused', { reason });
  }

  async poll(signal) {
    while (!signal.aborted) {
      try {
        const sources = await fetchSources(this.token, { signal });
        if (signal.aborted) return;
        this.apply(sources);
        this.setStatus('');
      } catch (err) {
        if (signal.aborted) return;
        if (err?.unauthorized) {
          this.unauthorized(err.message);
          return;
        }
        this.setStatus(t('wall.stale-list', { reason: err?.message ?? err }));
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  }

  apply(sources) {
    const names = new Set(sources.map((s) => s.name));
    for (const [name, tile] of this.tiles) {
      if (names.has(name)) continue;
      tile.dispose();
      tile.root.remove();
      this.tiles.delete(name);
      if (this.enlarged === tile) this.enlarged = null;
    }
    const added = [];
    for (const info of sources) {
      let tile = this.tiles.get(info.name);
      if (tile) {
        tile.update(info);
        continue;
      }
      tile = new Tile(info.name, this);
      this.tiles.set(info.name, tile);
      // tiles never move (moving a playing video pauses it): a new one goes in its place.
      const next = [...this.grid.children].find((c) => c.dataset.tile > info.name);
      this.grid.insertBefore(tile.root, next ?? null);
      tile.update(info);
      added.push(tile);
    }
    this.empty.hidden = this.tiles.size > 0;
    // the layout first: a new tile on another page starts no session.
    this.layout();
    for (const tile of added) tile.start();
    this.summarize();
  }

  summarize() {
    const n = this.tiles.size;
    let live = 0;
    for (const tile of this.tiles.values()) if (tile.info?.live) live++;
    setText(this.summary, this.token ? t(n === 1 ? 'wall.summary.one' : 'wall.summary', { n, live }) : '');
  }

  setStatus(text) {
    setText(this.status, text);
    this.status.hidden = text === '';
  }

  setLayout(name) {
    if (!LAYOUTS.includes(name)) return;
    this.layoutName = name;
    this.layoutSelect.value = name;
    saveSetting(LAYOUT_KEY, name);
    this.page = 0;
    this.layout();
  }

  turn(step) {
    this.page += step;
    this.layout();
  }

  // layout sizes the grid for the layout in use, shows the tiles of the current page and
  // places the focused tile.
  layout() {
    const tiles = [...this.grid.children];
    const n = tiles.length;
    const css = getComputedStyle(this.grid);
    const gap = parseFloat(css.columnGap) || 0;
    const w = (this.grid.clientWidth || window.innerWidth) - (parseFloat(css.paddingLeft) || 0) - (parseFloat(css.paddingRight) || 0);
    const h = (this.grid.clientHeight || window.innerHeight) - (parseFloat(css.paddingTop) || 0) - (parseFloat(css.paddingBottom) || 0);
    const narrow = window.innerWidth < NARROW_PX;
    const size = narrow ? Infinity : perPage(this.layoutName);
    const pages = Number.isFinite(size) ? Math.max(1, Math.ceil(n / size)) : 1;
    this.page = Math.min(Math.max(0, this.page), pages - 1);
    const from = Number.isFinite(size) ? this.page * size : 0;
    const shown = Math.min(n - from, size);
    const focus = !narrow && this.layoutName === 'focus' ? this.focusTile(tiles) : null;
    tiles.forEach((el, i) => {
      const off = i < from || i >= from + size;
      el.classList.toggle('off-page', off);
      el.classList.toggle('focused', el === focus);
      this.tiles.get(el.dataset.tile)?.show(!off);
    });
    const p = plan(narrow ? 'auto' : this.layoutName, shown, narrow ? window.innerWidth : w, h, gap);
    this.narrow = p.narrow;
    this.grid.dataset.layout = narrow ? 'narrow' : this.layoutName;
    this.grid.style.setProperty('--cols', String(p.cols));
    this.grid.style.setProperty('--tile-w', p.narrow ? 'minmax(0, 1fr)' : `${p.tileW}px`);
    this.pages = pages;
    this.renderPager();
  }

  // focusTile returns the focus layout's large tile: the one chosen last, else the first.
  focusTile(tiles) {
    return tiles.find((el) => el.dataset.tile === this.focusName) ?? tiles[0] ?? null;
  }

  renderPager() {
    const pages = this.tiles.size > 0 ? (this.pages ?? 1) : 1;
    this.pager.hidden = pages <= 1;
    setText(this.pageLabel, t('wall.page', { page: this.page + 1, pages }));
    this.pagePrev.disabled = this.page <= 0;
    this.pageNext.disabled = this.page >= pages - 1;
  }

  // select is a tile's click: in the focus layout it becomes the large tile, else it is
  // enlarged to the whole page (or shrunk back).
  select(tile) {
    if (this.layoutName === 'focus' && !this.narrow && !this.enlarged) {
      const focused = this.grid.querySelector('.tile.focused');
      if (focused !== tile.root) {
        this.focusName = tile.name;
        saveSetting(FOCUS_KEY, tile.name);
        this.layout();
        return;
      }
    }
    this.toggleEnlarged(tile);
  }

  toggleEnlarged(tile) {
    const on = this.enlarged !== tile;
    this.enlarged?.root.classList.remove('enlarged');
    this.enlarged = on ? tile : null;
    tile.root.classList.toggle('enlarged', on);
    document.body.classList.toggle('has-enlarged', on);
  }

  // setKiosk enters or leaves kiosk mode: no header, no cursor, full screen when asked (a
  // click), which the browser may refuse without one.
  setKiosk(on, { fullscreen = false } = {}) {
    document.body.classList.toggle('kiosk', on);
    this.kioskExit.hidden = !on;
    this.kioskFullscreen = on && fullscreen;
    if (on && fullscreen && document.documentElement.requestFullscreen) {
      document.documentElement.requestFullscreen().catch(() => {
        this.kioskFullscreen = false;
      });
    } else if (!on && document.fullscreenElement) {
      document.exitFullscreen().catch(() => {});
    }
    this.layout();
  }

  // setSound unmutes one tile (muting the others, so the room hears one source) or mutes it.
  setSound(tile, on) {
    for (const t of this.tiles.values()) {
      if (t !== tile && on) t.setAudio(false);
    }
    tile.setAudio(on);
    for (const t of this.tiles.values()) t.render();
  }
}

function loadSetting(key, fallback) {
  try {
    return window.localStorage.getItem(key) ?? fallback;
  } catch {
    return fallback;
  }
}

function saveSetting(key, value) {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    // storage disabled: the choice lasts for this page load.
  }
}

function loadSynced() {
  try {
    return window.sessionStorage.getItem(SYNCED_KEY) === '1';
  } catch {
    return false;
  }
}

function saveSynced(on) {
  try {
    window.sessionStorage.setItem(SYNCED_KEY, on ? '1' : '0');
  } catch {
    // storage disabled: the choice lasts for this page load.
  }
}

new Wall().init();
