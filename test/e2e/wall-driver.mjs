// Drives one page in headless Chromium step by step, from JSON commands on stdin, so that a
// test can change the world between checks (stop a publisher, bring it back) while the page
// stays open.
//
//   node test/e2e/wall-driver.mjs [--timeout-ms T] [--contexts]
//
// The page is the first of a browser with a fresh profile. With --contexts it is the only page
// of a browser context of its own (no disk cache), and reset closes that context, so that one
// browser serves test after test.
//
// Prints {"ready":true} once the browser runs, then one reply line per command line:
//   {"id":N,"ok":true,"value":…}  or  {"id":N,"ok":false,"error":"…","console":[…]}
// Commands, each a JSON object {"id":N,"cmd":"…",…}:
//   open {url, timeoutMs}                   load url (until DOMContentLoaded)
//   waitPlaying {source, frames, timeoutMs} wait until video[data-source=source] has a picture,
//                                           presented `frames` new frames counted from the
//                                           command's start, and its currentTime advanced;
//                                           value {source, width, height, currentTime, frames}
//   waitFor {expr, timeoutMs}               wait until the JS expression is truthy in the page;
//                                           value is its last result
//   eval {expr}                             value is the JS expression's result
//   fill {selector, value}, click {selector}, press {selector, key}
//   screenshot {path}                       save a PNG of the page
//   geolocation {latitude, longitude, accuracy}
//                                           grant the page's context the geolocation
//                                           permission and set the position it reports
//                                           (navigator.geolocation watchers see the change)
//   console                                 value is the page's last console messages
//   reset                                   (--contexts) close the page's browser context;
//                                           the next command runs in a new one, with no
//                                           cookies, storage, cache, init scripts or console
//                                           messages of the last
// The script ends at the end of its input, on SIGTERM, or after --timeout-ms in all (default
// 10 minutes), closing the browser each time.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { collectConsole, launchBrowser, launchChromium } from './browser.mjs';

const DEFAULT_STEP_MS = 20000;
const POLL_MS = 100;

