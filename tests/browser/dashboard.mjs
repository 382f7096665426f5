// Drives Sluice's dashboard in headless Chromium: waits until stream NAME is
// listed, plays it in the embedded player until its time advances 2 s,
// optionally saves a screenshot, then clicks the stream's "Go Away"
// button. Prints one JSON line: {listed, played, toast, logs}.
import { launch } from './launch.mjs';

const [url, name, screenshot = '', settle = '1500'] = process.argv.slice(2);
const browser = await launch();
const page = await browser.newPage({ viewport: { width: 1440, height: 860 } });
const logs = [];
page.on('console', (m) => logs.push(m.text()));
page.on('pageerror', (e) => logs.push('pageerror: ' + e.message));
const out = { listed: false, played: null, toast: null, logs };
try {
  await page.goto(url);
  const stream = page.locator(`.stream[data-stream="${name}"]`);
  await stream.waitFor({ timeout: 15000 });
  out.listed = (await stream.locator('.live-badge').count()) === 1;
  out.codec = await stream.locator('.codec').textContent();

  await stream.locator('button[data-act="play"]').click();
  const deadline = Date.now() + 20000;
  let start = null;
  while (Date.now() < deadline) {
    const t = await page.evaluate(() => document.getElementById('video').currentTime);
    if (start === null && t > 0) start = t;
    if (start !== null && t - start >= 2) {
      out.played = t;
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  // Let the sparkline and the figures fill in before the picture.
  await new Promise((r) => setTimeout(r, Number(settle)));
  if (screenshot) await page.screenshot({ path: screenshot });

  // The stream-level Go Away (not a per-client one).
  await page.locator(`.stream[data-stream="${name}"] .actions button[data-act="goaway"]`).click();
  await page.waitForFunction(() => document.getElementById('toast').textContent.includes('Go Away'), null, { timeout: 5000 });
  out.toast = await page.locator('#toast').textContent();
} catch (e) {
  out.error = String(e);
}
console.log(JSON.stringify(out));
await browser.close();
