// it_browser.mjs - the example page in headless Chromium: it shows published
// messages, publishes through its form, and after the broker ends its stream
// the browser's EventSource reconnects by itself and shows what it missed.
// And a page on another origin whose EventSource, opened withCredentials,
// sends the token cookie and receives only what its user may read.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { launchChromium } from './lib/browser.mjs';
import http from 'node:http';
import { startBroker, uniq, chPath, evPath, waitFor, HOST } from './lib/broker.mjs';
import { makeKeys, mint, sha256hex } from './lib/jwt.mjs';

const SRCDIR = process.env.TEST_SRCDIR || path.dirname(fileURLToPath(import.meta.url));
const PAGE_FILE = path.resolve(SRCDIR, '..', 'examples', 'index.html');

let b, browser;

before(async () => {
    // retry_ms applies to channels (re)created by autocreate too: fast reconnects.
    b = await startBroker({ config: { channel_defaults: { retry_ms: 500 } } });
    browser = await launchChromium();
});

after(async () => {
    if (browser) await browser.close();
    if (b) assert.equal(await b.stop(), 0, 'broker exit code after SIGTERM');
});

async function publish(ch, body, query = '') {
    const r = await b.req('POST', evPath(ch, query), { body });
    assert.equal(r.status, 201, `publish: ${r.status} ${r.text}`);
    return r.json;
}

/** The page's messages as [id, event, text-of-data]. */
const shown = (page) => page.$$eval('li.msg', (els) =>
    els.map((el) => [el.dataset.id, el.dataset.event, el.querySelector('.data').textContent]));

async function waitShown(page, n, what) {
    await page.waitForFunction((k) => document.querySelectorAll('li.msg').length >= k, n, { timeout: 10000 })
        .catch(async (e) => { throw new Error(`${what}: ${e.message}\nshown: ${JSON.stringify(await shown(page))}`); });
    return shown(page);
}

async function openPage(url) {
    const page = await browser.newPage();
    const logs = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    page.logs = logs;
    await page.goto(url, { timeout: 10000 });
    await page.waitForSelector('#state.open', { timeout: 10000 }).catch((e) => {
        throw new Error(`page never reached state "open": ${e.message}\nconsole: ${logs.join('\n')}`);
    });
    return page;
}

test('the served example page shows messages and survives a server-side disconnect', async () => {
    const ch = uniq('browser');
    const page = await openPage(`${b.url}/?channel=${encodeURIComponent(ch)}&events=greet`);
    assert.equal(await page.textContent('#channel'), ch);
    await waitFor(async () => (await b.req('GET', chPath(ch))).json?.subscribers === 1, { what: 'the page subscribed' });

    const p1 = await publish(ch, { data: 'hello browser' });
    const p2 = await publish(ch, { event: 'greet', data: 'named <b>not bold</b>' });
    const p3 = await publish(ch, 'raw text', '?event=ignored-type');
    let list = await waitShown(page, 2, 'first two messages');
    assert.deepEqual(list.slice(0, 2), [
        [p1.id, 'message', 'hello browser'],
        [p2.id, 'greet', 'named <b>not bold</b>'],
    ]);
    assert.equal(await page.$$eval('li.msg b', (x) => x.length), 0, 'data is shown as text, not HTML');
    // A type the page did not listen to: EventSource does not deliver it, but
    // the jump in ids makes the page read the history, which has it, in order.
    const p4 = await publish(ch, { data: 'after raw' });
    list = await waitShown(page, 4, 'the unknown type and the next message');
    assert.deepEqual(list.slice(2, 4), [[p3.id, 'ignored-type', 'raw text'], [p4.id, 'message', 'after raw']]);
    // From then on it listens to that type too.
    const p5 = await publish(ch, 'raw again', '?event=ignored-type');
    list = await waitShown(page, 5, 'the type, now known');
    assert.deepEqual(list[4], [p5.id, 'ignored-type', 'raw again']);

    // The server ends the stream: DELETE the channel. Publish while the page is
    // disconnected (autocreate recreates the channel), before its retry (500 ms) elapses.
    assert.equal((await b.req('DELETE', chPath(ch))).status, 204);
    const missed = await publish(ch, [{ data: 'missed one' }, { event: 'greet', data: 'missed two' }]);
    const chan = await b.req('GET', chPath(ch));
    assert.equal(chan.json.subscribers, 0, 'published while the browser was disconnected');

    // EventSource reconnects by itself with an unknown Last-Event-ID: all retained replay.
    list = await waitShown(page, 7, 'messages missed while disconnected');
    assert.deepEqual(list.slice(5), [
        [missed.ids[0], 'message', 'missed one'],
        [missed.ids[1], 'greet', 'missed two'],
    ]);
    await page.waitForSelector('#state.open', { timeout: 10000 });
    const live = await publish(ch, { data: 'live again' });
    list = await waitShown(page, 8, 'live message after reconnect');
    assert.deepEqual(list[7], [live.id, 'message', 'live again']);
    assert.equal(list.length, 8, `no duplicates: ${JSON.stringify(list)}`);
    assert.ok(!page.logs.some((l) => l.startsWith('pageerror')), page.logs.join('\n'));
    await page.close();
});

