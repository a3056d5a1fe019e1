// The Cameras page: the cameras ingest pulls, with their state, and a form to add, edit,
// disable, enable and remove them without a restart.
//
// The SFU relays /v1/cameras to the ingest(s) named by its ingest_api setting, with the page's
// token; ingest checks the token (reading needs an operator, commander or wall token, changes
// an operator or commander token) and audits every change. Every POLL_MS the list is read
// again and the cards are updated in place, so focus and the form survive a refresh.
//
// Passwords never come back from the API: a camera's address is listed as
// rtsp://user:***@host/path. The form takes the user name and password in their own fields
// (characters such as @ or / in a password need no escaping there); editing a camera leaves
// the password field empty, which keeps the stored password.

import { APIError, authHeaders, forgetToken, reasonOf, request, saveToken, takeToken } from './api.js';
import { lang, register, t, translate } from './i18n.js';
import { mountNav, pageTitle } from './nav.js';

const POLL_MS = 3000;
const FIELDS = ['name', 'url', 'username', 'password', 'transport', 'position', 'label'];

register({
  en: {
    'cameras.title': 'Cameras',
    'cameras.count': '{n} cameras · {live} live',
    'cameras.count.one': '1 camera · {live} live',
    'cameras.loading': 'Loading the cameras…',
    'cameras.stale': 'The list is not up to date: {reason}',
    'cameras.change-token': 'Change token',
    'cameras.token.heading': 'Access token needed',
    'cameras.token.label': 'Paste the operator token you were given:',
    'cameras.token.submit': 'Open the camera list',
    'cameras.token.empty': 'Paste a token first: the field is empty.',
    'cameras.token.new': 'Paste the new token.',
    'cameras.token.needed': 'This page needs an operator or commander token: open the link you were given (it ends in ?token=…), or paste the token below.',
    'cameras.token.refused': 'The server refused the token: {reason}. Paste a valid token.',
    'cameras.readonly': 'Read-only: this token may see the cameras but not change them; changing cameras needs an operator or commander token.',
    'cameras.unavailable': 'No camera data: {reason}',
    'cameras.ingest-down': 'Some cameras are missing: {reason}',
    'cameras.form.add': 'Add camera',
    'cameras.form.edit': 'Edit camera {name}',
    'cameras.form.submit.add': 'Add camera',
    'cameras.form.submit.edit': 'Save changes',
    'cameras.form.cancel': 'Cancel',
    'cameras.form.saving': 'Saving…',
    'cameras.form.added': 'Camera {name} added; it connects now.',
    'cameras.form.saved': 'Camera {name} saved.',
    'cameras.form.failed': 'Not saved: {reason}',
    'cameras.field.name': 'Name',
    'cameras.field.name.placeholder': 'north-gate',
    'cameras.field.name.hint': 'Letters, digits, . _ or -; it names the camera on the wall and in recordings.',
    'cameras.field.url': 'RTSP address',
    'cameras.field.url.hint': 'Without the password: put the user name and password in their own fields.',
    'cameras.field.username': 'User name',
    'cameras.field.password': 'Password',
    'cameras.field.password.keep': 'Leave empty to keep the stored password (while the address stays the same).',
    'cameras.field.transport': 'Transport',
    'cameras.transport.auto': 'Automatic (UDP, then TCP)',
    'cameras.transport.tcp': 'TCP (through firewalls and 4G)',
    'cameras.transport.udp': 'UDP (lowest delay on a LAN)',
    'cameras.field.position': 'Position (optional)',
    'cameras.field.lat': 'Latitude',
    'cameras.field.lon': 'Longitude',
    'cameras.field.label': 'Description (optional)',
    'cameras.field.label.placeholder': 'North gate, facing the car park',
    'cameras.field.disabled': 'Disabled: listed, but not pulled',
    'cameras.field.ingest': 'Ingest',
    'cameras.error.name': 'Give the camera a name.',
    'cameras.error.url': 'Give the camera’s RTSP address, such as rtsp://10.0.0.5:554/stream1.',
    'cameras.error.position': 'Give both latitude and longitude in degrees (such as 25.0330 and 121.5654), or neither.',
    'cameras.list.heading': 'Pulled cameras',
    'cameras.empty': 'No camera yet. Add one with the form.',
    'cameras.state.connecting': 'Connecting',
    'cameras.state.live': 'Live',
    'cameras.state.failed': 'Failed',
    'cameras.state.disabled': 'Disabled',
    'cameras.state.offline': 'Offline',
    'cameras.state.standby': 'Standby (another ingest pulls it)',
    'cameras.since': 'since {time}',
    'cameras.retry': 'next try {time}',
    'cameras.position': 'Position {lat}, {lon}',
    'cameras.no-position': 'No position',
    'cameras.origin.config': 'From ingest\'s configuration: can be edited and disabled here, not removed.',
    'cameras.origin.api': 'Added here.',
    'cameras.origin.overridden': 'From ingest\'s configuration, changed here.',
    'cameras.changed': 'Last changed by {who}, {time}',
    'cameras.edit': 'Edit',
    'cameras.edit.label': 'Edit camera {name}',
    'cameras.disable': 'Disable',
    'cameras.disable.label': 'Disable camera {name}',
    'cameras.enable': 'Enable',
    'cameras.enable.label': 'Enable camera {name}',
    'cameras.remove': 'Remove',
    'cameras.remove.label': 'Remove camera {name}',
    'cameras.remove.confirm': 'Remove {name}? Ingest stops pulling it and forgets it.',
    'cameras.remove.yes': 'Remove',
    'cameras.remove.yes.label': 'Yes, remove camera {name}',
    'cameras.remove.no': 'Keep',
    'cameras.action.failed': '{name}: {reason}',
    'cameras.noscript': 'The Cameras page needs JavaScript: enable it for this site.',
  },
  'zh-TW': {
    'cameras.title': '攝影機',
    'cameras.count': '{n} 部攝影機 · {live} 部直播中',
    'cameras.count.one': '1 部攝影機 · {live} 部直播中',
    'cameras.loading': '正在載入攝影機…',
    'cameras.stale': '清單不是最新的：{reason}',
    'cameras.change-token': '更換權杖',
    'cameras.token.heading': '需要存取權杖',
    'cameras.token.label': '貼上您取得的操作員權杖：',
    'cameras.token.submit': '開啟攝影機清單',
    'cameras.token.empty': '請先貼上權杖：欄位是空的。',
    'cameras.token.new': '請貼上新的權杖。',
    'cameras.token.needed': '此頁面需要操作員或指揮官權杖：請開啟您取得的連結（結尾為 ?token=…），或在下方貼上權杖。',
    'cameras.token.refused': '伺服器拒絕了此權杖：{reason}。請貼上有效的權杖。',
    'cameras.readonly': '唯讀：此權杖可以檢視攝影機，但不能變更；變更攝影機需要操作員或指揮官權杖。',
    'cameras.unavailable': '沒有攝影機資料：{reason}',
    'cameras.ingest-down': '部分攝影機未列出：{reason}',
    'cameras.form.add': '新增攝影機',
    'cameras.form.edit': '編輯攝影機 {name}',
    'cameras.form.submit.add': '新增攝影機',
    'cameras.form.submit.edit': '儲存變更',
    'cameras.form.cancel': '取消',
    'cameras.form.saving': '儲存中…',
    'cameras.form.added': '已新增攝影機 {name}，正在連線。',
    'cameras.form.saved': '已儲存攝影機 {name}。',
    'cameras.form.failed': '未儲存：{reason}',
    'cameras.field.name': '名稱',
    'cameras.field.name.placeholder': 'north-gate',
    'cameras.field.name.hint': '可用英文字母、數字、. _ 或 -；電視牆與錄影都以此名稱識別攝影機。',
    'cameras.field.url': 'RTSP 位址',
    'cameras.field.url.hint': '請勿在位址中填入密碼：帳號與密碼請填在各自的欄位。',
    'cameras.field.username': '帳號',
    'cameras.field.password': '密碼',
    'cameras.field.password.keep': '留空則沿用已儲存的密碼（位址不變時）。',
    'cameras.field.transport': '傳輸方式',
    'cameras.transport.auto': '自動（先 UDP，再 TCP）',
    'cameras.transport.tcp': 'TCP（可穿越防火牆與 4G）',
    'cameras.transport.udp': 'UDP（區域網路延遲最低）',
    'cameras.field.position': '位置（選填）',
    'cameras.field.lat': '緯度',
    'cameras.field.lon': '經度',
    'cameras.field.label': '說明（選填）',
    'cameras.field.label.placeholder': '北側大門，朝向停車場',
    'cameras.field.disabled': '停用：保留在清單中，但不拉取影像',
    'cameras.field.ingest': '接收伺服器',
    'cameras.error.name': '請為攝影機命名。',
    'cameras.error.url': '請填入攝影機的 RTSP 位址，例如 rtsp://10.0.0.5:554/stream1。',
    'cameras.error.position': '請同時填入緯度與經度（度，例如 25.0330 與 121.5654），或兩者都不填。',
    'cameras.list.heading': '拉取中的攝影機',
    'cameras.empty': '尚無攝影機。請用表單新增。',
    'cameras.state.connecting': '連線中',
    'cameras.state.live': '直播中',
    'cameras.state.failed': '連線失敗',
    'cameras.state.disabled': '已停用',
    'cameras.state.offline': '離線',
    'cameras.state.standby': '待命（由另一台匯入伺服器拉流）',
    'cameras.since': '自 {time} 起',
    'cameras.retry': '下次重試 {time}',
    'cameras.position': '位置 {lat}, {lon}',
    'cameras.no-position': '未設定位置',
    'cameras.origin.config': '來自 ingest 的設定：可在此編輯與停用，但不能移除。',
    'cameras.origin.api': '在此新增。',
    'cameras.origin.overridden': '來自 ingest 的設定，已在此變更。',
    'cameras.changed': '最後由 {who} 於 {time} 變更',
    'cameras.edit': '編輯',
    'cameras.edit.label': '編輯攝影機 {name}',
    'cameras.disable': '停用',
    'cameras.disable.label': '停用攝影機 {name}',
    'cameras.enable': '啟用',
    'cameras.enable.label': '啟用攝影機 {name}',
    'cameras.remove': '移除',
    'cameras.remove.label': '移除攝影機 {name}',
    'cameras.remove.confirm': '要移除 {name} 嗎？接收伺服器會停止拉取並刪除此攝影機。',
    'cameras.remove.yes': '移除',
    'cameras.remove.yes.label': '確定移除攝影機 {name}',
    'cameras.remove.no': '保留',
    'cameras.action.failed': '{name}：{reason}',
    'cameras.noscript': '攝影機頁面需要 JavaScript：請為此網站啟用。',
  },
});

