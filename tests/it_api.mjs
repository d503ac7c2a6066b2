// it_api.mjs - the JSON API against a real broker: channels CRUD, publishing
// (JSON single/batch, raw text), history, health, the example page, CORS, errors.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBroker, uniq, chPath, evPath, checkError, waitFor, STORE } from './lib/broker.mjs';

const SRCDIR = process.env.TEST_SRCDIR || path.dirname(fileURLToPath(import.meta.url));
const PAGE_FILE = path.resolve(SRCDIR, '..', 'examples', 'index.html');
const DEFAULTS = { history: 100, queue_limit: 1000, retry_ms: 3000 };
let b;

before(async () => {
    b = await startBroker();
});

after(async () => {
    if (b) assert.equal(await b.stop(), 0, 'broker exit code after SIGTERM');
});

const put = (name, body) => b.req('PUT', chPath(name), body === undefined ? {} : { body });
const publish = (name, body, headers) => b.req('POST', evPath(name), { body, headers });
const history = async (name, q = '') => {
    const r = await b.req('GET', evPath(name, q));
    assert.equal(r.status, 200, `history ${name}${q}: ${r.text}`);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.ok(Array.isArray(r.json.events), `events array: ${r.text}`);
    return r.json.events;
};
const isId = (id) => typeof id === 'string' && /^[0-9]+$/.test(id);
const idLess = (a, b2) => BigInt(a) < BigInt(b2);

function assertJsonResponse(r, status, what) {
    assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
    assert.match(String(r.headers['content-type']), /^application\/json/, `${what} content-type`);
    assert.equal(r.headers['access-control-allow-origin'], '*', `${what} CORS header`);
    assert.notEqual(r.json, undefined, `${what} body is JSON: ${r.text}`);
}

describe('service routes', () => {
    test('GET /health answers {"status":"ok"}', async () => {
        const r = await b.req('GET', '/health');
        assertJsonResponse(r, 200, 'GET /health');
        // The contract shows {"status":"ok"}; extra fields (the store's state) are allowed.
        assert.equal(r.json.status, 'ok', r.text);
        // The store is the one this run asked for (SSEB_STORE), and up.
        assert.deepEqual(r.json.store, { type: STORE, state: 'up' }, r.text);
    });

    test('GET / serves the HTML example page using EventSource', async () => {
        const r = await b.req('GET', '/');
        assert.equal(r.status, 200);
        assert.match(String(r.headers['content-type']), /^text\/html/);
        assert.match(r.text, /EventSource/);
        assert.match(r.text, /<html/i);
        assert.equal(r.text, fs.readFileSync(PAGE_FILE, 'utf8'), `the page is ${PAGE_FILE}, byte for byte`);
        // The page is served with its query string too (the browser test uses it).
        const q = await b.req('GET', '/?channel=demo');
        assert.equal(q.status, 200);
        assert.equal(q.text, r.text);
    });

    test('OPTIONS answers 204 with the CORS preflight headers on any route', async () => {
        for (const p of ['/channels', '/channels/x/events', '/health', '/channels/x/connections/abc/events']) {
            const r = await b.req('OPTIONS', p, {
                headers: {
                    Origin: 'https://elsewhere.test',
                    'Access-Control-Request-Method': 'POST',
                    'Access-Control-Request-Headers': 'content-type,last-event-id',
                },
            });
            assert.equal(r.status, 204, `OPTIONS ${p}: ${r.status} ${r.text}`);
            assert.equal(r.text, '', `OPTIONS ${p} has an empty body`);
            assert.equal(r.headers['access-control-allow-origin'], '*', `OPTIONS ${p} allow-origin`);
            assert.ok(r.headers['access-control-allow-methods'], `OPTIONS ${p} allow-methods present`);
            const allowed = String(r.headers['access-control-allow-headers']).toLowerCase();
            assert.match(allowed, /content-type/, `OPTIONS ${p} allow-headers: ${allowed}`);
            assert.match(allowed, /last-event-id/, `OPTIONS ${p} allow-headers: ${allowed}`);
        }
        // OPTIONS creates nothing.
        const r = await b.req('GET', chPath('x'));
        checkError(assert, r, 404, 'channel_not_found', 'GET /channels/x after OPTIONS');
    });

    test('errors are JSON {"error":{"code","message"}} with the CORS header', async () => {
        const r1 = await b.req('GET', '/no/such/route');
        checkError(assert, r1, 404, 'not_found', 'unknown route');
        assert.equal(r1.headers['access-control-allow-origin'], '*');
        const r2 = await b.req('GET', chPath(uniq('missing')));
        checkError(assert, r2, 404, 'channel_not_found', 'missing channel');
        assert.equal(r2.headers['access-control-allow-origin'], '*');
        const r3 = await b.req('PATCH', chPath('x'));
        checkError(assert, r3, 405, 'method_not_allowed', 'PATCH channel');
        assert.match(String(r3.headers.allow), /\bGET\b/);
        assert.match(String(r3.headers.allow), /\bPUT\b/);
        assert.match(String(r3.headers.allow), /\bDELETE\b/);
    });
});