function write(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

let opts;
try {
  opts = parseArgs({
    options: { 'timeout-ms': { type: 'string', default: '600000' }, contexts: { type: 'boolean', default: false } },
  }).values;
} catch (err) {
  write({ ready: false, error: `${err.message}; usage: node wall-driver.mjs [--timeout-ms T] [--contexts]` });
  process.exit(2);
}
const totalMs = Number(opts['timeout-ms']);
if (!Number.isInteger(totalMs) || totalMs < 1) {
  write({ ready: false, error: `--timeout-ms must be a positive whole number, not ${opts['timeout-ms']}` });
  process.exit(2);
}

let browser;
// The page, its console messages and, with --contexts, its browser context (none after a
// reset, until the next command opens one).
let page;
let messages = [];
let context;
let closing = false;
async function finish(code) {
  if (closing) return;
  closing = true;
  await browser?.close().catch(() => {});
  process.exit(code);
}
process.on('SIGTERM', () => finish(143));
process.on('SIGINT', () => finish(130));
const watchdog = setTimeout(() => {
  write({ ready: false, error: `wall-driver.mjs ran longer than ${totalMs} ms` });
  finish(1);
}, totalMs);
watchdog.unref();

async function openContext() {
  const ctx = await browser.newContext();
  try {
    page = await ctx.newPage();
  } catch (err) {
    await ctx.close().catch(() => {});
    throw err;
  }
  context = ctx;
  messages = collectConsole(page);
}

// reset closes the page's browser context; the next command opens a new one.
async function reset() {
  if (!opts.contexts) throw new Error('reset needs --contexts');
  const old = context;
  context = undefined;
  page = undefined;
  messages = [];
  await old?.close();
}

// countFrames makes sure the source's current video element counts presented frames into
// window.__driverFrames[source], and returns the element (or null).
function countFramesScript() {
  return `(source) => {
    const v = document.querySelector('video[data-source="' + CSS.escape(source) + '"]');
    if (!v) return null;
    window.__driverFrames ??= {};
    window.__driverFrames[source] ??= 0;
    if (!v.__driverCounting && typeof v.requestVideoFrameCallback === 'function') {
      v.__driverCounting = true;
      const onFrame = () => {
        window.__driverFrames[source]++;
        v.requestVideoFrameCallback(onFrame);
      };
      v.requestVideoFrameCallback(onFrame);
    }
    return v;
  }`;
}

async function waitPlaying(page, { source, frames = 10, timeoutMs = DEFAULT_STEP_MS }) {
  if (!source) throw new Error('waitPlaying needs a source');
  const count = countFramesScript();
  const start = await page.evaluate(`((count, source) => {
    const v = count(source);
    return { frames: window.__driverFrames?.[source] ?? 0, currentTime: v ? v.currentTime : 0 };
  })(${count}, ${JSON.stringify(source)})`);
  return poll(page, `((count, source, start, want) => {
    const v = count(source);
    if (!v) return false;
    const n = window.__driverFrames[source] - start.frames;
    if (v.videoWidth > 0 && n >= want && v.currentTime > start.currentTime) {
      return { source, width: v.videoWidth, height: v.videoHeight, currentTime: v.currentTime, frames: n };
    }
    return false;
  })(${count}, ${JSON.stringify(source)}, ${JSON.stringify(start)}, ${Number(frames)})`, timeoutMs);
}

// poll evaluates expr in the page every POLL_MS until it is truthy, and returns its value.
// It polls from here rather than with waitForFunction, which evaluates strings inside the
// page and so is refused by the console's Content-Security-Policy.
async function poll(page, expr, timeoutMs) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await page.evaluate(expr);
    if (last) return last;
    if (Date.now() >= end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${expr.length > 200 ? `${expr.slice(0, 200)}…` : expr} (last value: ${JSON.stringify(last)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function run(c) {
  const timeout = Math.max(1, c.timeoutMs ?? DEFAULT_STEP_MS);
  if (c.cmd === 'reset') return reset();
  if (opts.contexts && !context) await openContext();
  switch (c.cmd) {
    case 'open':
      await page.goto(c.url, { waitUntil: 'domcontentloaded', timeout });
      return page.url();
    case 'waitPlaying':
      return waitPlaying(page, c);
    case 'waitFor':
      return poll(page, c.expr, timeout);
    case 'eval':
      return page.evaluate(c.expr);
    case 'fill':
      await page.fill(c.selector, c.value ?? '', { timeout });
      return null;
    case 'click':
      await page.click(c.selector, { timeout });
      return null;
    case 'press':
      await page.press(c.selector, c.key, { timeout });
      return null;
    case 'initScript':
      await page.addInitScript(c.script);
      return null;
    case 'viewport':
      await page.setViewportSize({ width: c.width, height: c.height });
      return null;
    case 'geolocation': {
      const ctx = page.context();
      await ctx.grantPermissions(['geolocation']);
      await ctx.setGeolocation({ latitude: c.latitude, longitude: c.longitude, accuracy: c.accuracy ?? 10 });
      return null;
    }
    case 'screenshot':
      await page.screenshot({ path: c.path, timeout });
      return c.path;
    case 'console':
      return messages.slice();
    default:
      throw new Error(`unknown command ${JSON.stringify(c.cmd)}`);
  }
}

try {
  if (opts.contexts) {
    browser = await launchChromium({ timeoutMs: 30000 });
    await openContext();
  } else {
    browser = await launchBrowser({ timeoutMs: 30000 });
    page = browser.page;
    messages = collectConsole(page);
  }
} catch (err) {
  write({ ready: false, error: `cannot start Chromium: ${`${err?.message ?? err}`.split('\n')[0]}` });
  await browser?.close().catch(() => {});
  process.exit(1);
}
write({ ready: true });

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let c;
  try {
    c = JSON.parse(line);
  } catch (err) {
    write({ id: null, ok: false, error: `not a JSON command: ${err.message}` });
    continue;
  }
  try {
    write({ id: c.id, ok: true, value: (await run(c)) ?? null });
  } catch (err) {
    write({ id: c.id, ok: false, error: `${err?.message ?? err}`.split('\n')[0], console: messages.slice(-30) });
  }
}
await finish(0);