const $ = (id) => document.getElementById(id);

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// tokenRole returns the role a token claims (it is not verified here: the server decides), or ''.
export function tokenRole(token) {
  try {
    const part = token.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const role = JSON.parse(json)?.role;
    return typeof role === 'string' ? role : '';
  } catch {
    return '';
  }
}

// fieldOf returns the form field an API error message is about ("url is not…", "position.lat …"), or ''.
export function fieldOf(message) {
  const m = /^(name|url|username|password|transport|position|label)\b/.exec(message ?? '');
  return m ? m[1] : '';
}

// hasCredentials tells whether an RTSP address carries user:password@.
export function hasCredentials(url) {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(url.trim());
}

// withoutCredentials returns an address with its user:password@ removed, for the form.
export function withoutCredentials(url) {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1');
}

function formatTime(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime()) || d.getUTCFullYear() < 2000) return '';
  const today = new Date().toDateString() === d.toDateString();
  const opts = today ? { hour: '2-digit', minute: '2-digit', second: '2-digit' } : { dateStyle: 'short', timeStyle: 'medium' };
  return new Intl.DateTimeFormat(lang(), opts).format(d);
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

// Card is one camera of the list, updated in place at every refresh.
class Card {
  constructor(page, cam) {
    this.page = page;
    this.name = cam.name;
    this.root = el('li', 'cam-card');
    this.root.dataset.camera = cam.name;
    const head = el('div', 'cam-card-head');
    this.title = el('h3', 'cam-name', cam.name);
    this.state = el('span', 'cam-state');
    head.append(this.title, this.state);
    this.label = el('p', 'cam-label');
    this.reason = el('p', 'cam-reason');
    this.since = el('p', 'cam-meta cam-since');
    this.position = el('p', 'cam-meta cam-pos');
    this.url = el('p', 'cam-url');
    this.origin = el('p', 'cam-meta cam-origin');
    this.error = el('p', 'cam-error');
    this.error.setAttribute('role', 'alert');
    this.error.hidden = true;
    this.actions = el('div', 'cam-card-actions');
    this.editButton = el('button', 'cam-edit');
    this.toggleButton = el('button', 'cam-toggle');
    this.removeButton = el('button', 'cam-remove cam-danger');
    for (const b of [this.editButton, this.toggleButton, this.removeButton]) b.type = 'button';
    this.actions.append(this.editButton, this.toggleButton, this.removeButton);
    this.confirm = el('div', 'cam-confirm');
    this.confirm.hidden = true;
    this.confirmText = el('p');
    this.confirmYes = el('button', 'cam-confirm-yes cam-danger');
    this.confirmNo = el('button', 'cam-confirm-no');
    this.confirmYes.type = 'button';
    this.confirmNo.type = 'button';
    this.confirm.append(this.confirmText, this.confirmYes, this.confirmNo);
    this.root.append(head, this.label, this.reason, this.since, this.position, this.url, this.origin, this.error, this.actions, this.confirm);

    this.editButton.addEventListener('click', () => page.edit(this.cam));
    this.toggleButton.addEventListener('click', () => this.run(() => page.setDisabled(this.cam, !this.cam.disabled)));
    this.removeButton.addEventListener('click', () => {
      this.confirm.hidden = false;
      this.actions.hidden = true;
      this.confirmNo.focus();
    });
    this.confirmNo.addEventListener('click', () => this.closeConfirm(true));
    this.confirmYes.addEventListener('click', () => this.run(() => page.remove(this.cam)));
    this.update(cam);
  }