describe('HTTP framing', () => {
    // Not in the contract's route list, but HTTP itself: a response to HEAD has
    // no body, or a keep-alive client reads it as the start of the next response.
    test('HEAD responses carry no body (pipelined request still parses)', async () => {
        for (const p of ['/health', '/channels', '/nope']) {
            const raw = await new Promise((resolve, reject) => {
                const sock = net.connect(b.port, '127.0.0.1', () => {
                    sock.write(`HEAD ${p} HTTP/1.1\r\nHost: t\r\n\r\n` +
                        'GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
                });
                let d = '';
                const timer = setTimeout(() => { sock.destroy(); resolve(d); }, 3000);
                sock.setEncoding('utf8');
                sock.on('data', (c) => (d += c));
                sock.on('end', () => { clearTimeout(timer); resolve(d); });
                sock.on('error', (e) => { clearTimeout(timer); reject(e); });
            });
            const head = raw.indexOf('\r\n\r\n');
            assert.ok(head > 0, `HEAD ${p}: a header block in ${JSON.stringify(raw)}`);
            const rest = raw.slice(head + 4);
            assert.ok(rest.startsWith('HTTP/1.1 200'),
                `HEAD ${p}: the next bytes must be the pipelined GET's status line, got ${JSON.stringify(raw)}`);
        }
    });
});

describe('channels', () => {
    test('PUT creates (201) with defaults, then updates (200) keeping unspecified options', async () => {
        const name = uniq('crud');
        const r1 = await put(name);
        assertJsonResponse(r1, 201, 'PUT new channel');
        assert.deepEqual(r1.json, {
            name, options: DEFAULTS, connections: 0, subscribers: 0, last_id: null, messages: 0, evicted: 0,
        });

        const r2 = await put(name, { history: 5 });
        assertJsonResponse(r2, 200, 'PUT existing channel');
        assert.deepEqual(r2.json.options, { ...DEFAULTS, history: 5 });

        const r3 = await put(name, { retry_ms: 700, queue_limit: 9 });
        assertJsonResponse(r3, 200, 'PUT existing channel again');
        assert.deepEqual(r3.json.options, { history: 5, queue_limit: 9, retry_ms: 700 });

        const r4 = await put(name); // empty body: nothing changes
        assertJsonResponse(r4, 200, 'PUT with empty body');
        assert.deepEqual(r4.json.options, { history: 5, queue_limit: 9, retry_ms: 700 });

        const r5 = await put(name, {}); // empty object: nothing changes
        assertJsonResponse(r5, 200, 'PUT with {}');
        assert.deepEqual(r5.json.options, { history: 5, queue_limit: 9, retry_ms: 700 });

        const g = await b.req('GET', chPath(name));
        assertJsonResponse(g, 200, 'GET channel');
        assert.deepEqual(g.json, {
            name, options: { history: 5, queue_limit: 9, retry_ms: 700 },
            connections: 0, subscribers: 0, last_id: null, messages: 0, evicted: 0,
        });
    });

    test('PUT with options on create uses them, bounds are inclusive', async () => {
        const name = uniq('opts');
        const r = await put(name, { history: 0, queue_limit: 1, retry_ms: 0 });
        assertJsonResponse(r, 201, 'PUT with minimum options');
        assert.deepEqual(r.json.options, { history: 0, queue_limit: 1, retry_ms: 0 });
        const r2 = await put(name, { history: 100000, queue_limit: 100000, retry_ms: 86400000 });
        assertJsonResponse(r2, 200, 'PUT with maximum options');
        assert.deepEqual(r2.json.options, { history: 100000, queue_limit: 100000, retry_ms: 86400000 });
        // history 0: publishing works but retains nothing.
        const p = await put(name, { history: 0 });
        assert.equal(p.status, 200);
        assert.equal((await publish(name, { data: 'gone' })).status, 201);
        const g = await b.req('GET', chPath(name));
        assert.equal(g.json.messages, 0);
        assert.deepEqual(await history(name), []);
    });

    test('GET /channels lists every channel sorted by name', async () => {
        const pfx = uniq('list');
        const names = [`${pfx}-m`, `${pfx}-A`, `${pfx}-z`, `${pfx}-b.x`, `${pfx}-b:y`, `${pfx}-0_1`];
        for (const n of names) assert.equal((await put(n)).status, 201, `PUT ${n}`);
        const r = await b.req('GET', '/channels');
        assertJsonResponse(r, 200, 'GET /channels');
        assert.ok(Array.isArray(r.json.channels));
        const all = r.json.channels.map((c) => c.name);
        const sorted = [...all].sort((x, y) => (Buffer.from(x) < Buffer.from(y) ? -1 : x === y ? 0 : 1));
        assert.deepEqual(all, sorted, 'channel list is sorted by name (byte order)');
        const mine = r.json.channels.filter((c) => c.name.startsWith(pfx));
        assert.deepEqual(mine.map((c) => c.name), [...names].sort());
        for (const c of mine) {
            assert.deepEqual(Object.keys(c).sort(),
                ['connections', 'evicted', 'last_id', 'messages', 'name', 'options', 'subscribers']);
            assert.deepEqual(c.options, DEFAULTS);
        }
    });

    test('GET one channel reflects messages, last_id, subscribers and connections', async () => {
        const name = uniq('fields');
        await put(name);
        const p1 = await publish(name, { data: 'one' });
        const p2 = await publish(name, { data: 'two' });
        assert.equal(p2.status, 201);
        const s = await b.stream(evPath(name));
        await s.waitOpen();
        const c = await b.req('POST', `${chPath(name)}/connections`);
        assert.equal(c.status, 201, c.text);
        const g = await waitFor(async () => {
            const r = await b.req('GET', chPath(name));
            return r.json && r.json.subscribers === 1 && r;
        }, { what: 'subscribers = 1' });
        assertJsonResponse(g, 200, 'GET channel');
        assert.equal(g.json.messages, 2);
        assert.equal(g.json.last_id, p2.json.id);
        assert.ok(idLess(p1.json.id, p2.json.id));
        assert.equal(g.json.connections, 1);
        assert.equal(g.json.subscribers, 1);
        s.close();
        await waitFor(async () => (await b.req('GET', chPath(name))).json.subscribers === 0,
            { what: 'subscribers back to 0 after the client closed' });
    });

    test('DELETE answers 204 with an empty body, then 404', async () => {
        const name = uniq('del');
        await put(name);
        await publish(name, { data: 'x' });
        const d = await b.req('DELETE', chPath(name));
        assert.equal(d.status, 204, d.text);
        assert.equal(d.text, '');
        checkError(assert, await b.req('DELETE', chPath(name)), 404, 'channel_not_found', 'second DELETE');
        checkError(assert, await b.req('GET', chPath(name)), 404, 'channel_not_found', 'GET after DELETE');
        checkError(assert, await b.req('GET', evPath(name)), 404, 'channel_not_found', 'history after DELETE');
        const list = await b.req('GET', '/channels');
        assert.ok(!list.json.channels.some((c) => c.name === name), 'deleted channel not listed');
        // Re-creating starts from scratch: defaults, no history; ids keep growing.
        const before = await publish(uniq('other'), { data: 'y' });
        const r = await put(name);
        assert.equal(r.status, 201);
        assert.deepEqual(r.json, {
            name, options: DEFAULTS, connections: 0, subscribers: 0, last_id: null, messages: 0, evicted: 0,
        });
        const again = await publish(name, { data: 'x' });
        assert.ok(idLess(before.json.id, again.json.id), 'ids are not reused after a delete');
    });

    test('DELETE ends the live SSE streams of the channel', async () => {
        const name = uniq('delstream');
        await put(name);
        const s1 = await b.stream(evPath(name));
        const s2 = await b.stream(evPath(name));
        await s1.waitOpen();
        await s2.waitOpen();
        const other = uniq('survivor');
        const s3 = await b.stream(evPath(other));
        await s3.waitOpen();
        const d = await b.req('DELETE', chPath(name));
        assert.equal(d.status, 204);
        await s1.waitEnd();
        await s2.waitEnd();
        assert.equal(s1.endReason, 'end', 'the response finished cleanly');
        // A stream on another channel is untouched.
        const p = await publish(other, { data: 'still here' });
        assert.equal(p.status, 201);
        const ev = await s3.waitEvents(1);
        assert.equal(ev[0].data, 'still here');
        assert.equal(s3.ended, false);
        s3.close();
    });
});

describe('publish', () => {
    test('JSON single event → 201 {id, timestamp}, stored in history', async () => {
        const name = uniq('pub');
        const before = Date.now() * 1000;
        const r = await publish(name, { event: 'greet', data: 'hello' });
        const afterT = Date.now() * 1000;
        assertJsonResponse(r, 201, 'publish');
        assert.deepEqual(Object.keys(r.json).sort(), ['id', 'timestamp']);
        assert.ok(isId(r.json.id), `id is a decimal string: ${r.json.id}`);
        assert.equal(typeof r.json.timestamp, 'number');
        assert.ok(Number.isInteger(r.json.timestamp));
        assert.ok(r.json.timestamp >= before - 5e6 && r.json.timestamp <= afterT + 5e6,
            `timestamp ${r.json.timestamp} is microseconds since the epoch (now ≈ ${afterT})`);
        const ev = await history(name);
        assert.deepEqual(ev, [{ id: r.json.id, event: 'greet', data: 'hello', timestamp: r.json.timestamp }]);
        // Without "event" the type is null.
        const r2 = await publish(name, { data: 'plain' });
        assert.equal(r2.status, 201);
        const ev2 = await history(name);
        assert.equal(ev2.length, 2);
        assert.equal(ev2[1].event, null);
        assert.equal(ev2[1].data, 'plain');
        assert.ok(idLess(r.json.id, r2.json.id));
    });

    test('JSON batch → 201 {ids}, strictly increasing, applied in order', async () => {
        const name = uniq('batch');
        const batch = [
            { data: 'first' },
            { event: 'note', data: 'second' },
            { data: 'third', retry: 5000 },
            { data: { n: 4 } },
        ];
        const r = await publish(name, batch);
        assertJsonResponse(r, 201, 'batch publish');
        assert.deepEqual(Object.keys(r.json), ['ids']);
        assert.equal(r.json.ids.length, 4);
        for (const id of r.json.ids) assert.ok(isId(id), `id ${id}`);
        for (let i = 1; i < 4; i++) assert.ok(idLess(r.json.ids[i - 1], r.json.ids[i]), `ids increase: ${r.json.ids}`);
        const ev = await history(name);
        assert.deepEqual(ev.map((e) => [e.id, e.event, e.data]), [
            [r.json.ids[0], null, 'first'],
            [r.json.ids[1], 'note', 'second'],
            [r.json.ids[2], null, 'third'],
            [r.json.ids[3], null, '{"n":4}'],
        ]);
        // A batch of one is still a batch.
        const r1 = await publish(name, [{ data: 'solo' }]);
        assert.equal(r1.status, 201);
        assert.equal(r1.json.ids.length, 1);
        assert.ok(idLess(r.json.ids[3], r1.json.ids[0]));
        // A batch of exactly 1000 is accepted.
        const big = Array.from({ length: 1000 }, (_, i) => ({ data: String(i) }));
        const rb = await publish(uniq('batch1000'), big);
        assert.equal(rb.status, 201, rb.text.slice(0, 200));
        assert.equal(rb.json.ids.length, 1000);
    });

    test('ids are unique and increasing across channels', async () => {
        const a = uniq('ida'), c = uniq('idb');
        const ids = [];
        for (let i = 0; i < 6; i++) {
            const r = await publish(i % 2 ? a : c, { data: String(i) });
            assert.equal(r.status, 201);
            ids.push(r.json.id);
        }
        assert.equal(new Set(ids).size, ids.length, `unique: ${ids}`);
        for (let i = 1; i < ids.length; i++) assert.ok(idLess(ids[i - 1], ids[i]), `increasing: ${ids}`);
    });

    test('raw text body is the data; ?event= names the type', async () => {
        const name = uniq('raw');
        const r1 = await publish(name, 'hello raw', { 'Content-Type': 'text/plain' });
        assertJsonResponse(r1, 201, 'raw publish');
        assert.ok(isId(r1.json.id));
        const r2 = await b.req('POST', evPath(name, '?event=alert'), {
            body: '{"looks":"like json"}', headers: { 'Content-Type': 'text/plain; charset=utf-8' },
        });
        assertJsonResponse(r2, 201, 'raw publish with ?event=');
        const r3 = await b.req('POST', evPath(name), { body: 'no content type' });
        assertJsonResponse(r3, 201, 'raw publish without Content-Type');
        const r4 = await b.req('POST', evPath(name, '?event=multi'), {
            body: 'line1\nline2', headers: { 'Content-Type': 'application/octet-stream' },
        });
        assert.equal(r4.status, 201);
        const r5 = await b.req('POST', evPath(name), {
            body: 'caf\u00e9 \u2603', headers: { 'Content-Type': 'text/plain; charset=utf-8' },
        });
        assert.equal(r5.status, 201);
        const ev = await history(name);
        assert.deepEqual(ev.map((e) => [e.id, e.event, e.data]), [
            [r1.json.id, null, 'hello raw'],
            [r2.json.id, 'alert', '{"looks":"like json"}'],
            [r3.json.id, null, 'no content type'],
            [r4.json.id, 'multi', 'line1\nline2'],
            [r5.json.id, null, 'caf\u00e9 \u2603'],
        ]);
    });

    test('a raw body that is not UTF-8 is either rejected or kept consistently', async () => {
        // The contract does not say whether raw data must be UTF-8. Either answer
        // 400 invalid_data, or accept it and keep it visible in the JSON history.
        const name = uniq('utf8');
        const r = await b.req('POST', evPath(name), {
            body: Buffer.from([0x61, 0xff, 0xfe, 0x62]), headers: { 'Content-Type': 'text/plain' },
        });
        if (r.status === 400) {
            checkError(assert, r, 400, 'invalid_data', 'non-UTF-8 raw body');
            return;
        }
        assert.equal(r.status, 201, r.text);
        const ok = await publish(name, { data: 'valid' });
        assert.equal(ok.status, 201);
        const g = await b.req('GET', chPath(name));
        const ev = await history(name);
        assert.equal(ev.length, g.json.messages,
            `history lists every retained message (messages=${g.json.messages}): ${JSON.stringify(ev)}`);
        assert.deepEqual(ev.map((e) => e.id), [r.json.id, ok.json.id]);
    });

    test('JSON content type with parameters is still JSON', async () => {
        const name = uniq('ctparam');
        const r = await b.req('POST', evPath(name), {
            body: '{"data":"x"}', headers: { 'Content-Type': 'application/json; charset=utf-8' },
        });
        assert.equal(r.status, 201, r.text);
        const ev = await history(name);
        assert.equal(ev[0].data, 'x');
    });

    test('non-string JSON data is stored and sent as compact one-line JSON', async () => {
        const name = uniq('nonstr');
        const values = [
            [{ a: 1, b: [1, 2, { c: 'd' }] }, '{"a":1,"b":[1,2,{"c":"d"}]}'],
            [42, '42'],
            [true, 'true'],
            [[1, 'two', 3.5], '[1,"two",3.5]'],
            [{ s: 'multi\nline' }, '{"s":"multi\\nline"}'],
        ];
        const s = await b.stream(evPath(name));
        await s.waitOpen();
        // Spaces and newlines in the request body do not survive.
        const spaced = '{ "data" : {\n  "x" : 1 ,\n  "y" : [ 1 , 2 ]\n } }';
        const rs = await b.req('POST', evPath(name), { body: spaced, headers: { 'Content-Type': 'application/json' } });
        assert.equal(rs.status, 201, rs.text);
        for (const [v] of values) assert.equal((await publish(name, { data: v })).status, 201);
        const expect = ['{"x":1,"y":[1,2]}', ...values.map((v) => v[1])];
        const ev = await history(name);
        assert.deepEqual(ev.map((e) => e.data), expect);
        const got = await s.waitEvents(expect.length);
        assert.deepEqual(got.map((e) => e.dataLines), expect.map((d) => [d]), 'one data: line each');
        s.close();
    });

    test('publishing to a missing channel creates it (autocreate on)', async () => {
        const name = uniq('auto');
        checkError(assert, await b.req('GET', chPath(name)), 404, 'channel_not_found', 'before');
        const r = await publish(name, { data: 'x' });
        assert.equal(r.status, 201);
        const g = await b.req('GET', chPath(name));
        assertJsonResponse(g, 200, 'autocreated channel');
        assert.deepEqual(g.json.options, DEFAULTS);
        assert.equal(g.json.messages, 1);
        assert.equal(g.json.last_id, r.json.id);
        // Subscribing and creating a connection autocreate as well.
        const n2 = uniq('autosub');
        const s = await b.stream(evPath(n2));
        assert.equal(s.status, 200);
        await s.waitOpen();
        assert.equal((await b.req('GET', chPath(n2))).status, 200);
        s.close();
        const n3 = uniq('autoconn');
        const c = await b.req('POST', `${chPath(n3)}/connections`);
        assert.equal(c.status, 201, c.text);
        assert.equal((await b.req('GET', chPath(n3))).json.connections, 1);
    });
});

describe('history', () => {
    test('?after= and ?limit= select a window, oldest first', async () => {
        const name = uniq('hist');
        const r = await publish(name, [1, 2, 3, 4, 5].map((i) => ({ data: `m${i}` })));
        assert.equal(r.status, 201);
        const ids = r.json.ids;
        const all = await history(name);
        assert.deepEqual(all.map((e) => e.data), ['m1', 'm2', 'm3', 'm4', 'm5']);
        for (const e of all) {
            assert.deepEqual(Object.keys(e).sort(), ['data', 'event', 'id', 'timestamp']);
            assert.equal(typeof e.timestamp, 'number');
        }
        for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].timestamp <= all[i].timestamp);

        const after2 = await history(name, `?after=${ids[1]}`);
        assert.deepEqual(after2.map((e) => e.id), ids.slice(2));
        const lim2 = await history(name, '?limit=2');
        assert.deepEqual(lim2.map((e) => e.id), ids.slice(0, 2));
        const both = await history(name, `?after=${ids[0]}&limit=2`);
        assert.deepEqual(both.map((e) => e.id), ids.slice(1, 3));
        const last = await history(name, `?after=${ids[4]}`);
        assert.deepEqual(last, []);
        const unknown = await history(name, '?after=999999999999');
        assert.deepEqual(unknown.map((e) => e.id), ids, 'unknown after id → everything');
        const big = await history(name, '?limit=100000');
        assert.equal(big.length, 5);
        // Explicit JSON Accept header also gets JSON.
        const j = await b.req('GET', evPath(name), { headers: { Accept: 'application/json' } });
        assert.equal(j.status, 200);
        assert.equal(j.json.events.length, 5);
    });

    test('history is bounded by the channel option, oldest dropped', async () => {
        const name = uniq('bound');
        await put(name, { history: 3 });
        const ids = [];
        for (let i = 1; i <= 5; i++) ids.push((await publish(name, { data: `m${i}` })).json.id);
        const ev = await history(name);
        assert.deepEqual(ev.map((e) => [e.id, e.data]), [[ids[2], 'm3'], [ids[3], 'm4'], [ids[4], 'm5']]);
        const g = await b.req('GET', chPath(name));
        assert.equal(g.json.messages, 3);
        assert.equal(g.json.last_id, ids[4]);
        // Shrinking history trims it.
        await put(name, { history: 1 });
        const ev2 = await history(name);
        assert.deepEqual(ev2.map((e) => e.data), ['m5']);
    });

    test('bad after/limit values → 400 invalid_id', async () => {
        const name = uniq('badq');
        await publish(name, { data: 'x' });
        for (const q of ['?limit=0', '?limit=-1', '?limit=abc', '?limit=100001', '?limit=1.5']) {
            checkError(assert, await b.req('GET', evPath(name, q)), 400, 'invalid_id', `history ${q}`);
        }
    });

    test('history of a missing channel is 404 and does not create it', async () => {
        const name = uniq('nohist');
        checkError(assert, await b.req('GET', evPath(name)), 404, 'channel_not_found', 'history');
        checkError(assert, await b.req('GET', chPath(name)), 404, 'channel_not_found', 'channel');
    });
});
