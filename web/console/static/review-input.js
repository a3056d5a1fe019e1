// The review page's input: its buttons, keyboard shortcuts, the choice of incident, window
// and sources, and the link to the instant shown. Methods of Review (review.js), kept apart to keep files small.

import { t as tr } from './i18n.js';
import { formatISO, formatUTC, parseTime } from './review-time.js';
import './review-strings.js';

const $ = (id) => document.getElementById(id);

export const inputMethods = {
  bindControls() {
    $('play').addEventListener('click', () => this.toggle());
    $('step-back').addEventListener('click', () => this.step(-1));
    $('step-fwd').addEventListener('click', () => this.step(1));
    $('back-10').addEventListener('click', () => this.jump(-10000));
    $('fwd-10').addEventListener('click', () => this.jump(10000));
    $('slower').addEventListener('click', () => this.setSpeed(-1));
    $('faster').addEventListener('click', () => this.setSpeed(1));
    $('link').addEventListener('click', () => this.copyLink());
    $('help').addEventListener('click', () => {
      $('keys').hidden = !$('keys').hidden;
      $('help').setAttribute('aria-expanded', String(!$('keys').hidden));
    });
    $('goto').addEventListener('keydown', (ev) => {
      if (ev.key !== 'Enter') return;
      ev.preventDefault();
      ev.stopPropagation();
      const t = parseTime($('goto').value, this.master);
      if (!Number.isFinite(t)) {
        this.setStatus('review.goto.not-time', { value: $('goto').value });
        return;
      }
      if (t < this.window.start || t >= this.window.end) {
        this.setStatus('review.goto.outside', { time: formatUTC(t) });
        return;
      }
      this.setStatus('');
      this.seekTo(t);
    });
    document.addEventListener('keydown', (ev) => this.key(ev));
  },

  key(ev) {
    if (ev.target.closest?.('input, select, textarea, summary') || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    // a focused button acts on space and Enter itself.
    if (ev.target.closest?.('button') && (ev.key === ' ' || ev.key === 'Enter')) return;
    if ($('player').hidden) return;
    const k = ev.key;
    let done = true;
    if (k === ' ') this.toggle();
    else if (k === 'ArrowLeft') (ev.shiftKey ? this.jump(-10000) : this.step(-1));
    else if (k === 'ArrowRight') (ev.shiftKey ? this.jump(10000) : this.step(1));
    else if (k === '+' || k === '=') this.setSpeed(1);
    else if (k === '-' || k === '_') this.setSpeed(-1);
    else if (/^[1-9]$/.test(k)) {
      const tile = this.tiles[Number(k) - 1];
      if (tile) this.setAudio(this.audio === tile ? null : tile);
    } else if (k === 'f' || k === 'Enter') {
      const focused = this.tiles.find((t) => t.root === document.activeElement);
      this.toggleEnlarged(focused ?? this.enlarged ?? this.audio ?? this.tiles[0]);
    } else if (k === 'Escape') {
      if (this.enlarged) this.toggleEnlarged(this.enlarged);
      $('keys').hidden = true;
    } else done = false;
    if (done) ev.preventDefault();
  },

  // fillPicker fills the incident, window and source choices.
  fillPicker(incidents, start, end) {
    const sel = $('pick-incident');
    sel.replaceChildren(...incidents.map((i) => {
      const o = document.createElement('option');
      o.value = i.incident;
      o.textContent = i.incident;
      return o;
    }));
    sel.value = this.incident;
    $('pick-start').value = formatISO(start);
    $('pick-end').value = formatISO(end);
    this.fillSources(this.incident, this.sources);
  },

  fillSources(incident, chosen) {
    const inc = (this.list?.incidents ?? []).find((i) => i.incident === incident);
    const box = $('pick-sources');
    const legend = box.querySelector('legend');
    const labels = (inc?.sources ?? []).map((s) => {
      const l = document.createElement('label');
      const c = document.createElement('input');
      c.type = 'checkbox';
      c.value = s.source;
      c.checked = chosen.includes(s.source);
      l.append(c, ` ${s.source}`);
      l.dataset.first = s.first;
      l.dataset.last = s.last;
      return l;
    });
    box.replaceChildren(legend, ...labels);
    this.relabelPicker();
  },

  // relabelPicker writes the sources' titles in the language in use.
  relabelPicker() {
    for (const l of $('pick-sources').querySelectorAll('label[data-first]')) {
      l.title = tr('review.pick.recorded', { from: formatUTC(Date.parse(l.dataset.first)), to: formatUTC(Date.parse(l.dataset.last)) });
    }
    const out = $('link-out');
    if (out.dataset.said) out.title = tr(out.dataset.said);
  },

  pickSubmitted() {
    const start = parseTime($('pick-start').value);
    const end = parseTime($('pick-end').value, start);
    const sources = [...$('pick-sources').querySelectorAll('input:checked')].map((c) => c.value);
    if (!Number.isFinite(start) || !Number.isFinite(end)) {
      this.setStatus('review.pick.bad-window');
      return;
    }
    if (!sources.length) {
      this.setStatus('review.pick.no-source');
      return;
    }
    const q = new URLSearchParams({ incident: $('pick-incident').value, sources: sources.join(','), start: formatISO(start), end: formatISO(end) });
    window.location.assign(`${window.location.pathname}?${q}`);
  },

  // saveAddress keeps the review's place in the address bar, so that a reload (or the link)
  // opens it at the same instant.
  saveAddress() {
    window.history.replaceState(window.history.state, '', this.link(false));
  },

  link(absolute = true) {
    const q = new URLSearchParams({
      incident: this.incident, sources: this.sources.join(','), start: formatISO(this.window.start), end: formatISO(this.window.end),
      t: formatISO(this.now()),
    });
    const path = `${window.location.pathname}?${q}`;
    return absolute ? `${window.location.origin}${path}` : path;
  },

  async copyLink() {
    const url = this.link();
    const out = $('link-out');
    out.value = url;
    out.hidden = false;
    out.select();
    try {
      await navigator.clipboard.writeText(url);
      out.dataset.said = 'review.link.copied';
    } catch {
      out.dataset.said = 'review.link.copy';
    }
    out.title = tr(out.dataset.said);
  },
};
