// it_dashboard.mjs - /dashboard in headless Chromium: it follows sys.stats
// (the broker's figures, every second, only while someone listens), and the
// numbers on the page change while the test publishes; screenshots before and
// after. With access control the page needs manage, and passes its
// ?access_token= on to its stream. sys.stats is read-only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { launchChromium } from './lib/browser.mjs';
import { startBroker, uniq, chPath, evPath, tmpDir, checkError, waitFor, sleep } from './lib/broker.mjs';
import { manageAuth } from './lib/access.mjs';

const brokers = [];
let browser;

before(async () => {
    browser = await launchChromium();
});

after(async () => {
    if (browser) await browser.close();
    for (const b of brokers) if (b.alive()) assert.equal(await b.stop(), 0);
});

async function broker(config = {}) {
    const b = await startBroker({ config });
    brokers.push(b);
    return b;
}

async function openDashboard(url) {
    const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    const logs = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    page.logs = logs;
    const res = await page.goto(url, { timeout: 10000 });
    assert.equal(res.status(), 200);
    await page.waitForFunction(() => Number(document.getElementById('updates').textContent) >= 1, null,
        { timeout: 10000 }).catch((e) => {
        throw new Error(`no figures arrived: ${e.message}\nconsole: ${logs.join('\n')}`);
    });
    return page;
}

const num = async (page, id) => Number((await page.textContent(`#${id}`)).replace(/,/g, ''));

async function shot(page, name) {
    const file = path.join(tmpDir(), `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    const png = fs.readFileSync(file);
    assert.ok(png.length > 1000, `${name}: a screenshot was taken (${png.length} bytes)`);
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    return file;
}

test('the dashboard shows the broker\'s figures and they change while the test publishes', async () => {
    const b = await broker({ limits: { stream_buffer: 4096 } });
    const page = await openDashboard(`${b.url}/dashboard`);
    const status = (await b.req('GET', '/status')).json;
    assert.equal(await page.textContent('#node'), status.node.id);
    assert.equal(await page.textContent('#state'), 'open');
    assert.match(await page.textContent('#store'), /^(memory|redis) ok$/);
    assert.match(await page.textContent('#memory'), /^[0-9.]+ (B|KiB|MiB) \/ 1\.0 GiB$/, 'used against limits.max_memory');
    assert.equal(await page.$$eval('#nodes tbody tr', (rows) => rows.length) >= 1, true, 'the node is listed');
    await shot(page, 'dashboard-before');
    const before = { published: await num(page, 'published'), delivered: await num(page, 'delivered'),
        streams: await num(page, 'streams'), channels: await num(page, 'channels') };
    assert.ok(before.streams >= 1, 'its own stream is counted');

    // A subscriber and 20 messages: published, delivered, streams, channels all move.
    const ch = uniq('dash');
    const s = await b.stream(evPath(ch));
    await s.waitOpen();
    for (let i = 0; i < 20; i++) {
        const r = await b.req('POST', evPath(ch), { body: `m${i}`, headers: { 'Content-Type': 'text/plain' } });
        assert.equal(r.status, 201);
    }
    await s.waitEvents(20);
    await page.waitForFunction((p) => Number(document.getElementById('published').textContent.replace(/,/g, '')) >= p + 20,
        before.published, { timeout: 10000 });
    const afterFig = { published: await num(page, 'published'), delivered: await num(page, 'delivered'),
        streams: await num(page, 'streams'), channels: await num(page, 'channels') };
    assert.ok(afterFig.published >= before.published + 20, JSON.stringify({ before, afterFig }));
    assert.ok(afterFig.delivered >= before.delivered + 20, 'the subscriber\'s 20 deliveries');
    assert.equal(afterFig.streams, before.streams + 1, 'the subscriber\'s stream');
    assert.equal(afterFig.channels, before.channels + 1, 'its channel');
    await shot(page, 'dashboard-after');
    s.close();

    // A publish rate was seen at some point while publishing in a burst.
    const rates = [];
    for (let k = 0; k < 3 && !rates.some((r) => r > 0); k++) {
        for (let i = 0; i < 20; i++)
            await b.req('POST', evPath(ch), { body: 'burst', headers: { 'Content-Type': 'text/plain' } });
        const n0 = await num(page, 'updates');
        await page.waitForFunction((n) => Number(document.getElementById('updates').textContent) > n, n0, { timeout: 5000 });
        rates.push(await num(page, 'publish_rate'));
    }
    assert.ok(rates.some((r) => r > 0), `a publish rate above 0: ${rates}`);

    // A subscriber that never reads is cut: the page lists it.
    const slowCh = uniq('slow');
    const sock = net.connect(b.port, '127.0.0.1');
    sock.on('error', () => { /* the broker cuts it: that is the point */ });
    await new Promise((r) => sock.once('connect', r));
    sock.write(`GET ${evPath(slowCh)} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    sock.pause();
    await waitFor(async () => (await b.req('GET', chPath(slowCh))).json?.subscribers === 1, { what: 'the slow one subscribed' });
    const big = 'y'.repeat(512 * 1024);
    for (let i = 0; i < 64 && (await b.req('GET', '/health')).json.stats.slow_disconnects < 1; i++)
        assert.equal((await b.req('POST', evPath(slowCh), { body: big, headers: { 'Content-Type': 'text/plain' } })).status, 201);
    assert.equal((await b.req('GET', '/health')).json.stats.slow_disconnects, 1, 'the reader that never reads was cut');
    await page.waitForFunction(() => document.getElementById('slow').textContent === '1', null, { timeout: 5000 });
    const listed = await page.$$eval('#slow_list tbody tr', (rows) => rows.map((r) => r.cells[1].textContent));
    assert.deepEqual(listed, [slowCh], 'the recent slow disconnect, with its channel');
    await shot(page, 'dashboard-slow');
    sock.destroy();
    assert.deepEqual(page.logs.filter((l) => /error/i.test(l)), [], 'no errors in the console');
    await page.close();
});

