// The navigation between the console's pages and the language switch, the same on every page:
// each page has <nav id="nav"> in its header and calls mountNav with its own name.

import { signInURL, signOut, storedToken } from './api.js';
import { LANGS, lang, register, setLang, t, translate } from './i18n.js';

export const PAGES = [
  { id: 'wall', href: 'index.html' },
  { id: 'map', href: 'map.html' },
  { id: 'call', href: 'call.html' },
  { id: 'report', href: 'report.html' },
  { id: 'review', href: 'review.html' },
  { id: 'cameras', href: 'cameras.html' },
];

register({
  en: {
    'nav.label': 'Pages',
    'nav.wall': 'Wall',
    'nav.map': 'Map',
    'nav.call': 'Call',
    'nav.report': 'Report',
    'nav.review': 'Review',
    'nav.cameras': 'Cameras',
    'nav.language': 'Language',
    'nav.sso': 'Sign in with single sign-on',
    'nav.signout': 'Sign out',
    'nav.signout.title': 'End this sign-in: the server refuses its token from now on and ends its live video',
  },
  'zh-TW': {
    'nav.label': '頁面',
    'nav.wall': '電視牆',
    'nav.map': '地圖',
    'nav.call': '通話',
    'nav.report': '回報',
    'nav.review': '回放',
    'nav.cameras': '攝影機',
    'nav.language': '語言',
    'nav.sso': '使用單一登入',
    'nav.signout': '登出',
    'nav.signout.title': '結束此次登入：伺服器自此拒絕其權杖，並結束其即時影像',
  },
});

// mountNav fills <nav id="nav"> with a link to every page (the current one marked) and the
// language switch, then translates the document.
export function mountNav(page, nav = document.getElementById('nav')) {
  if (nav) {
    nav.classList.add('nav');
    nav.setAttribute('data-i18n-attr', 'aria-label:nav.label');
    const list = document.createElement('ul');
    list.className = 'nav-list';
    for (const p of PAGES) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.className = 'nav-link';
      a.href = p.href;
      a.dataset.page = p.id;
      a.setAttribute('data-i18n', `nav.${p.id}`);
      if (p.id === page) a.setAttribute('aria-current', 'page');
      li.append(a);
      list.append(li);
    }
    const select = document.createElement('select');
    select.id = 'lang-switch';
    select.className = 'nav-lang';
    select.setAttribute('data-i18n-attr', 'aria-label:nav.language');
    for (const l of LANGS) {
      const o = document.createElement('option');
      o.value = l.code;
      o.lang = l.code;
      o.textContent = l.name;
      select.append(o);
    }
    select.value = lang();
    select.addEventListener('change', () => setLang(select.value));
    const out = document.createElement('button');
    out.type = 'button';
    out.id = 'sign-out';
    out.className = 'nav-signout';
    out.setAttribute('data-i18n', 'nav.signout');
    out.setAttribute('data-i18n-attr', 'title:nav.signout.title');
    const shown = () => {
      out.hidden = !storedToken();
    };
    shown();
    window.addEventListener('tokenchange', shown);
    out.addEventListener('click', async () => {
      out.disabled = true;
      const { endSession } = await signOut();
      window.location.assign(endSession || 'signin.html');
    });
    nav.replaceChildren(list, select, out);
  }
  // sign-in links come back to this page as it is now (its room, incident, sources…).
  for (const a of document.querySelectorAll('a.sso-link')) a.href = signInURL();
  translate(document);
  return nav;
}

// pageTitle sets the document's title from a key, now and when the language changes.
export function pageTitle(key) {
  const set = () => {
    document.title = t(key);
  };
  set();
  window.addEventListener('langchange', set);
}
