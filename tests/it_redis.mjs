// it_redis.mjs - the Redis store: state survives a broker restart (SIGTERM and
// kill -9), Redis lost and back under load, two brokers one after the other on
// one Redis, the documented key layout, and bad store settings at start-up.
//
// Every test starts its own redis-server (tests/lib/redis.mjs) and broker(s).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
    startBroker, runBroker, uniq, chPath, evPath, waitFor, checkError, tempFile,
} from './lib/broker.mjs';
import { startRedis, pairs } from './lib/redis.mjs';

const cleanups = [];
after(async () => {
    // Stop everything; then report the first failure (e.g. a sanitizer report
    // found by a broker's stop() after a test that failed before stopping it).
    const errors = [];
    for (const f of cleanups.reverse()) await f().catch((e) => errors.push(e));
    if (errors.length) throw errors[0];
});

/** A private redis for one test, stopped in after(). */
async function redis() {
    const r = await startRedis();
    cleanups.push(() => r.stop());
    return r;
}

/** A broker on 'r' (config store), closed in after() if the test did not. */
async function broker(r, { store = {}, ...config } = {}) {
    const b = await startBroker({ config: { store: { type: 'redis', url: r.url, ...store }, ...config } });
    cleanups.push(async () => { if (b.alive()) await b.stop(); });
    return b;
}

const big = (id) => BigInt(id);
const maxId = (ids) => ids.reduce((m, x) => (big(x) > m ? big(x) : m), 0n);

async function publish(b, name, body) {
    const r = await b.req('POST', evPath(name), { body });
    assert.equal(r.status, 201, `publish to ${name}: ${r.status} ${r.text}`);
    return r.json.id;
}
async function publishN(b, name, n, tag = 'm') {
    const ids = [];
    for (let i = 0; i < n; i++) ids.push(await publish(b, name, { data: `${tag}${i}` }));
    return ids;
}
async function getJson(b, p, status = 200) {
    const r = await b.req('GET', p);
    assert.equal(r.status, status, `GET ${p}: ${r.status} ${r.text}`);
    return r.json;
}
const history = (b, name) => getJson(b, evPath(name)).then((j) => j.events);
const connPath = (name, id = '') => `${chPath(name)}/connections${id ? `/${id}` : ''}`;

