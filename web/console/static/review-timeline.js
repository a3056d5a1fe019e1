// The review page's timeline: one row per source showing its recorded ranges and its gaps
// ("no recording") over the review window, a playhead at the master clock, zoom (wheel, the
// −/+ buttons) and seeking by a click.

import { t as tr } from './i18n.js';
import { formatClock } from './review-time.js';
import './review-strings.js';

const MIN_VIEW_MS = 2000;
const TICKS = 6;

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export class Timeline {
  constructor(root, onSeek) {
    this.root = root;
    this.onSeek = onSeek;
    this.start = 0;
    this.end = 1;
    this.v0 = 0; // the view shown
    this.v1 = 1;
    this.rows = [];
    this.heads = [];
    this.playhead = NaN;
    this.build();
  }

  build() {
    const tools = el('div', 'tl-tools');
    const out = el('button', '', '−');
    out.type = 'button';
    out.addEventListener('click', () => this.zoom(2, this.center()));
    const inn = el('button', '', '+');
    inn.type = 'button';
    inn.addEventListener('click', () => this.zoom(0.5, this.center()));
    const fit = el('button');
    fit.type = 'button';
    fit.addEventListener('click', () => this.setView(this.start, this.end));
    this.tools = { out, inn, fit };
    this.viewLabel = el('span', 'tl-view');
    tools.append(out, inn, fit, this.viewLabel);
    this.axis = el('div', 'tl-axis');
    this.body = el('div', 'tl-rows');
    this.root.replaceChildren(tools, this.axis, this.body);
    this.body.addEventListener('wheel', (ev) => {
      const track = ev.target.closest?.('.tl-track');
      if (!track) return;
      ev.preventDefault();
      const at = this.timeAt(track, ev.clientX);
      if (ev.shiftKey) {
        const shift = (this.v1 - this.v0) * 0.1 * Math.sign(ev.deltaY || ev.deltaX);
        this.setView(this.v0 + shift, this.v1 + shift);
      } else {
        this.zoom(ev.deltaY > 0 ? 1.25 : 0.8, at);
      }
    }, { passive: false });
  }

  center() {
    return Number.isFinite(this.playhead) && this.playhead >= this.v0 && this.playhead <= this.v1 ? this.playhead : (this.v0 + this.v1) / 2;
  }

  timeAt(track, clientX) {
    const r = track.getBoundingClientRect();
    const f = Math.min(1, Math.max(0, (clientX - r.left) / Math.max(1, r.width)));
    return this.v0 + f * (this.v1 - this.v0);
  }

  // setSources shows the rows: [{source, ranges:[{start,end}]}] over [start, end].
  setSources(start, end, sources) {
    const keepView = this.start === start && this.end === end;
    this.start = start;
    this.end = end;
    this.sources = sources;
    if (!keepView) {
      this.v0 = start;
      this.v1 = end;
    }
    this.render();
  }

  zoom(factor, at) {
    const span = Math.min(this.end - this.start, Math.max(MIN_VIEW_MS, (this.v1 - this.v0) * factor));
    const f = (at - this.v0) / Math.max(1, this.v1 - this.v0);
    const v0 = at - f * span;
    this.setView(v0, v0 + span);
  }

  setView(v0, v1) {
    const span = Math.min(this.end - this.start, Math.max(MIN_VIEW_MS, v1 - v0));
    v0 = Math.min(Math.max(this.start, v0), this.end - span);
    this.v0 = v0;
    this.v1 = v0 + span;
    this.render();
  }

  pct(t) {
    return ((t - this.v0) / Math.max(1, this.v1 - this.v0)) * 100;
  }

  // render draws the view in the language in use.
  render() {
    const { out, inn, fit } = this.tools;
    out.title = tr('review.tl.zoom-out');
    out.setAttribute('aria-label', out.title);
    inn.title = tr('review.tl.zoom-in');
    inn.setAttribute('aria-label', inn.title);
    fit.textContent = tr('review.tl.whole');
    const span = this.v1 - this.v0;
    this.viewLabel.textContent = tr('review.tl.view', { from: formatClock(this.v0, false), to: formatClock(this.v1, false) });
    const ticks = [];
    for (let i = 0; i <= TICKS; i++) {
      const t = this.v0 + (span * i) / TICKS;
      const tick = el('span', 'tl-tick', formatClock(t, span < 20000));
      tick.style.left = `${(i / TICKS) * 100}%`;
      ticks.push(tick);
    }
    this.axis.replaceChildren(...ticks);
    this.heads = [];
    this.rows = (this.sources ?? []).map((s) => {
      const row = el('div', 'tl-row');
      row.dataset.source = s.source;
      const track = el('div', 'tl-track');
      track.title = tr('review.tl.track', { name: s.source });
      track.addEventListener('click', (ev) => this.onSeek(this.timeAt(track, ev.clientX)));
      let at = this.start;
      const parts = [];
      const add = (a, b, cls, label) => {
        const lo = Math.max(a, this.v0);
        const hi = Math.min(b, this.v1);
        if (hi <= lo) return;
        const d = el('div', cls);
        d.style.left = `${this.pct(lo)}%`;
        d.style.width = `${this.pct(hi) - this.pct(lo)}%`;
        d.title = tr('review.tl.part', { label, from: formatClock(a), to: formatClock(b) });
        if (cls === 'tl-gap') d.textContent = tr('review.tl.gap');
        parts.push(d);
      };
      for (const r of s.ranges) {
        if (r.start > at) add(at, r.start, 'tl-gap', tr('review.tl.gap'));
        add(r.start, r.end, 'tl-range', tr('review.tl.recorded'));
        at = Math.max(at, r.end);
      }
      if (at < this.end) add(at, this.end, 'tl-gap', tr('review.tl.gap'));
      const head = el('div', 'tl-head');
      this.heads.push(head);
      track.append(...parts, head);
      row.append(el('span', 'tl-name', s.source), track);
      return row;
    });
    this.body.replaceChildren(...this.rows);
    this.setPlayhead(this.playhead, false);
  }

  // setPlayhead moves the playhead to capture instant t; follow keeps it in view.
  setPlayhead(t, follow = true) {
    this.playhead = t;
    if (!Number.isFinite(t)) return;
    if (follow && (t < this.v0 || t > this.v1)) {
      const span = this.v1 - this.v0;
      this.setView(t - span * 0.1, t + span * 0.9);
      return;
    }
    const left = `${this.pct(t)}%`;
    for (const h of this.heads) {
      if (h.style.left !== left) h.style.left = left;
    }
  }
}
