// Opens PAGE in headless Chromium and waits until the video's currentTime
// has advanced by 2 s. Prints one JSON line: {ok, start, now} or {ok:false,...}.
import { launch } from './launch.mjs';

const [page_url, timeout_ms = '25000'] = process.argv.slice(2);
const browser = await launch();
const page = await browser.newPage();
const logs = [];
page.on('console', (m) => logs.push(m.text()));
page.on('pageerror', (e) => logs.push('pageerror: ' + e.message));
await page.goto(page_url);
let start = null;
let result = null;
const deadline = Date.now() + Number(timeout_ms);
while (Date.now() < deadline) {
  const t = await page.evaluate(() => document.getElementById('v').currentTime);
  if (start === null && t > 0) start = t;
  if (start !== null && t - start >= 2) {
    result = { ok: true, start, now: t };
    break;
  }
  await new Promise((r) => setTimeout(r, 250));
}
if (!result) {
  const error = await page.evaluate(() => window.playError || null);
  result = { ok: false, start, error, logs: logs.slice(-20) };
}
console.log(JSON.stringify(result));
await browser.close();