test('a. a restarted broker restores channels, options, connections, queues and history', async () => {
    const r = await redis();
    const name = uniq('restore');
    let b = await startBroker({ args: ['--store', r.url] });

    const put = await b.req('PUT', chPath(name), { body: { history: 5, queue_limit: 3, retry_ms: 1234 } });
    assert.equal(put.status, 201, put.text);
    const early = await publishN(b, name, 7, 'h');
    assert.equal((await getJson(b, chPath(name))).messages, 5, 'only 5 retained');

    const c1 = (await b.req('POST', connPath(name))).json;
    const c2 = (await b.req('POST', connPath(name))).json;
    assert.ok(c1?.id && c2?.id && c1.id !== c2.id, 'two connections created');
    const st = await b.req('POST', `${connPath(name, c2.id)}/stop`);
    assert.equal(st.status, 200, st.text);
    assert.equal(st.json.listener, 'stopped');

    // c1 attached while 5 are published (drained to its stream), c2 stopped: 3 kept, 2 dropped.
    const s1 = await b.stream(`${connPath(name, c1.id)}/events`);
    assert.equal(s1.status, 200);
    await s1.waitOpen();
    const mid = await publishN(b, name, 5, 'q');
    await s1.waitEvents(5);
    s1.close();
    await waitFor(async () => (await getJson(b, connPath(name, c1.id))).attached === false,
        { timeout: 3000, what: 'c1 detached' });
    // One more: c1 (detached) queues it, c2 drops one more.
    const last = await publish(b, name, { data: 'tail' });
    const allIds = [...early, ...mid, last];
    // c3 is attached when the broker stops: it must come back detached.
    const c3 = (await b.req('POST', connPath(name))).json;
    const s3 = await b.stream(`${connPath(name, c3.id)}/events`);
    assert.equal(s3.status, 200);
    await s3.waitOpen();
    await waitFor(async () => (await getJson(b, connPath(name, c3.id))).attached === true,
        { timeout: 3000, what: 'c3 attached' });

    const chBefore = await getJson(b, chPath(name));
    const connsBefore = await getJson(b, connPath(name));
    const histBefore = await history(b, name);
    const byId = Object.fromEntries(connsBefore.connections.map((c) => [c.id, c]));
    assert.deepEqual({ ...byId[c1.id] }, { id: c1.id, channel: name, listener: 'running', attached: false, queue_length: 1, dropped: 0 });
    assert.deepEqual({ ...byId[c2.id] }, { id: c2.id, channel: name, listener: 'stopped', attached: false, queue_length: 3, dropped: 3 });
    assert.deepEqual({ ...byId[c3.id] }, { id: c3.id, channel: name, listener: 'running', attached: true, queue_length: 0, dropped: 0 });
    assert.equal(chBefore.last_id, last);
    assert.equal(chBefore.connections, 3);
    assert.equal(chBefore.subscribers, 1);
    assert.equal(histBefore.length, 5);

    assert.equal(await b.stop(), 0, 'exit code after SIGTERM');
    await s3.waitEnd(3000);
    byId[c3.id].attached = false; // comes back detached
    chBefore.subscribers = 0;
    b = await startBroker({ args: ['--store', r.url] });
    cleanups.push(async () => { if (b.alive()) await b.stop(); });

    assert.deepEqual(await getJson(b, chPath(name)), chBefore, 'channel after restart');
    const connsAfter = await getJson(b, connPath(name));
    const sortById = (l) => [...l].sort((x, y) => (x.id < y.id ? -1 : 1));
    assert.deepEqual(sortById(connsAfter.connections), sortById(connsBefore.connections), 'connections after restart');
    assert.deepEqual(await history(b, name), histBefore, 'history JSON after restart');

    // The stopped connection's queue really is the 3 newest messages.
    const s2 = await b.stream(`${connPath(name, c2.id)}/events`);
    assert.equal(s2.status, 200);
    await s2.waitOpen();
    const st2 = await b.req('POST', `${connPath(name, c2.id)}/start`);
    assert.equal(st2.status, 200, st2.text);
    const ev2 = await s2.waitEvents(3);
    assert.deepEqual(ev2.map((e) => e.id), allIds.slice(-3), 'queued messages of c2 after restart');
    assert.deepEqual(ev2.map((e) => e.data), ['q3', 'q4', 'tail']);
    s2.close();

    const fresh = await publish(b, name, { data: 'after restart' });
    assert.ok(big(fresh) > maxId(allIds), `new id ${fresh} > every earlier id (max ${maxId(allIds)})`);
    assert.equal(await b.stop(), 0);
});