test('sys.stats costs nothing without a listener and is read-only', async () => {
    const b = await broker();
    // Nobody listens: no channel, no message.
    assert.equal((await b.req('GET', chPath('sys.stats'))).status, 404);
    const s = await b.stream(evPath('sys.stats'));
    await s.waitEvents(2, 5000);
    const st = JSON.parse(s.events[0].data);
    assert.equal(s.events[0].event, 'stats');
    for (const k of ['node', 'time', 'channels', 'streams', 'connections', 'published', 'delivered',
        'publish_rate', 'delivery_rate', 'memory', 'store', 'slow_disconnects', 'recent_slow'])
        assert.ok(k in st, `${k} in ${s.events[0].data}`);
    checkError(assert, await b.req('POST', evPath('sys.stats'), { body: 'x', headers: { 'Content-Type': 'text/plain' } }),
        403, 'reserved_channel');
    checkError(assert, await b.req('DELETE', chPath('sys.stats')), 403, 'reserved_channel');
    s.close();
    // Once its listener left, the figures stop: the channel's last id stays.
    await waitFor(async () => (await b.req('GET', chPath('sys.stats'))).json.subscribers === 0,
        { what: 'the listener gone' });
    await sleep(1200); // a publish started before it left lands
    const last = (await b.req('GET', chPath('sys.stats'))).json.last_id;
    await sleep(2500);
    assert.equal((await b.req('GET', chPath('sys.stats'))).json.last_id, last, 'nothing published without a listener');
});

test('with access control the dashboard needs manage, and its token reaches its stream', async () => {
    const { auth, token } = manageAuth([{ match: '*', allow: ['subscribe', 'publish'] }]);
    const b = await broker({ auth });
    checkError(assert, await b.req('GET', '/dashboard'), 401, 'unauthorized');
    checkError(assert, await b.req('GET', `/dashboard?access_token=${token('alice', 'user')}`), 403, 'forbidden');
    const page = await openDashboard(`${b.url}/dashboard?access_token=${token('root', 'admin')}`);
    assert.equal(await page.textContent('#state'), 'open');
    assert.ok(await num(page, 'streams') >= 1);
    await page.waitForFunction(() => document.querySelectorAll('#nodes tbody tr').length >= 1, null, { timeout: 8000 });
    await shot(page, 'dashboard-auth');
    await page.close();
});
