// Launches Debian's Chromium through playwright-core for the end-to-end tests, with a fresh
// profile in a temporary directory that is removed at exit (launchBrowser, for wall.mjs), or
// for pages in fresh browser contexts (launchChromium, for wall-driver.mjs). Shared by the
// page scripts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

// Debian's chromium package; playwright-core never downloads a browser of its own.
export const CHROMIUM_PATH = '/usr/bin/chromium';

// Flags that keep Chromium headless, quiet on a machine with no network, and able to use fake
// cameras and microphones and loopback WebRTC without a prompt.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

// launchBrowser starts Chromium with a fresh --user-data-dir and returns its context, its
// first page and a close function that also removes the profile directory.
export async function launchBrowser({ timeoutMs = 30000 } = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'fieldvideo-chromium-'));
  const removeProfile = () => rmSync(userDataDir, { recursive: true, force: true });
  // also on an exit that skips close(), such as process.exit from a watchdog.
  process.on('exit', removeProfile);

  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: Math.max(1, timeoutMs),
    });
  } catch (err) {
    removeProfile();
    throw err;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      try {
        await context.close();
      } finally {
        removeProfile();
      }
    },
  };
}

// launchChromium starts Chromium for pages in browser contexts of their own
// (browser.newContext()), each fresh: no cookies, storage or cache of another context.
// Playwright gives the browser a temporary profile, removed when it closes.
export async function launchChromium({ timeoutMs = 30000 } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: Math.max(1, timeoutMs),
  });
}

// collectConsole records the page's console messages and uncaught errors, keeping the last
// limit of them, in the returned array.
export function collectConsole(page, limit = 50) {
  const messages = [];
  const push = (line) => {
    messages.push(line);
    if (messages.length > limit) messages.shift();
  };
  page.on('console', (msg) => push(`${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => push(`pageerror: ${err.message}`));
  return messages;
}

// Deadline measures a time budget from its creation.
export class Deadline {
  constructor(ms) {
    this.ms = ms;
    this.end = Date.now() + ms;
  }

  // remaining is the time left in ms, at least 1 (playwright-core reads 0 as "no timeout").
  remaining() {
    return Math.max(1, this.end - Date.now());
  }
}

// printResult writes one JSON line to stdout and sets the exit code from result.ok.
export function printResult(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = result.ok ? 0 : 1;
}