test('b. kill -9 during a publish stream: every acknowledged message survives', async (t) => {
    const r = await redis();
    const name = uniq('kill9');
    const b = await broker(r, { store: { sync: true } });
    assert.equal((await b.req('PUT', chPath(name), { body: { history: 100000 } })).status, 201);

    const acked = []; // ids that got 201, per worker in order
    const perWorker = [[], [], [], []];
    const t0 = Date.now();
    let killed = false;
    const worker = async (w) => {
        for (let i = 0; i < 100000 && Date.now() - t0 < 1500; i++) {
            let res;
            try {
                res = await b.req('POST', evPath(name), { body: { data: `w${w}-${i}` }, timeout: 3000 });
            } catch {
                if (killed) return; // connection refused/reset after the kill
                throw new Error('publish failed before the kill');
            }
            if (res.status === 201) { acked.push(res.json.id); perWorker[w].push(res.json.id); }
            else if (!killed) assert.fail(`publish before the kill: ${res.status} ${res.text}`);
        }
    };
    const workers = perWorker.map((_, w) => worker(w));
    await waitFor(() => Date.now() - t0 >= 1000 && acked.length >= 10, { timeout: 5000, what: 'publishes acknowledged for 1 s' });
    killed = true;
    process.kill(b.pid, 'SIGKILL');
    const ex = await b.exited;
    assert.equal(ex.signal, 'SIGKILL');
    await Promise.all(workers);
    for (const ids of perWorker) {
        for (let i = 1; i < ids.length; i++) assert.ok(big(ids[i]) > big(ids[i - 1]), 'ids increase per sequential worker');
    }
    assert.ok(acked.length >= 10, `acknowledged ${acked.length}`);

    const b2 = await broker(r);
    const hist = await history(b2, name);
    t.diagnostic(`${acked.length} publishes acknowledged before the kill, ${hist.length} in the history after it`);
    const hids = hist.map((e) => e.id);
    const inHist = new Set(hids);
    const lost = acked.filter((id) => !inHist.has(id));
    assert.deepEqual(lost, [], `acknowledged ids missing after kill -9 (${acked.length} acked, ${hids.length} in history)`);
    for (let i = 1; i < hids.length; i++) assert.ok(big(hids[i]) > big(hids[i - 1]), `history ascending at ${i}: ${hids[i - 1]}, ${hids[i]}`);
    assert.equal((await getJson(b2, chPath(name))).last_id, hids[hids.length - 1]);

    // Resume from an early acknowledged id: every later message, in order, once.
    const sorted = [...acked].sort((x, y) => (big(x) < big(y) ? -1 : 1));
    const from = sorted[Math.min(2, sorted.length - 1)];
    const expect = hids.filter((id) => big(id) > big(from));
    const s = await b2.stream(evPath(name), { headers: { 'Last-Event-ID': from } });
    assert.equal(s.status, 200);
    await s.waitEvents(expect.length, 10000);
    const got = s.events.map((e) => e.id);
    assert.deepEqual(got, expect, 'replay after Last-Event-ID');
    assert.equal(new Set(got).size, got.length, 'no duplicates');
    const gotSet = new Set(got);
    assert.deepEqual(sorted.filter((id) => big(id) > big(from) && !gotSet.has(id)), [], 'every later acked id replayed');

    const fresh = await publish(b2, name, { data: 'after kill' });
    assert.ok(big(fresh) > maxId([...acked, ...hids]), `new id ${fresh} > all earlier ids`);
    await s.waitUntil(() => s.events.some((e) => e.id === fresh), 3000, 'the new message live');
    s.close();
    assert.equal(await b2.stop(), 0);
});

test('c. Redis stopped and restarted: 503 while down, streams stay open, normal service after', async () => {
    const r = await redis();
    const name = uniq('outage');
    const b = await broker(r, { heartbeat_s: 1, store: { sync: true } });

    const h0 = await b.req('GET', '/health');
    assert.equal(h0.status, 200, h0.text);
    assert.deepEqual([h0.json.status, h0.json.store], ['ok', { type: 'redis', state: 'up' }]);

    const s = await b.stream(evPath(name));
    assert.equal(s.status, 200);
    await s.waitOpen();
    const before = await publishN(b, name, 3, 'pre');
    await s.waitEvents(3);

    await r.stop({ removeDir: false });

    const hDown = await waitFor(async () => {
        const h = await b.req('GET', '/health');
        return h.status === 503 && h;
    }, { timeout: 3000, what: '/health 503 after Redis stopped' });
    assert.match(String(hDown.headers['content-type']), /^application\/json/);
    assert.deepEqual([hDown.json.status, hDown.json.store],
        ['degraded', { type: 'redis', state: 'unreachable' }]);
    assert.equal(hDown.json.stats.streams, 1, 'the live stream is still counted');

    // Publishes fail with 503 store_unavailable, each within ~3 s, two at once too.
    for (const n of [1, 2]) {
        const t = Date.now();
        const rs = await Promise.all(Array.from({ length: n }, (_, i) =>
            b.req('POST', evPath(name), { body: { data: `down${i}` }, timeout: 6000 })));
        const dt = Date.now() - t;
        for (const res of rs) checkError(assert, res, 503, 'store_unavailable', 'publish while Redis is down');
        assert.ok(dt < 3500, `503 after ${dt} ms`);
    }
    // Reads are served from memory while Redis is down.
    assert.equal((await b.req('GET', chPath(name))).status, 200);

    // The stream is still open: heartbeats keep arriving.
    const hb = s.comments.filter((c) => c === 'hb').length;
    await s.waitUntil(() => s.comments.filter((c) => c === 'hb').length >= hb + 2, 4000, 'two heartbeats while Redis is down');
    assert.equal(s.ended, false, 'stream still open while Redis is down');
    assert.equal(s.events.length, 3, 'no failed publish reached the subscriber');

    await r.restart(); // comes back empty (no persistence)
    const hUp = await waitFor(async () => {
        const h = await b.req('GET', '/health');
        return h.status === 200 && h;
    }, { timeout: 10000, interval: 50, what: '/health 200 after Redis restarted' });
    assert.deepEqual([hUp.json.status, hUp.json.store], ['ok', { type: 'redis', state: 'up' }]);

    // Publish again: every publish answers 201, ids keep increasing on the channel
    // (the contract: strictly increasing within a channel) even though Redis came
    // back empty, and the open subscriber receives them. Problems are collected so
    // one run reports all of them.
    const problems = [];
    const post = [];
    for (let i = 0; i < 3; i++) {
        const res = await b.req('POST', evPath(name), { body: { data: `post${i}` } });
        post.push({ status: res.status, id: res.json?.id, text: res.text.trim() });
        if (res.status !== 201) problems.push(`publish post${i} after recovery: ${res.status} ${res.text.trim()}`);
    }
    const ok = post.filter((p) => p.status === 201);
    for (const p of ok) {
        if (big(p.id) <= maxId(before)) problems.push(`id ${p.id} after recovery is not above the ids before the outage (${before})`);
    }
    const want = post.map((p, i) => (p.status === 201 ? `post${i}` : null)).filter(Boolean);
    try {
        await s.waitUntil(() => want.every((d) => s.events.some((e) => e.data === d)), 3000, 'the post-recovery messages');
    } catch {
        problems.push(`subscriber got ${JSON.stringify(s.events.map((e) => [e.id, e.data]))}, want ${want} after ${before}`);
    }
    const hist = await history(b, name);
    const retained = hist.map((e) => e.data);
    post.forEach((p, i) => {
        if (p.status !== 201 && retained.includes(`post${i}`))
            problems.push(`post${i} was answered ${p.status} but is in the history: ${JSON.stringify(hist.find((e) => e.data === `post${i}`))}`);
    });
    const hids = hist.map((e) => e.id);
    if (new Set(hids).size !== hids.length) problems.push(`duplicate ids in the history: ${hids}`);
    assert.deepEqual(problems, [], 'after Redis came back');
    assert.equal(s.ended, false);
    s.close();
    b.assertAlive();
    assert.equal(await b.stop(), 0, 'exit code after SIGTERM');
});

