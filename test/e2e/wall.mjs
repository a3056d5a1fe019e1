// Opens a wall page in headless Chromium and waits until at least N video tiles play: each
// has a picture (videoWidth > 0) and a currentTime that advanced between two samples at
// least 500 ms apart. Prints one JSON line and exits 0 when they do, 1 otherwise.
// The timeout runs from the moment the page is requested; starting the browser has a
// separate limit of 30 s.
//
//   node test/e2e/wall.mjs --url URL --tiles N --timeout-ms T [--screenshot PATH]
//
// Output: {"ok":bool,"tiles":[{"source","width","height","currentTime","advancing"}],
//          "console":[last 50 console messages],"error":"..."}
import { parseArgs } from 'node:util';
import { collectConsole, Deadline, launchBrowser, printResult } from './browser.mjs';

const SAMPLE_GAP_MS = 500;
const POLL_MS = 100;

const result = { ok: false, tiles: [], console: [], error: '' };

function usage(msg) {
  result.error = `${msg}; usage: node wall.mjs --url URL --tiles N --timeout-ms T [--screenshot PATH]`;
  printResult(result);
  process.exit(1);
}

let opts;
try {
  opts = parseArgs({
    options: {
      url: { type: 'string' },
      tiles: { type: 'string' },
      'timeout-ms': { type: 'string' },
      screenshot: { type: 'string' },
    },
  }).values;
} catch (err) {
  usage(err.message);
}
const tiles = Number(opts.tiles);
const timeoutMs = Number(opts['timeout-ms']);
if (!opts.url) usage('--url is required');
if (!Number.isInteger(tiles) || tiles < 1) usage(`--tiles must be a whole number of at least 1, not ${opts.tiles}`);
if (!Number.isInteger(timeoutMs) || timeoutMs < 1) usage(`--timeout-ms must be a positive whole number, not ${opts['timeout-ms']}`);

// probe runs in the page at every poll. It keeps, on each video element, the last sample of
// currentTime, and marks the element advancing when currentTime grew over a sample interval
// of at least gapMs. It is true once `tiles` elements have a picture and are advancing.
function probe({ tiles, gapMs }) {
  const now = performance.now();
  let playing = 0;
  for (const v of document.querySelectorAll('video')) {
    const s = v.__wallProbe;
    if (!s) {
      v.__wallProbe = { t: now, currentTime: v.currentTime, advancing: false };
      continue;
    }
    if (now - s.t >= gapMs) {
      s.advancing = v.currentTime > s.currentTime;
      s.t = now;
      s.currentTime = v.currentTime;
    }
    if (v.videoWidth > 0 && s.advancing) playing++;
  }
  return playing >= tiles;
}

function readTiles() {
  return Array.from(document.querySelectorAll('video'), (v) => ({
    source: v.dataset.source ?? '',
    width: v.videoWidth,
    height: v.videoHeight,
    currentTime: v.currentTime,
    advancing: Boolean(v.__wallProbe?.advancing),
  }));
}

const LAUNCH_TIMEOUT_MS = 30000;

// a last resort should the browser hang.
const hardLimitMs = LAUNCH_TIMEOUT_MS + timeoutMs + 30000;
const watchdog = setTimeout(() => {
  result.ok = false;
  result.error ||= `wall.mjs did not finish within ${hardLimitMs} ms`;
  printResult(result);
  process.exit(1);
}, hardLimitMs);
watchdog.unref();

let browser;
let consoleLog = [];
try {
  browser = await launchBrowser({ timeoutMs: LAUNCH_TIMEOUT_MS });
  const { page } = browser;
  consoleLog = collectConsole(page);
  const deadline = new Deadline(timeoutMs);
  await page.goto(opts.url, { waitUntil: 'domcontentloaded', timeout: deadline.remaining() });
  try {
    await page.waitForFunction(probe, { tiles, gapMs: SAMPLE_GAP_MS }, {
      polling: POLL_MS,
      timeout: deadline.remaining(),
    });
    result.ok = true;
  } catch (err) {
    if (err?.name !== 'TimeoutError') throw err;
  }
  result.tiles = await page.evaluate(readTiles);
  if (!result.ok) {
    const playing = result.tiles.filter((t) => t.width > 0 && t.advancing).length;
    result.error = `timed out after ${timeoutMs} ms: ${playing} of ${tiles} video tiles playing ` +
      `(${result.tiles.length} video elements on the page)`;
  }
  if (opts.screenshot) await page.screenshot({ path: opts.screenshot, timeout: 10000 });
} catch (err) {
  result.ok = false;
  result.error = `${err?.message ?? err}`.split('\n')[0];
} finally {
  result.console = consoleLog.slice(-50);
  printResult(result);
  await browser?.close().catch(() => {});
  clearTimeout(watchdog);
}