  closeConfirm(refocus) {
    this.confirm.hidden = true;
    this.actions.hidden = false;
    if (refocus) this.removeButton.focus();
  }

  // run performs an action of the card and shows its error in the card.
  async run(action) {
    this.error.hidden = true;
    for (const b of [this.toggleButton, this.removeButton, this.confirmYes]) b.disabled = true;
    try {
      await action();
      this.closeConfirm(false);
    } catch (err) {
      if (err?.unauthorized) {
        this.page.unauthorized(err.message);
        return;
      }
      this.error.textContent = t('cameras.action.failed', { name: this.name, reason: err?.message ?? String(err) });
      this.error.hidden = false;
    } finally {
      for (const b of [this.toggleButton, this.removeButton, this.confirmYes]) b.disabled = false;
    }
  }

  update(cam) {
    this.cam = cam;
    const state = ['connecting', 'live', 'failed', 'disabled', 'offline', 'standby'].includes(cam.state) ? cam.state : 'offline';
    this.root.dataset.state = state;
    setText(this.state, t(`cameras.state.${state}`));
    setText(this.label, cam.label ?? '');
    this.label.hidden = !cam.label;
    setText(this.reason, cam.reason ?? '');
    this.reason.hidden = !cam.reason;
    const parts = [];
    const since = formatTime(cam.since);
    if (since) parts.push(t('cameras.since', { time: since }));
    const retry = state === 'failed' ? formatTime(cam.retry_at) : '';
    if (retry) parts.push(t('cameras.retry', { time: retry }));
    setText(this.since, parts.join(' · '));
    const pos = cam.position;
    setText(this.position, pos ? t('cameras.position', { lat: pos.lat.toFixed(5), lon: pos.lon.toFixed(5) }) : t('cameras.no-position'));
    setText(this.url, cam.url ?? '');
    this.url.hidden = !cam.url;
    let origin = t(cam.origin === 'config' ? (cam.overridden ? 'cameras.origin.overridden' : 'cameras.origin.config') : 'cameras.origin.api');
    const changed = formatTime(cam.changed_at);
    if (cam.changed_by && changed) origin += `${lang() === 'zh-TW' ? '' : ' '}${t('cameras.changed', { who: cam.changed_by, time: changed })}`;
    setText(this.origin, origin);
    const vars = { name: cam.name };
    setText(this.editButton, t('cameras.edit'));
    this.editButton.setAttribute('aria-label', t('cameras.edit.label', vars));
    setText(this.toggleButton, t(cam.disabled ? 'cameras.enable' : 'cameras.disable'));
    this.toggleButton.setAttribute('aria-label', t(cam.disabled ? 'cameras.enable.label' : 'cameras.disable.label', vars));
    setText(this.removeButton, t('cameras.remove'));
    this.removeButton.setAttribute('aria-label', t('cameras.remove.label', vars));
    this.removeButton.hidden = !cam.removable;
    setText(this.confirmText, t('cameras.remove.confirm', vars));
    setText(this.confirmYes, t('cameras.remove.yes'));
    this.confirmYes.setAttribute('aria-label', t('cameras.remove.yes.label', vars));
    setText(this.confirmNo, t('cameras.remove.no'));
    this.actions.classList.toggle('cam-readonly', this.page.readOnly);
    this.editButton.hidden = this.page.readOnly;
    this.toggleButton.hidden = this.page.readOnly;
    if (this.page.readOnly) this.removeButton.hidden = true;
  }
}