test('d. two brokers one after the other on one Redis list the same channels', async () => {
    const r = await redis();
    const a = await broker(r);
    const x = uniq('x'), y = uniq('y');
    assert.equal((await a.req('PUT', chPath(x), { body: { history: 2, queue_limit: 7, retry_ms: 10 } })).status, 201);
    assert.equal((await a.req('PUT', chPath(y), { body: { retry_ms: 99 } })).status, 201);
    await publishN(a, x, 4, 'x');
    await publishN(a, y, 1, 'y');
    const listA = await getJson(a, '/channels');
    assert.deepEqual(listA.channels.map((c) => c.name), [x, y]);
    const histA = [await history(a, x), await history(a, y)];
    assert.equal(await a.stop(), 0);

    const b = await broker(r);
    assert.deepEqual(await getJson(b, '/channels'), listA, 'GET /channels on broker B');
    assert.deepEqual([await history(b, x), await history(b, y)], histA);
    assert.equal(await b.stop(), 0);
});

test('e. key layout in Redis as documented, with the default and a custom prefix', async () => {
    const r = await redis();
    for (const prefix of ['ssebroker:', 'app:']) {
        const b = await broker(r, prefix === 'ssebroker:' ? {} : { store: { prefix } });
        const c = uniq('keys');
        const opts = { history: 3, queue_limit: 4, retry_ms: 500 };
        assert.equal((await b.req('PUT', chPath(c), { body: opts })).status, 201);
        const conn = (await b.req('POST', connPath(c))).json;
        assert.ok(conn?.id, 'connection created');

        // The channel's log is a stream holding each message once, with its
        // position; it keeps at least max(history, queue_limit) = 4 entries,
        // and MAXLEN ~ trims whole nodes (at most 100 entries more).
        const ids = [];
        for (let i = 0; i < 6; i++) {
            ids.push(await publish(b, c, { data: `k${i}` }));
            const len = await r.cmd('XLEN', `${prefix}g/${c}`);
            assert.ok(len >= Math.min(i + 1, 4) && len <= i + 1, `XLEN ${prefix}g/${c} after ${i + 1} publishes: ${len}`);
        }
        const batch = await b.req('POST', evPath(c), { body: Array.from({ length: 5 }, (_, i) => ({ data: `b${i}` })) });
        assert.equal(batch.status, 201, batch.text);
        ids.push(...batch.json.ids);
        const len = await r.cmd('XLEN', `${prefix}g/${c}`);
        assert.ok(len >= 4 && len <= 4 + 100, `XLEN after a batch of 5: ${len}`);
        const newest = await r.cmd('XREVRANGE', `${prefix}g/${c}`, '+', '-', 'COUNT', '4');
        assert.deepEqual(newest.map((e) => e[0]).reverse(), ids.slice(-4).map((id) => `${id}-0`), 'entry ids are message ids');
        assert.deepEqual(newest.map((e) => pairs(e[1]).p).reverse(), ['8', '9', '10', '11'], 'positions count every message');
        assert.deepEqual(newest.map((e) => JSON.parse(pairs(e[1]).v).id).reverse(), ids.slice(-4), 'values are the messages');

        const ch = await getJson(b, chPath(c));
        const chans = pairs(await r.cmd('HGETALL', `${prefix}c/`));
        assert.ok(c in chans, `HGETALL ${prefix}c/ has ${c}: ${JSON.stringify(chans)}`);
        const stored = JSON.parse(chans[c]);
        for (const [k, v] of Object.entries(opts)) assert.equal(stored[k] ?? stored.options?.[k], v, `stored option ${k}: ${chans[c]}`);
        assert.equal(ch.messages, 3, 'the history holds 3');
        assert.equal(await r.cmd('HGET', `${prefix}meta/`, 'seq'), ids[ids.length - 1]);
        assert.equal(ch.last_id, ids[ids.length - 1]);

        assert.ok(conn.id in pairs(await r.cmd('HGETALL', `${prefix}n/${c}/`)), `connection record in ${prefix}n/${c}/`);
        assert.ok(conn.id in pairs(await r.cmd('HGETALL', `${prefix}l/${c}/`)), `listener state in ${prefix}l/${c}/`);
        // A queue is a cursor into the log: placed at its end (nothing yet)
        // when the connection was created; 11 published since, 4 kept.
        assert.equal(await r.cmd('HGET', `${prefix}k/${c}/`, conn.id), '0 0', `cursor in ${prefix}k/${c}/`);
        const cr = await getJson(b, connPath(c, conn.id));
        assert.equal(cr.queue_length, 4);
        assert.equal(cr.dropped, 7);
        assert.equal(await r.cmd('EXISTS', `${prefix}q/${c}/${conn.id}`), 0, 'no copy of the messages per connection');

        // Every key of this channel uses the prefix.
        const keys = await r.cmd('KEYS', `*${c}*`);
        assert.ok(keys.length >= 4, JSON.stringify(keys));
        for (const k of keys) assert.ok(k.startsWith(prefix), `key ${k} starts with ${prefix}`);
        assert.equal(await b.stop(), 0);
    }
    // The two prefixes do not see each other's channels.
    const keys = await r.cmd('KEYS', '*');
    assert.ok(keys.some((k) => k.startsWith('app:')) && keys.some((k) => k.startsWith('ssebroker:')), JSON.stringify(keys));
});

