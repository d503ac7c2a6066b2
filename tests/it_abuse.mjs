// it_abuse.mjs - what a client acting as an adversary could do to the broker
// as a whole (issue 13), each bounded in count and time, loopback only: a
// creation storm must not flood the log; a large history read must neither
// stop the loop nor hold memory, and paging must give every event once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';

import { startBroker, uniq, chPath, evPath, sleep, HOST } from './lib/broker.mjs';

const brokers = [];
after(async () => {
    for (const b of brokers) if (b.alive()) assert.equal(await b.stop(), 0);
});

async function broker(config) {
    const b = await startBroker({ config });
    brokers.push(b);
    return b;
}

/** Create 'n' channels with a connection each; returns the names. */
async function storm(b, n) {
    const names = [];
    for (let i = 0; i < n; i++) {
        const name = uniq('storm');
        assert.equal((await b.req('PUT', chPath(name))).status, 201);
        assert.equal((await b.req('POST', `${chPath(name)}/connections`)).status, 201);
        assert.equal((await b.req('DELETE', chPath(name))).status, 204);
        names.push(name);
    }
    return names;
}

test('a creation storm logs nothing per channel or connection at info; debug still tells', async () => {
    const N = 50;
    const quiet = await broker({ log_level: 'info' });
    const before = quiet.stderr().split('\n').length;
    const names = await storm(quiet, N);
    const lines = quiet.stderr().split('\n').slice(before - 1).filter(Boolean);
    const routine = lines.filter((l) => names.some((n) => l.includes(n)));
    assert.deepEqual(routine, [], 'no line names a channel of the storm');
    assert.ok(lines.length < 5, `a handful of lines at most, got ${lines.length}:\n${lines.join('\n')}`);

    const loud = await broker({ log_level: 'debug' });
    const [name] = await storm(loud, 1);
    assert.match(loud.stderr(), new RegExp(`debug .*channel '${name}' created`));
    assert.match(loud.stderr(), new RegExp(`debug .*connection [0-9a-f]{16} created on '${name}'`));
});

/** Resident memory of a process, in KiB. */
function rssKiB(pid) {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]);
}

/** A raw client that sends 'text' and never reads what it is answered. */
function nonReader(port, text) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: HOST, port }, () => {
            sock.pause();
            sock.write(text);
            resolve(sock);
        });
        sock.on('error', () => { /* the broker may close it: fine */ });
        sock.once('error', reject);
    });
}

/** Write 'text' on a fresh connection and read until it closes (bounded). */
function rawExchange(port, text, timeout = 10000) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        const sock = net.connect({ host: HOST, port }, () => sock.write(text));
        const timer = setTimeout(() => { sock.destroy(); reject(new Error('no close within the bound')); }, timeout);
        sock.on('data', (d) => chunks.push(d));
        sock.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks)); });
        sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    });
}

const TEXT = { 'Content-Type': 'text/plain' };

test('a large history read is written as the client reads: other streams go on, memory stays bounded', async (t) => {
    // Issue 13: 100 x 1 MiB of \x01 (6 MiB of JSON each) made one read build a
    // 629 MB document on the loop, and no stream was written for 13-17 s.
    // Here the page is allowed to hold all of it (max_response 256 MiB) and
    // three clients ask for it (GET and HEAD) without reading.
    const K = 12;
    const b = await broker({ limits: { max_response: 256 * 1048576, stream_buffer: 1048576 } });
    const big = uniq('big'), other = uniq('other');
    const blob = '\x01'.repeat(1048576);
    for (let i = 0; i < K; i++)
        assert.equal((await b.req('POST', evPath(big), { body: blob, headers: TEXT })).status, 201);
    const s = await b.stream(evPath(other));
    await s.waitOpen();
    const base = rssKiB(b.pid);

    const readers = [];
    for (const method of ['GET', 'GET', 'HEAD'])
        readers.push(await nonReader(b.port, `${method} ${evPath(big)} HTTP/1.1\r\nHost: x\r\n\r\n`));
    // Meanwhile, publish to another channel and time each delivery.
    const lat = [];
    let peak = base;
    for (let i = 0; i < 20; i++) {
        const t0 = Date.now();
        const r = await b.req('POST', evPath(other), { body: `m${i}`, headers: TEXT });
        assert.equal(r.status, 201);
        await s.waitEvents(i + 1, 10000);
        lat.push(Date.now() - t0);
        peak = Math.max(peak, rssKiB(b.pid));
        await sleep(20);
    }
    const grew = peak - base, worst = Math.max(...lat);
    t.diagnostic(`publish to delivery on another channel: ${lat.join(' ')} ms (max ${worst}); RSS +${Math.round(grew / 1024)} MiB ` +
        `while 3 clients do not read a ${K * 6} MiB page`);
    // Typically 11-15 ms here (the stream is polled every 10 ms); the old
    // code stalled 7 s in this test. This is no speed test: the bound only
    // tells a stall from a delay, with room for a shared machine at load
    // average 10 (276 ms was seen there against an old 250 ms bound) and for
    // an ASan build, several times slower at everything.
    const bound = process.env.ASAN_OPTIONS === undefined ? 1000 : 3000;
    assert.ok(worst < bound, `every delivery within ${bound} ms: ${lat.join(' ')}`);
    // What the three reads hold: each at most min(stream_buffer, 256 KiB)
    // unsent plus a 16 KiB piece (the pages' messages are in history
    // anyway); 8 MiB stated for the rest. The old code built the whole
    // document: 72 MiB of text and more of JSON objects, for each read.
    if (process.env.ASAN_OPTIONS === undefined)
        assert.ok(grew < 8 * 1024, `RSS grew by ${Math.round(grew / 1024)} MiB`);
    for (const r of readers) r.destroy();
    s.close();
    assert.equal((await b.req('GET', '/health')).status, 200);
});

