// The name a report is published under, from the reporter's token: report-<reporter>-<UTC time>,
// or the first form of it that one of the token's Publish entries allows. An entry holding {sub}
// stands for the token's subject written as the SFU writes it (subjectName): a responder granted
// report-{sub}-* publishes report-<subjectName(sub)>-<UTC time>.

// SOURCE_NAME is the SFU's rule for source names.
const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SUBJECT = '{sub}';

// reporterName is the name a token's holder reports under.
export function reporterName(claims) {
  for (const k of ['name', 'preferred_username', 'sub']) {
    if (typeof claims[k] === 'string' && claims[k].trim()) return claims[k].trim();
  }
  return '';
}

// globMatch tells whether name matches a shell pattern as the SFU reads Publish entries.
export function globMatch(pattern, name) {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) return false;
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('!') || cls.startsWith('^')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) {
      re += pattern[++i].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  try {
    return new RegExp(`^${re}$`).test(name);
  } catch {
    return false;
  }
}

// slug turns a reporter's name into letters, digits, '.', '_' and '-' (a short hash of it when
// nothing of it is left, as for a name in Chinese characters).
export function slug(who) {
  const s = String(who).normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-').replace(/^[-._]+|[-._]+$/g, '').replace(/-{2,}/g, '-');
  if (s) return s.slice(0, 24).replace(/[-._]+$/, '');
  let h = 2166136261;
  for (const ch of String(who)) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
  return `r${h.toString(36)}`;
}

// subjectName writes a token's subject as the SFU's auth.SubjectName does: as it is when it is
// up to 24 lower-case letters, digits and dots (starting with a letter or digit); otherwise up to
// 12 characters of it, '_' and a hash of it. It never holds '-'.
export function subjectName(sub) {
  const s = String(sub);
  if (/^[a-z0-9][a-z0-9.]{0,23}$/.test(s)) return s;
  const stem = s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9]+/g, '.').replace(/^\.+|\.+$/g, '').slice(0, 12).replace(/\.+$/, '');
  let h = 2166136261;
  for (const ch of s) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
  return `${stem}_${h.toString(36)}`;
}

function stamp(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

// grants returns the token's Publish entries with {sub} written out; an entry with {sub} in a
// token without a subject grants nothing. own tells the entry names the reporter already.
function grants(claims) {
  const sub = typeof claims.sub === 'string' && claims.sub ? subjectName(claims.sub) : '';
  const out = [];
  for (const p of Array.isArray(claims.pub) ? claims.pub : []) {
    if (typeof p !== 'string') continue;
    if (!p.includes(SUBJECT)) out.push({ pattern: p, own: false });
    else if (sub) out.push({ pattern: p.replaceAll(SUBJECT, sub), own: true });
  }
  return out;
}

// sourceName makes the name a report is published under.
export function sourceName(claims, date = new Date()) {
  const time = stamp(date);
  const tail = `${slug(reporterName(claims) || 'reporter')}-${time}`;
  const pub = grants(claims);
  const candidates = [`report-${tail}`, tail];
  for (const { pattern: p, own } of pub) {
    const star = p.indexOf('*');
    if (star === p.length - 1 && !/[?[\\]/.test(p)) {
      const prefix = p.slice(0, -1);
      const sep = prefix && /[A-Za-z0-9]$/.test(prefix) ? '-' : '';
      candidates.push(`${prefix}${sep}${own ? time : tail}`);
    }
  }
  for (const { pattern: p } of pub) if (!/[*?[\\]/.test(p)) candidates.push(p);
  const valid = candidates.map((c) => c.slice(0, 64)).filter((c) => SOURCE_NAME.test(c));
  return valid.find((c) => pub.some(({ pattern: p }) => globMatch(p, c))) ?? valid[0];
}