test('f. bad store settings are refused at start-up', async () => {
    const r1 = await runBroker(['--listen', '127.0.0.1:0', '--store', 'http://x']);
    assert.equal(r1.code, 2, `--store http://x exit code; stderr: ${r1.stderr}`);
    assert.match(r1.stderr, /--store/);
    assert.match(r1.stderr, /http:\/\/x/);

    const bad = [
        ['{\n  "heartbeat_s": 5,\n  "store": {"type": "redis", "url": "http://x"}\n}\n', 3, /store\.url/],
        ['{\n  "store": {\n    "type": "mongo"\n  }\n}\n', 3, /store\.type/],
        ['{\n  "store": {\n    "type": "redis",\n    "prefix": "a/b"\n  }\n}\n', 4, /store\.prefix/],
        ['{\n  "store": {\n    "maxbuffer": 0\n  }\n}\n', 3, /store\.maxbuffer/],
        ['{\n  "store": {\n    "sync": "yes"\n  }\n}\n', 3, /store\.sync/],
        ['{\n  "store": {\n    "bogus": 1\n  }\n}\n', 3, /store\.bogus/],
        ['{\n  "store": "redis"\n}\n', 2, /'store'/],
    ];
    for (const [text, line, field] of bad) {
        const file = tempFile('badstore.json', text);
        const res = await runBroker(['--listen', '127.0.0.1:0', '--config', file]);
        const ctx = `${JSON.stringify(text)} → code ${res.code}, stderr ${JSON.stringify(res.stderr)}`;
        assert.equal(res.code, 1, ctx);
        assert.ok(res.stderr.includes(path.basename(file)), `names the file: ${ctx}`);
        assert.ok(res.stderr.includes(`:${line}:`), `names line ${line}: ${ctx}`);
        assert.match(res.stderr, field, ctx);
        assert.equal(res.stderr.trim().split('\n').length, 1, `one line: ${ctx}`);
    }
});