// CamerasPage owns the page: token, polling, the list and the form.
class CamerasPage {
  constructor() {
    this.token = '';
    this.cards = new Map();
    this.cameras = [];
    this.ingests = [];
    this.editing = null; // the camera being edited, or null when adding
    this.readOnly = false;
    this.polling = null;
    this.tokenReasonKey = null;
    this.formError = null; // the message the form shows, for a language switch
    this.form = $('cam-form');
  }

  init() {
    mountNav('cameras');
    pageTitle('cameras.title');
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const token = $('token-input').value.trim();
      if (!token) {
        this.showTokenForm('cameras.token.empty');
        return;
      }
      saveToken(token);
      $('token-input').value = '';
      this.start(token);
    });
    $('change-token').addEventListener('click', () => {
      this.stop();
      forgetToken();
      this.token = '';
      this.showTokenForm('cameras.token.new');
    });
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit();
    });
    $('form-cancel').addEventListener('click', () => this.resetForm());
    $('add-camera').addEventListener('click', () => {
      if (this.editing) this.resetForm();
      $('f-name').focus();
    });
    window.addEventListener('langchange', () => this.relabel());
    const token = takeToken();
    if (token) this.start(token);
    else this.showTokenForm('cameras.token.needed');
  }

  relabel() {
    if (this.tokenReasonKey) $('token-reason').textContent = t(...this.tokenReasonKey);
    if (this.formError !== null) $('form-error').textContent = t('cameras.form.failed', { reason: this.formError });
    this.setFormHeading();
    for (const card of this.cards.values()) card.update(card.cam);
    this.summarize();
  }

  showTokenForm(key, vars = {}) {
    $('content').hidden = true;
    $('notice').hidden = true;
    $('change-token').hidden = true;
    this.setStatus('');
    setText($('summary'), '');
    this.tokenReasonKey = [key, vars];
    $('token-reason').textContent = t(key, vars);
    $('token-panel').hidden = false;
    $('token-input').focus();
  }

  start(token) {
    this.stop();
    this.token = token;
    this.readOnly = !['operator', 'commander', ''].includes(tokenRole(token));
    $('token-panel').hidden = true;
    this.tokenReasonKey = null;
    $('change-token').hidden = false;
    $('form-section').hidden = this.readOnly;
    $('add-camera').hidden = this.readOnly;
    this.setNotice(this.readOnly ? t('cameras.readonly') : '');
    this.setStatus(t('cameras.loading'));
    const ctl = new AbortController();
    this.polling = ctl;
    this.poll(ctl.signal);
  }

  stop() {
    this.polling?.abort();
    this.polling = null;
  }

  unauthorized(reason) {
    this.stop();
    this.token = '';
    forgetToken();
    this.showTokenForm('cameras.token.refused', { reason });
  }

  setStatus(text) {
    setText($('status'), text);
    $('status').hidden = text === '';
  }

  setNotice(text) {
    setText($('notice'), text);
    $('notice').hidden = text === '';
  }

  async api(method, path, body) {
    const init = { method, headers: authHeaders(this.token), cache: 'no-store' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await request(path, init);
    if (!res.ok) throw new APIError(await reasonOf(res), res.status);
    return res.status === 204 ? null : res.json();
  }

  async poll(signal) {
    while (!signal.aborted) {
      await this.refresh(signal);
      if (signal.aborted) return;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  }

  // refresh reads the list once and shows it, or why it cannot.
  async refresh(signal) {
    try {
      const body = await this.api('GET', '/v1/cameras');
      if (signal?.aborted) return;
      this.apply(body);
      this.setStatus('');
    } catch (err) {
      if (signal?.aborted) return;
      if (err?.unauthorized) {
        this.unauthorized(err.message);
        return;
      }
      if (err?.status === 503 || err?.status === 502 || err?.status === 403) {
        // no ingest configured or reachable, or a token without the right: say so instead of a list.
        $('content').hidden = true;
        this.setStatus('');
        this.setNotice(t('cameras.unavailable', { reason: err.message }));
        return;
      }
      this.setStatus(t('cameras.stale', { reason: err?.message ?? String(err) }));
    }
  }

  apply(body) {
    const cams = Array.isArray(body?.cameras) ? body.cameras.filter((c) => c && typeof c.name === 'string') : [];
    cams.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.cameras = cams;
    this.ingests = Array.isArray(body?.ingests) ? body.ingests : [];
    const down = this.ingests.filter((i) => !i.ok).map((i) => i.error);
    this.setNotice([this.readOnly ? t('cameras.readonly') : '', down.length ? t('cameras.ingest-down', { reason: down.join('; ') }) : ''].filter(Boolean).join(' '));
    $('content').hidden = false;
    this.renderIngests();
    const list = $('cam-list');
    const names = new Set(cams.map((c) => c.name));
    for (const [name, card] of this.cards) {
      if (names.has(name)) continue;
      card.root.remove();
      this.cards.delete(name);
    }
    let prev = null;
    for (const cam of cams) {
      let card = this.cards.get(cam.name);
      if (card) {
        card.update(cam);
      } else {
        card = new Card(this, cam);
        this.cards.set(cam.name, card);
      }
      const want = prev ? prev.nextSibling : list.firstChild;
      if (card.root !== want) list.insertBefore(card.root, want);
      prev = card.root;
    }
    $('empty').hidden = cams.length > 0;
    this.summarize();
  }

  renderIngests() {
    const field = $('ingest-field');
    const select = $('f-ingest');
    field.hidden = this.ingests.length <= 1 || this.editing !== null;
    if (select.options.length === this.ingests.length) return;
    select.replaceChildren(...this.ingests.map((i) => {
      const o = el('option', '', i.url);
      o.value = String(i.index);
      return o;
    }));
  }

  summarize() {
    const n = this.cameras.length;
    const live = this.cameras.filter((c) => c.state === 'live').length;
    setText($('summary'), this.token ? t(n === 1 ? 'cameras.count.one' : 'cameras.count', { n, live }) : '');
  }

  // query returns ?ingest=N for a camera when several ingests are configured.
  query(cam) {
    return this.ingests.length > 1 && Number.isInteger(cam?.ingest) ? `?ingest=${cam.ingest}` : '';
  }

  async setDisabled(cam, disabled) {
    await this.api('PUT', `/v1/cameras/${encodeURIComponent(cam.name)}${this.query(cam)}`, { disabled });
    await this.refresh();
  }

  async remove(cam) {
    await this.api('DELETE', `/v1/cameras/${encodeURIComponent(cam.name)}${this.query(cam)}`);
    if (this.editing?.name === cam.name) this.resetForm();
    await this.refresh();
  }

  // edit fills the form with a camera; its password stays empty, which keeps it.
  edit(cam) {
    this.editing = cam;
    this.clearErrors();
    const f = this.form.elements;
    f.name.value = cam.name;
    f.name.readOnly = true;
    f.url.value = withoutCredentials(cam.url ?? '');
    f.username.value = cam.username ?? '';
    f.password.value = '';
    f.transport.value = ['tcp', 'udp'].includes(cam.transport) ? cam.transport : 'auto';
    f.lat.value = cam.position ? String(cam.position.lat) : '';
    f.lon.value = cam.position ? String(cam.position.lon) : '';
    f.label.value = cam.label ?? '';
    f.disabled.checked = !!cam.disabled;
    $('f-password-hint').hidden = false;
    $('form-cancel').hidden = false;
    $('ingest-field').hidden = true;
    this.setFormHeading();
    f.url.focus();
  }

  resetForm() {
    this.editing = null;
    this.form.reset();
    this.form.elements.name.readOnly = false;
    $('f-password-hint').hidden = true;
    $('form-cancel').hidden = true;
    this.clearErrors();
    this.setFormHeading();
    this.renderIngests();
  }

  setFormHeading() {
    const heading = $('form-heading');
    const submit = $('form-submit');
    if (this.editing) {
      heading.removeAttribute('data-i18n');
      setText(heading, t('cameras.form.edit', { name: this.editing.name }));
      submit.setAttribute('data-i18n', 'cameras.form.submit.edit');
    } else {
      heading.setAttribute('data-i18n', 'cameras.form.add');
      submit.setAttribute('data-i18n', 'cameras.form.submit.add');
    }
    translate(this.form);
  }

  clearErrors() {
    this.formError = null;
    $('form-error').hidden = true;
    for (const f of FIELDS) {
      const e = $(`f-${f}-error`);
      if (e) e.hidden = true;
    }
    for (const input of this.form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  }

  // showError puts a message next to its field (when it names one) and above the form.
  showError(message, field = fieldOf(message)) {
    const box = $('form-error');
    this.formError = message;
    box.textContent = t('cameras.form.failed', { reason: message });
    box.hidden = false;
    const fe = field ? $(`f-${field}-error`) : null;
    if (fe) {
      fe.textContent = message;
      fe.hidden = false;
      const input = field === 'position' ? $('f-lat') : $(`f-${field}`);
      input?.setAttribute('aria-invalid', 'true');
    }
  }

  // body returns the JSON body the form describes, or throws [field, message].
  body() {
    const f = this.form.elements;
    const name = f.name.value.trim();
    const url = f.url.value.trim();
    if (!this.editing && !name) throw ['name', t('cameras.error.name')];
    if (!url) throw ['url', t('cameras.error.url')];
    const body = { url, transport: f.transport.value, disabled: f.disabled.checked, label: f.label.value.trim() };
    if (!this.editing) body.name = name;
    if (!hasCredentials(url)) {
      // credentials in the address win; else the fields (an empty password keeps the stored one).
      body.username = f.username.value.trim();
      if (f.password.value !== '') body.password = f.password.value;
      else if (!this.editing) body.password = '';
    }
    const lat = f.lat.value.trim().replace(',', '.');
    const lon = f.lon.value.trim().replace(',', '.');
    if ((lat === '') !== (lon === '')) throw ['position', t('cameras.error.position')];
    if (lat !== '') {
      const la = Number(lat);
      const lo = Number(lon);
      if (!Number.isFinite(la) || !Number.isFinite(lo)) throw ['position', t('cameras.error.position')];
      body.position = { lat: la, lon: lo };
    } else {
      body.position = null;
    }
    return body;
  }

  async submit() {
    this.clearErrors();
    let body;
    try {
      body = this.body();
    } catch (err) {
      if (Array.isArray(err)) {
        this.showError(err[1], err[0]);
        $(`f-${err[0] === 'position' ? 'lat' : err[0]}`)?.focus();
        return;
      }
      throw err;
    }
    const submit = $('form-submit');
    submit.disabled = true;
    this.setStatus(t('cameras.form.saving'));
    try {
      let done;
      if (this.editing) {
        const cam = this.editing;
        await this.api('PUT', `/v1/cameras/${encodeURIComponent(cam.name)}${this.query(cam)}`, body);
        done = t('cameras.form.saved', { name: cam.name });
      } else {
        const q = this.ingests.length > 1 ? `?ingest=${encodeURIComponent($('f-ingest').value)}` : '';
        await this.api('POST', `/v1/cameras${q}`, body);
        done = t('cameras.form.added', { name: body.name });
      }
      this.resetForm();
      await this.refresh();
      this.setStatus(done);
    } catch (err) {
      this.setStatus('');
      if (err?.unauthorized) {
        this.unauthorized(err.message);
        return;
      }
      this.showError(err?.message ?? String(err));
    } finally {
      submit.disabled = false;
    }
  }
}

const page = new CamerasPage();
page.init();
