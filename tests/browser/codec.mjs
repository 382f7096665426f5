// Opens PAGE (an hls.js page of index.html) in headless Chromium and waits
// for hls.js to report the video codec it parsed from the segments. Prints
// one JSON line: {codec, supported, advanced} where `supported` is whether
// this Chromium's Media Source Extensions take that codec and `advanced`
// whether the video's time then moved by 2 s.
import { launch } from './launch.mjs';

const [page_url, timeout_ms = '25000'] = process.argv.slice(2);
const browser = await launch();
const page = await browser.newPage();
await page.goto(page_url);
const deadline = Date.now() + Number(timeout_ms);
let codec = null;
while (Date.now() < deadline && !codec) {
  codec = await page.evaluate(() => window.videoCodec || null);
  if (!codec) await new Promise((r) => setTimeout(r, 250));
}
const supported = codec
  ? await page.evaluate((c) => MediaSource.isTypeSupported(`video/mp4; codecs="${c}"`), codec)
  : false;
let advanced = false;
if (supported) {
  let start = null;
  while (Date.now() < deadline && !advanced) {
    const t = await page.evaluate(() => document.getElementById('v').currentTime);
    if (start === null && t > 0) start = t;
    advanced = start !== null && t - start >= 2;
    await new Promise((r) => setTimeout(r, 250));
  }
}
const error = await page.evaluate(() => window.playError || null);
console.log(JSON.stringify({ codec, supported, advanced, error }));
await browser.close();