test('g. a publish is answered once Redis has it; with sync the node also reads it back at once', async () => {
    const r = await redis();
    // A long buffer time: only a waiting caller sends a batch before it. Ids
    // come from Redis (the single source of order), so every publish waits.
    const store = { buffertime_ms: 2000, maxbuffer: 1000 };
    for (const sync of [true, false]) {
        const b = await broker(r, { store: { ...store, sync } });
        const c = uniq(sync ? 'sync' : 'async');
        const s = await b.stream(evPath(c));
        await s.waitOpen();
        const id = await publish(b, c, { data: 'durable' });
        assert.equal(await r.cmd('XLEN', `ssebroker:g/${c}`), 1, `sync ${sync}: in Redis when 201 arrives`);
        if (sync) {
            const h = await b.req('GET', evPath(c));
            assert.deepEqual(h.json.events.map((e) => e.id), [id], 'read your write on this node');
        }
        await s.waitEvents(1);
        assert.equal(s.events[0].id, id);
        s.close();
        assert.equal(await b.stop(), 0);
    }
});

test('h. cursors and messages for one connection survive a restart, merged in id order', async () => {
    const r = await redis();
    const name = uniq('cursors');
    let b = await broker(r);
    assert.equal((await b.req('PUT', chPath(name), { body: { queue_limit: 10 } })).status, 201);
    const a = (await b.req('POST', connPath(name))).json.id;
    const t = (await b.req('POST', connPath(name))).json.id;
    const toT = async (data) => {
        const res = await b.req('POST', `${connPath(name, t)}/events`, { body: { data } });
        assert.equal(res.status, 201, res.text);
        return res.json.id;
    };
    const first = await publishN(b, name, 3, 'c');
    const sa = await b.stream(`${connPath(name, a)}/events`);
    await sa.waitEvents(3);
    sa.close();
    await waitFor(async () => (await getJson(b, connPath(name, a))).attached === false, { what: 'a detached' });
    const t1 = [await toT('t1'), await toT('t2')];
    const second = await publishN(b, name, 2, 'd');
    const t2 = await toT('t3');

    assert.equal(await b.stop(), 0);
    b = await broker(r);
    assert.equal((await getJson(b, connPath(name, a))).queue_length, 2, 'a: its cursor came back');
    assert.equal((await getJson(b, connPath(name, t))).queue_length, 8, 't: the channel\'s 5 and its own 3');
    const sa2 = await b.stream(`${connPath(name, a)}/events`);
    await sa2.waitEvents(2);
    assert.deepEqual(sa2.events.map((e) => e.id), second, 'a gets only what came after its cursor');
    const st = await b.stream(`${connPath(name, t)}/events`);
    await st.waitEvents(8);
    const want = [...first, ...t1, ...second, t2].sort((x, y) => Number(x) - Number(y));
    assert.deepEqual(st.events.map((e) => e.id), want, 't gets both logs merged in id order');
    assert.deepEqual(st.events.map((e) => e.data), ['c0', 'c1', 'c2', 't1', 't2', 'd0', 'd1', 't3']);
    sa2.close();
    st.close();
    assert.equal(await b.stop(), 0);
});

