// The console's languages: English and Traditional Chinese (Taiwan).
//
// Each page module registers its own strings at load (register), code asks for them by key (t),
// and HTML marks what to translate with data-i18n="key" (text) or
// data-i18n-attr="aria-label:key;placeholder:key2" (attributes), applied by translate(root).
// The language is the one chosen with the switch (kept in localStorage), else the browser's
// first preferred language that the console has, else English.

export const LANGS = [
  { code: 'en', name: 'English' },
  { code: 'zh-TW', name: '繁體中文' },
];

const STORAGE_KEY = 'fieldvideo.lang';
const dicts = { en: {}, 'zh-TW': {} };

// pick returns the console language for a list of preferred browser languages.
export function pick(preferred) {
  for (const p of preferred ?? []) {
    const l = String(p).toLowerCase();
    if (l === 'zh-tw' || l === 'zh-hant' || l.startsWith('zh-hant-') || l === 'zh-hk' || l === 'zh-mo') return 'zh-TW';
    if (l === 'zh' || l.startsWith('zh-')) return 'zh-TW';
    if (l === 'en' || l.startsWith('en-')) return 'en';
  }
  return 'en';
}

function stored() {
  try {
    const v = globalThis.localStorage?.getItem(STORAGE_KEY);
    return LANGS.some((x) => x.code === v) ? v : '';
  } catch {
    return '';
  }
}

const nav = globalThis.navigator;
let current = stored() || pick(nav?.languages?.length ? nav.languages : [nav?.language]);

// lang returns the language in use.
export function lang() {
  return current;
}

// setLang switches the language, keeps the choice, translates the document again and tells the
// page by a 'langchange' event on window.
export function setLang(code) {
  if (!LANGS.some((x) => x.code === code) || code === current) return;
  current = code;
  try {
    window.localStorage.setItem(STORAGE_KEY, code);
  } catch {
    // storage disabled: the choice lasts for this page.
  }
  translate(document);
  window.dispatchEvent(new CustomEvent('langchange', { detail: code }));
}

// register adds strings: { en: { key: 'text {n}' }, 'zh-TW': { key: '…' } }.
export function register(strings) {
  for (const [code, d] of Object.entries(strings)) {
    if (dicts[code]) Object.assign(dicts[code], d);
  }
}

// t returns the string of key in the language in use (English when it has none), with {name}
// replaced by vars.name.
export function t(key, vars = {}) {
  const s = dicts[current][key] ?? dicts.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

// translate applies data-i18n and data-i18n-attr under root (root included).
export function translate(root = document) {
  if (root === document) document.documentElement.lang = current;
  const els = [];
  if (root.matches?.('[data-i18n],[data-i18n-attr]')) els.push(root);
  els.push(...root.querySelectorAll('[data-i18n],[data-i18n-attr]'));
  for (const el of els) {
    const key = el.getAttribute('data-i18n');
    if (key) el.textContent = t(key);
    const attrs = el.getAttribute('data-i18n-attr');
    if (!attrs) continue;
    for (const pair of attrs.split(';')) {
      const [name, k] = pair.split(':').map((x) => x.trim());
      if (name && k) el.setAttribute(name, t(k));
    }
  }
}
