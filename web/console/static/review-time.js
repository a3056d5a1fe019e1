// Capture times on the review page: Unix milliseconds on the common baseline, shown in UTC.

function pad(n, w = 2) {
  return String(n).padStart(w, '0');
}

// formatUTC renders capture ms as "2026-12-05 03:30:05.250", or '—'.
export function formatUTC(ms) {
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(Math.round(ms));
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`;
}

// formatClock renders capture ms as "03:30:05.250" (UTC), for the timeline.
export function formatClock(ms, withMs = true) {
  const s = formatUTC(ms);
  return s === '—' ? s : s.slice(11, withMs ? 23 : 19);
}

// formatISO renders capture ms as RFC 3339 in UTC, for inputs and links.
export function formatISO(ms) {
  return Number.isFinite(ms) ? new Date(Math.round(ms)).toISOString() : '';
}

// parseTime reads an instant: Unix milliseconds, RFC 3339 with a zone, or a time of day
// "HH:MM[:SS[.mmm]]" in UTC on the day of ref. It returns NaN when s is none of these.
export function parseTime(s, ref = NaN) {
  s = `${s ?? ''}`.trim();
  if (s === '') return NaN;
  if (/^\d{9,15}$/.test(s)) return Number(s);
  const tod = /^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$/.exec(s);
  if (tod) {
    if (!Number.isFinite(ref)) return NaN;
    const d = new Date(ref);
    const ms = Number((tod[4] ?? '0').padEnd(3, '0'));
    return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), Number(tod[1]), Number(tod[2]), Number(tod[3] ?? 0), ms);
  }
  if (!/[zZ]|[+-]\d{2}:?\d{2}$/.test(s)) return NaN; // no zone: refuse to guess one
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : NaN;
}

// percentile returns the p-th percentile (0–100) of values, or NaN.
export function percentile(values, p) {
  if (!values.length) return NaN;
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}