test('i. Redis out of memory (maxmemory, noeviction): a clear 503, nothing half written, service after', async (t) => {
    const r = await redis();
    const b = await broker(r);
    const name = uniq('oom');
    assert.equal((await b.req('PUT', chPath(name), { body: { history: 1000 } })).status, 201);
    await r.cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    const used = Number(/used_memory:(\d+)/.exec(await r.cmd('INFO', 'memory'))[1]);
    await r.cmd('CONFIG', 'SET', 'maxmemory', String(used + 512 * 1024));
    const data = 'o'.repeat(100 * 1024);
    const acked = [];
    let refused = null;
    for (let i = 0; i < 40 && !refused; i++) {
        const res = await b.req('POST', evPath(name), { body: data, headers: { 'Content-Type': 'text/plain' } });
        if (res.status === 201) acked.push(res.json.id);
        else refused = res;
    }
    assert.ok(refused, `Redis refused a write after ${acked.length}`);
    checkError(assert, refused, 503, 'store_full', 'at maxmemory');
    assert.ok(refused.headers['retry-after'], 'Retry-After');
    t.diagnostic(`${acked.length} stored, then ${refused.json.error.code}`);
    await r.cmd('CONFIG', 'SET', 'maxmemory', '0');
    const after = await b.req('POST', evPath(name), { body: 'small', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(after.status, 201, `service after: ${after.text}`);
    // The log holds every acknowledged message and the one after, nothing else.
    const stored = (await r.cmd('XRANGE', `ssebroker:g/${name}`, '-', '+')).map((e) => JSON.parse(pairs(e[1]).v).id);
    assert.deepEqual(stored, [...acked, after.json.id]);
    assert.equal(await b.stop(), 0);
});

test('j. a channel log keeps queue_limit only while the channel has connections, else exactly its history', async () => {
    const r = await redis();
    const a = await broker(r), b = await broker(r);
    const c = uniq('keep');
    const xlen = () => r.cmd('XLEN', `ssebroker:g/${c}`);
    assert.equal((await a.req('PUT', chPath(c), { body: { history: 5, queue_limit: 50 } })).status, 201);
    await publishN(a, c, 30, 'none');
    assert.equal(await xlen(), 5, 'no connection: the log is the history');
    assert.equal((await history(b, c)).length, 5);

    const conn = (await b.req('POST', connPath(c))).json;
    assert.ok(conn?.id, 'connection created on b');
    await publishN(a, c, 30, 'one'); // on a, which may not have heard of it yet
    assert.equal(await xlen(), 35, 'a connection on any node: the log keeps what it lags (30)');
    const info = await getJson(a, connPath(c, conn.id));
    assert.equal(info.queue_length, 30, JSON.stringify(info));
    assert.equal(info.dropped, 0);
    const s = await a.stream(`${connPath(c, conn.id)}/events`);
    const got = await s.waitEvents(30);
    assert.deepEqual(got.map((e) => e.data), Array.from({ length: 30 }, (_, i) => `one${i}`));
    s.close();

    assert.equal((await a.req('DELETE', connPath(c, conn.id))).status, 204);
    await publish(a, c, { data: 'after' }); // on a: after the deletion in its pipeline
    assert.equal(await xlen(), 5, 'the last connection gone: back to the history');
    assert.deepEqual((await history(a, c)).map((e) => e.data), ['one26', 'one27', 'one28', 'one29', 'after']);

    // history 0: a connection created on one node still gets a publish made
    // at once on the other (the append itself sees the cursor).
    const z = uniq('zero');
    assert.equal((await a.req('PUT', chPath(z), { body: { history: 0, queue_limit: 10 } })).status, 201);
    await publish(a, z, { data: 'gone' });
    assert.equal(await r.cmd('XLEN', `ssebroker:g/${z}`), 0, 'history 0, no connection: nothing kept');
    for (let round = 0; round < 20; round++) {
        const cz = (await b.req('POST', connPath(z))).json;
        const id = await publish(a, z, { data: `z${round}` });
        const sz = await a.stream(`${connPath(z, cz.id)}/events`);
        const ev = await sz.waitEvents(1);
        assert.equal(ev[0].id, id, `round ${round}: the message published right after creation`);
        sz.close();
        assert.equal((await a.req('DELETE', connPath(z, cz.id))).status, 204);
    }
});