test('history pages: bounded in bytes and count, every event exactly once, HEAD agrees', async () => {
    const b = await broker({ limits: { max_response: 4096 }, channel_defaults: { history: 1000 } });
    const name = uniq('pages');
    // A tiny history is one page of the old shape: no "next", no Link.
    assert.equal((await b.req('POST', evPath(name), { body: 'first', headers: TEXT })).status, 201);
    const one = await b.req('GET', evPath(name));
    assert.deepEqual(Object.keys(one.json), ['events']);
    assert.equal(one.headers.link, undefined);
    // 60 more, 1 to ~3000 bytes, some escaping to six bytes a byte.
    const want = [one.json.events[0].id];
    for (let i = 0; i < 60; i++) {
        const size = 1 + ((i * 397) % 3000);
        const data = (i % 3 === 0 ? '\x01' : i % 3 === 1 ? 'é' : 'x').repeat(size);
        const r = await b.req('POST', evPath(name), { body: { data, event: i % 4 ? null : 'ev', retry: i % 5 ? undefined : i } });
        assert.equal(r.status, 201, r.text);
        want.push(r.json.id);
    }
    async function walk(q, during) {
        const got = [];
        let after = null, pages = 0;
        for (;;) {
            const qs = [q, after && `after=${after}`].filter(Boolean).join('&');
            const p = evPath(name, qs ? `?${qs}` : '');
            const r = await b.req('GET', p);
            assert.equal(r.status, 200, r.text);
            const h = await b.req('HEAD', p);
            assert.equal(h.headers['content-length'], String(Buffer.byteLength(r.text)), 'HEAD tells the length');
            assert.equal(r.headers['content-length'], String(Buffer.byteLength(r.text)));
            const ev = r.json.events;
            assert.ok(ev.length >= 1, 'a page holds at least one event');
            if (ev.length > 1) assert.ok(Buffer.byteLength(r.text) <= 4096, `a page of ${ev.length} is within max_response`);
            got.push(...ev.map((e) => e.id));
            pages++;
            if (pages === 2 && during) await during();
            if (!r.json.next) {
                assert.equal(r.headers.link, undefined, 'no Link on the last page');
                break;
            }
            assert.equal(r.json.next, ev[ev.length - 1].id, '"next" is the last id of the page');
            const link = /^<([^>]+)>; rel="next"$/.exec(r.headers.link);
            assert.ok(link, `a Link header: ${r.headers.link}`);
            const u = new URL(link[1], b.url);
            assert.equal(u.searchParams.get('after'), r.json.next);
            for (const [k, v] of new URLSearchParams(q)) assert.equal(u.searchParams.get(k), v, `Link keeps ${k}`);
            after = r.json.next;
            assert.ok(pages < 200, 'paging ends');
        }
        return { got, pages };
    }
    const bytes = await walk('');
    assert.deepEqual(bytes.got, want, 'paged by bytes: every event exactly once, in order');
    assert.ok(bytes.pages > 10, `${bytes.pages} pages`);
    // By count, with messages published while paging: they come at the end, once.
    const more = [];
    const counted = await walk('limit=7', async () => {
        for (let i = 0; i < 5; i++)
            more.push((await b.req('POST', evPath(name), { body: `late ${i}`, headers: TEXT })).json.id);
    });
    assert.deepEqual(counted.got, [...want, ...more], 'paged by count: every event exactly once');
    // The data survives the piecewise writing intact.
    const all = [];
    for (let after = null; ;) {
        const r = await b.req('GET', evPath(name, after ? `?after=${after}` : ''));
        all.push(...r.json.events);
        if (!r.json.next) break;
        after = r.json.next;
    }
    assert.equal(all[4].data, '\x01'.repeat(1 + ((3 * 397) % 3000)));
    assert.equal(all[5].event, 'ev');
    assert.equal(all[6].retry, 5);
});

test('a page larger than what is written ahead goes out whole, and a pipelined request waits for it', async () => {
    const b = await broker({ limits: { stream_buffer: 65536 } });
    const name = uniq('pipe');
    const data = '\x01'.repeat(300000); // 1.8 MB of JSON: written in many pieces
    assert.equal((await b.req('POST', evPath(name), { body: data, headers: TEXT })).status, 201);
    for (const v of ['1.1', '1.0']) {
        const raw = await rawExchange(b.port,
            `GET ${evPath(name)} HTTP/${v}\r\nHost: x\r\nConnection: keep-alive\r\n\r\n` +
            'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        const head = raw.indexOf('\r\n\r\n');
        const len = Number(/\r\nContent-Length: (\d+)\r\n/i.exec(raw.subarray(0, head).toString())[1]);
        const body = raw.subarray(head + 4, head + 4 + len);
        assert.equal(JSON.parse(body.toString()).events[0].data, data, `HTTP/${v}: the whole page`);
        const rest = raw.subarray(head + 4 + len).toString();
        assert.match(rest, /^HTTP\/1\.1 200 /, `HTTP/${v}: then the pipelined answer`);
        assert.match(rest, /"status":"ok"/);
    }
});
