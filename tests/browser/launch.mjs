// Headless Chromium as every browser test starts it: Debian's chromium (or
// $CHROMIUM), no sandbox or GPU, no background traffic, autoplay allowed.
// $TRUST_SPKI (a certificate's public-key hash) makes it accept that one
// test certificate over HTTPS, and no other.
import { chromium } from 'playwright-core';

export function launch() {
  const args = [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
  ];
  if (process.env.TRUST_SPKI) args.push(`--ignore-certificate-errors-spki-list=${process.env.TRUST_SPKI}`);
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args,
  });
}
