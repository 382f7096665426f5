// Opens PAGE (an hls.js page on a master playlist) in headless Chromium,
// waits for the levels and for playback, then asks hls.js for each level in
// turn and waits until it has switched to it with the video time still
// advancing. Prints one JSON line: {ok, levels, switched} or {ok:false,...}.
import { launch } from './launch.mjs';

const [page_url, timeout_ms = '40000'] = process.argv.slice(2);
const browser = await launch();
const page = await browser.newPage();
const logs = [];
page.on('console', (m) => logs.push(m.text()));
page.on('pageerror', (e) => logs.push('pageerror: ' + e.message));
await page.goto(page_url);
const deadline = Date.now() + Number(timeout_ms);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const state = () =>
  page.evaluate(() => ({
    t: document.getElementById('v').currentTime,
    levels: window.levels || null,
    switched: window.switched || [],
    error: window.playError || null,
  }));
let s = await state();
while (Date.now() < deadline && !(s.levels && s.t > 0)) {
  await sleep(200);
  s = await state();
}
const done = [];
let ok = !!(s.levels && s.t > 0);
if (ok) {
  for (let level = s.levels.length - 1; level >= 0 && ok; level--) {
    await page.evaluate((l) => { window.hls.currentLevel = l; }, level);
    const t0 = (await state()).t;
    ok = false;
    while (Date.now() < deadline) {
      s = await state();
      if (s.switched.includes(level) && s.t > t0 + 0.5) {
        ok = true;
        done.push(level);
        break;
      }
      await sleep(200);
    }
    // The next request must not find this one in the list already.
    await page.evaluate(() => { window.switched = []; });
  }
}
s = await state();
console.log(JSON.stringify({ ok, levels: s.levels, switched: done, error: s.error, logs: ok ? [] : logs.slice(-20) }));
await browser.close();
