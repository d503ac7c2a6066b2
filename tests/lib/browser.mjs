// browser.mjs - headless Chromium for the browser tests: the system's
// chromium (CHROMIUM_BIN to choose another) driven by playwright-core.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/**
 * Launch headless Chromium (within 30 s): no sandbox, GPU, QUIC, first-run
 * page or background traffic. Returns playwright's Browser; close() it.
 */
export function launchChromium() {
    return chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        timeout: 30000,
    });
}