test('the page publishes through its form', async () => {
    const ch = uniq('form');
    // No ?events=: the type typed in the form is listened to before it is published.
    const page = await openPage(`${b.url}/?channel=${encodeURIComponent(ch)}`);
    await waitFor(async () => (await b.req('GET', chPath(ch))).json?.subscribers === 1, { what: 'the page subscribed' });
    await page.fill('#publish input[name=data]', 'typed in the form');
    await page.click('#publish button');
    await page.waitForFunction(() => /published id \d+/.test(document.querySelector('#result').textContent),
        null, { timeout: 10000 });
    await page.fill('#publish input[name=event]', 'shout');
    await page.fill('#publish input[name=data]', 'LOUD');
    await page.click('#publish button');
    const list = await waitShown(page, 2, 'form messages');
    assert.deepEqual(list.map(([, ev, d]) => [ev, d]), [['message', 'typed in the form'], ['shout', 'LOUD']]);
    const h = await b.req('GET', evPath(ch));
    assert.deepEqual(h.json.events.map((e) => [e.event, e.data]), [[null, 'typed in the form'], ['shout', 'LOUD']]);
    await page.close();
});

test('first run: the page follows "news", shows what is retained, fits a phone, has an icon', async () => {
    // What the README publishes, before the page opens.
    const before = await publish('news', [{ data: 'hello world' }, { event: 'score', data: { home: 2, away: 1 } }]);
    const page = await browser.newPage({ viewport: { width: 390, height: 800 } });
    const logs = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('requestfailed', (r) => logs.push(`failed: ${r.url()}`));
    await page.goto(`${b.url}/`, { timeout: 10000 });
    await page.waitForSelector('#state.open', { timeout: 10000 });
    assert.equal(await page.textContent('#channel'), 'news', 'the README\'s channel');
    let list = await waitShown(page, 2, 'the retained messages');
    assert.deepEqual(list.slice(-2), [
        [before.ids[0], 'message', 'hello world'],
        [before.ids[1], 'score', '{"home":2,"away":1}'],
    ], 'shown on load, whatever their type');
    // The score type was found in the history: live ones show too.
    const live = await publish('news', { event: 'score', data: { home: 3, away: 1 } });
    list = await waitShown(page, list.length + 1, 'a live score');
    assert.deepEqual(list.at(-1), [live.id, 'score', '{"home":3,"away":1}']);
    // Headless Chromium asks for no tab icon: the page asks, as a browser's tab would.
    const icon = await page.evaluate(() => fetch('/favicon.ico').then((r) => [r.status, r.headers.get('content-type')]));
    assert.deepEqual(icon, [200, 'image/svg+xml'], 'the icon is served');
    // Nothing is cut off at 390 px: the form's button and inputs are inside the viewport.
    for (const sel of ['#publish button', '#publish input[name=data]', '#publish input[name=event]']) {
        const box = await page.locator(sel).boundingBox();
        assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${sel} fits: ${JSON.stringify(box)}`);
    }
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `no horizontal scrolling: ${wide}`);
    assert.ok(!logs.some((l) => /^(error|failed)/.test(l)), `no console errors: ${logs.join('\n')}`);
    await page.close();
});

test('the page opened as a file talks to ?broker= (CORS)', async () => {
    assert.ok(fs.existsSync(PAGE_FILE), `example page at ${PAGE_FILE}`);
    const ch = uniq('file');
    const url = `${pathToFileURL(PAGE_FILE).href}?broker=${encodeURIComponent(b.url)}&channel=${encodeURIComponent(ch)}`;
    const page = await openPage(url);
    assert.equal(await page.textContent('#url'), `${b.url}/channels/${ch}/events`);
    const p = await publish(ch, { data: 'cross-origin' });
    const list = await waitShown(page, 1, 'message on the file page');
    assert.deepEqual(list[0], [p.id, 'message', 'cross-origin']);
    // The form's JSON POST needs a CORS preflight (OPTIONS) to pass.
    await page.fill('#publish input[name=data]', 'from file');
    await page.click('#publish button');
    await page.waitForFunction(() => /published id \d+/.test(document.querySelector('#result').textContent),
        null, { timeout: 10000 }).catch(async (e) => {
        throw new Error(`${e.message}\nresult: ${await page.textContent('#result')}\nconsole: ${page.logs.join('\n')}`);
    });
    const list2 = await waitShown(page, 2, 'form message on the file page');
    assert.equal(list2[1][2], 'from file');
    await page.close();
});

test('an EventSource withCredentials from another origin: the cookie identifies, CORS lets it read', async () => {
    const keys = makeKeys();
    const apikey = 'browser-test-backend-key';
    // The application: another origin (another port) that sets the token cookie
    // (host-only, so the browser also sends it to the broker's port) and opens
    // EventSources on the broker.
    const token = mint(keys.hs, { sub: 'alice', role: 'user' }, { expIn: 600 });
    let brokerUrl = '';
    const app = http.createServer((rq, rs) => {
        if (rq.url !== '/app') { rs.writeHead(404).end(); return; }
        rs.writeHead(200, { 'Content-Type': 'text/html', 'Set-Cookie': `ssebroker_token=${token}; Path=/; SameSite=Lax` });
        rs.end(`<!doctype html><meta charset="utf-8"><title>app</title><script>
            const B = ${JSON.stringify(brokerUrl)};
            window.got = { mine: [], bobs: [], plain: [] };
            window.es = {
                mine: new EventSource(B + '/channels/user.alice.feed/events', { withCredentials: true }),
                bobs: new EventSource(B + '/channels/user.bob.feed/events', { withCredentials: true }),
                plain: new EventSource(B + '/channels/user.alice.feed/events'),
            };
            for (const k of Object.keys(window.es)) window.es[k].onmessage = (e) => window.got[k].push(e.data);
        </script>`);
    });
    await new Promise((r) => app.listen(0, HOST, r));
    const origin = `http://${HOST}:${app.address().port}`;
    const ab = await startBroker({
        config: {
            cors_origin: [origin, 'https://other.example'],
            auth: {
                roles: {
                    user: [{ match: 'user.{sub}.*', allow: ['subscribe'] }],
                    backend: [{ match: '*', allow: ['publish', 'subscribe', 'history', 'manage'] }],
                },
                jwt: { keys: [{ alg: 'HS256', secret: keys.hs.secret }] },
                api_keys: [{ name: 'svc', role: 'backend', sha256: sha256hex(apikey) }],
            },
        },
    });
    brokerUrl = ab.url;
    const page = await browser.newPage();
    try {
        const logs = [];
        page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
        await page.goto(`${origin}/app`, { timeout: 10000 });
        const state = () => page.evaluate(() => Object.fromEntries(
            Object.entries(window.es).map(([k, e]) => [k, e.readyState])));
        // With the cookie, alice's own channel opens; bob's is a 403 and the
        // browser gives up (CLOSED); without credentials no cookie, a 401, CLOSED.
        await waitFor(async () => {
            const st = await state();
            return st.mine === 1 && st.bobs === 2 && st.plain === 2 && st;
        }, { timeout: 10000, what: `states open/closed/closed; console: ${logs.join('; ')}` });
        const key = { 'X-API-Key': apikey };
        await waitFor(async () => (await ab.req('GET', chPath('user.alice.feed'), { headers: key })).json?.subscribers === 1,
            { what: 'alice subscribed' });
        assert.equal((await ab.req('POST', evPath('user.bob.feed'), { headers: key, body: 'for bob' })).status, 201);
        assert.equal((await ab.req('POST', evPath('user.alice.feed'), { headers: key, body: 'for alice' })).status, 201);
        await page.waitForFunction(() => window.got.mine.length >= 1, null, { timeout: 10000 });
        const got = await page.evaluate(() => window.got);
        assert.deepEqual(got, { mine: ['for alice'], bobs: [], plain: [] });
    } finally {
        await page.close();
        await new Promise((r) => app.close(r));
        assert.equal(await ab.stop(), 0);
    }
});
