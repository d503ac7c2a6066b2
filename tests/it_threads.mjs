// it_threads.mjs - "threads": 4 runs three front loops beside the main one:
// the main loop accepts every connection and gives the publishing ones to
// the fronts in turn; a front answers publishes itself (the append is handed
// to the main loop) and gives a connection whose next request is anything
// else back. Many connections are opened so that every front gets some:
// publishes from many connections all succeed with unique ids, in order per
// connection, and reach a subscriber once each, in id order; every other
// request works whichever loop serves its connection, keep-alive and
// pipelined ones included (publish first, then a GET); bad input, access
// control, max_connections and a reload hold on every loop; at SIGTERM no
// acknowledged publish is lost. /status ("fronts") and /metrics
// (ssebroker_front_*) count the publishes the fronts handed to the main
// loop; with threads 2 (no front below 3) those figures are there and 0.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

import { startBroker, runBroker, uniq, evPath, waitFor, checkError, tempFile, STORE, HOST } from './lib/broker.mjs';
import { startRedis } from './lib/redis.mjs';
import { sha256hex, makeKeys, mint } from './lib/jwt.mjs';

const cleanups = [];
after(async () => {
    for (const f of cleanups.reverse()) await f().catch(() => {});
});

const THREADS = 4;
const CONNS = 24; // new connections per check: the publishing ones go to the 3 fronts in turn
const text = (h = {}) => ({ 'Content-Type': 'text/plain', ...h });

let redis = null;
/** The store section for this run's store: a fresh prefix on Redis. */
async function storeSection(prefix = uniq('p')) {
    if (STORE !== 'redis') return {};
    if (!redis) {
        redis = await startRedis();
        cleanups.push(() => redis.stop());
    }
    return { store: { type: 'redis', url: redis.url, prefix: `th${process.pid}-${prefix}:` } };
}

async function start(config, args = []) {
    const b = await startBroker({ config: { threads: THREADS, ...config }, args });
    cleanups.push(async () => { if (b.alive()) assert.equal(await b.stop(), 0); });
    return b;
}

/**
 * A raw keep-alive HTTP/1.1 connection: send(raw) writes bytes as they are
 * (so several requests may go in one write), next() resolves with the next
 * complete response {status, headers, body, json}. Bodies are read by
 * Content-Length (every answer here has one).
 */
function conn(port) {
    return new Promise((resolve, reject) => {
        let buf = Buffer.alloc(0);
        const waiters = [], ready = [];
        let closed = false;
        const sock = net.connect({ host: HOST, port }, () => resolve(c));
        const parse = () => {
            for (;;) {
                const end = buf.indexOf('\r\n\r\n');
                if (end < 0) return;
                const head = buf.subarray(0, end).toString('latin1').split('\r\n');
                const headers = {};
                for (const l of head.slice(1)) {
                    const i = l.indexOf(':');
                    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
                }
                const len = Number(headers['content-length'] || 0);
                if (buf.length < end + 4 + len) return;
                const body = buf.subarray(end + 4, end + 4 + len).toString('utf8');
                buf = buf.subarray(end + 4 + len);
                let json;
                try { json = JSON.parse(body); } catch { json = undefined; }
                const r = { status: Number(head[0].split(' ')[1]), headers, body, json };
                if (waiters.length) waiters.shift().resolve(r);
                else ready.push(r);
            }
        };
        sock.on('data', (d) => { buf = Buffer.concat([buf, d]); parse(); });
        sock.on('close', () => {
            closed = true;
            for (const w of waiters.splice(0)) w.reject(new Error('connection closed'));
        });
        sock.on('error', (e) => { if (!c) reject(e); });
        const c = {
            sock,
            send: (raw) => sock.write(raw),
            next(timeout = 10000) {
                if (ready.length) return Promise.resolve(ready.shift());
                if (closed) return Promise.reject(new Error('connection closed'));
                return new Promise((res, rej) => {
                    const t = setTimeout(() => rej(new Error('no response in time')), timeout);
                    waiters.push({ resolve: (r) => { clearTimeout(t); res(r); },
                        reject: (e) => { clearTimeout(t); rej(e); } });
                });
            },
            close: () => sock.destroy(),
        };
    });
}

const post = (name, body, headers = '') =>
    `POST ${evPath(name)} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n${headers}` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const get = (p, headers = '') => `GET ${p} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`;

test('publishes from 64 connections: all 201, ids unique and rising per connection, each delivered once in order', async () => {
    const b = await start({ ...(await storeSection()), channel_defaults: { history: 10000 } });
    const name = uniq('many');
    const s = await b.stream(evPath(name));
    await s.waitOpen();
    const N = 64, M = 50;
    const conns = await Promise.all(Array.from({ length: N }, () => conn(b.port)));
    const ids = await Promise.all(conns.map(async (c, k) => {
        const got = [];
        for (let i = 0; i < M; i++) {
            c.send(post(name, `c${k}-${i}`));
            const r = await c.next();
            assert.equal(r.status, 201, r.body);
            got.push(BigInt(r.json.id));
        }
        c.close();
        return got;
    }));
    for (const got of ids)
        for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], 'ids rise on one connection');
    const all = ids.flat();
    assert.equal(new Set(all.map(String)).size, N * M, 'every id unique');
    const ev = await s.waitEvents(N * M, 20000);
    assert.equal(ev.length, N * M, 'each message delivered once');
    for (let i = 1; i < ev.length; i++) assert.ok(BigInt(ev[i].id) > BigInt(ev[i - 1].id), 'in id order');
    assert.deepEqual(new Set(ev.map((e) => e.id)), new Set(all.map(String)));
    // What each connection sent arrives in its order.
    for (let k = 0; k < N; k++) {
        const mine = ev.filter((e) => e.data.startsWith(`c${k}-`)).map((e) => e.data);
        assert.deepEqual(mine, Array.from({ length: M }, (_, i) => `c${k}-${i}`));
    }
    s.close();
});

test('every other request works on any loop: streams, history, /status, /metrics; keep-alive and pipelined', async () => {
    const b = await start({ ...(await storeSection()), channel_defaults: { history: 1000 } });
    const name = uniq('mix');
    // Keep-alive: publish (a front answers it), then GETs on the same
    // connection (handed over to the main loop, which serves on).
    const conns = await Promise.all(Array.from({ length: CONNS }, () => conn(b.port)));
    await Promise.all(conns.map(async (c, k) => {
        c.send(post(name, `ka${k}`));
        assert.equal((await c.next()).status, 201);
        c.send(get('/status'));
        const st = await c.next();
        assert.equal(st.status, 200, st.body);
        assert.ok(st.json.node, st.body);
        c.send(get(evPath(name)));
        const h = await c.next();
        assert.equal(h.status, 200, h.body);
        assert.ok(h.json.events.some((e) => e.data === `ka${k}`), 'its publish is in the history');
        c.send(post(name, `ka${k}-after`)); // the main loop answers publishes too
        assert.equal((await c.next()).status, 201);
        c.close();
    }));
    // Pipelined: two publishes and a GET in one write, answers in order.
    const piped = await Promise.all(Array.from({ length: CONNS }, () => conn(b.port)));
    await Promise.all(piped.map(async (c, k) => {
        c.send(post(name, `p${k}a`) + post(name, `p${k}b`) + get('/health') + post(name, `p${k}c`));
        const r = [await c.next(), await c.next(), await c.next(), await c.next()];
        assert.deepEqual(r.map((x) => x.status), [201, 201, 200, 201], r.map((x) => x.body).join());
        assert.ok(BigInt(r[1].json.id) > BigInt(r[0].json.id));
        assert.equal(r[2].json.status, 'ok');
        c.close();
    }));
    // New connections: streams, history, /metrics.
    const streams = await Promise.all(Array.from({ length: CONNS }, () => b.stream(evPath(name))));
    for (const s of streams) assert.equal(s.status, 200);
    await Promise.all(streams.map((s) => s.waitOpen()));
    const one = await b.req('POST', evPath(name), { body: 'to-all', headers: text() });
    assert.equal(one.status, 201);
    await Promise.all(streams.map((s) => s.waitUntil(() => s.events.some((e) => e.data === 'to-all'), 5000,
        'the message')));
    for (const s of streams) s.close();
    for (let i = 0; i < CONNS; i++) {
        const m = await b.req('GET', '/metrics');
        assert.equal(m.status, 200);
        assert.match(m.text, /publishes_total/);
    }
    const hist = await b.req('GET', evPath(name));
    assert.equal(hist.json.events.length, 5 * CONNS + 1);
});

test('a bad publish is a 400 on every loop and changes nothing', async () => {
    const b = await start({ ...(await storeSection()), limits: { max_retry_ms: 1000 } });
    const name = uniq('bad');
    assert.equal((await b.req('POST', evPath(name), { body: 'first', headers: text() })).status, 201);
    for (let i = 0; i < CONNS; i++) {
        checkError(assert, await b.req('POST', evPath(name), { body: { data: 1, nope: 2 } }), 400,
            'unknown_field');
        checkError(assert, await b.req('POST', evPath(name), { body: { data: 'x', retry: 5000 } }), 400,
            'invalid_retry');
        checkError(assert, await b.req('POST', `${evPath(name)}?source_timestamp=-1`,
            { body: 'y', headers: text() }), 400, 'invalid_source_timestamp');
        checkError(assert, await b.req('POST', '/channels/sys.stats/events', { body: 'x', headers: text() }),
            403, 'reserved_channel');
    }
    const h = await b.req('GET', evPath(name));
    assert.equal(h.json.events.length, 1, 'only the good publish');
    const m = await b.req('GET', '/metrics');
    const invalid = /ssebroker_publishes_total\{[^}]*result="invalid"[^}]*\} (\d+)/.exec(m.text);
    assert.ok(invalid, m.text.slice(0, 2000));
    assert.equal(Number(invalid[1]), 3 * CONNS, 'the fronts\' refusals are counted');
});

const K = makeKeys();
const ROLES = {
    admin: [{ match: '*', allow: ['subscribe', 'publish', 'history', 'manage'] }],
    reader: [{ match: '*', allow: ['subscribe', 'history'] }],
    user: [{ match: 'user.{sub}', allow: ['publish', 'subscribe'] }],
};
const KEY_A = 'key-a-0123456789', KEY_R = 'key-r-0123456789';
const authSection = (aliceRole) => ({
    roles: ROLES,
    jwt: { keys: [{ kid: 'hs1', alg: 'HS256', secret: K.hs.secret }] },
    api_keys: [{ name: 'alice', role: aliceRole, sha256: sha256hex(KEY_A) },
        { name: 'rita', role: 'reader', sha256: sha256hex(KEY_R) }],
});

test('access control on every loop; a reload reaches the fronts', async () => {
    const store = await storeSection();
    const file = tempFile('threads.json', { threads: THREADS, ...store, auth: authSection('admin') });
    const b = await startBroker({ args: ['--config', file] });
    cleanups.push(async () => { if (b.alive()) assert.equal(await b.stop(), 0); });
    const name = uniq('acl');
    const jwt = mint(K.hs, { sub: 'u1', role: 'user' }, { kid: 'hs1', expIn: 3600 });
    for (let i = 0; i < CONNS; i++) {
        checkError(assert, await b.req('POST', evPath(name), { body: 'x', headers: text({ 'X-API-Key': KEY_R }) }),
            403, 'forbidden');
        checkError(assert, await b.req('POST', evPath(name), { body: 'x', headers: text() }), 401, 'unauthorized');
        assert.equal((await b.req('POST', evPath('user.u1'), { body: `j${i}`,
            headers: text({ Authorization: `Bearer ${jwt}` }) })).status, 201);
        checkError(assert, await b.req('POST', evPath('user.u2'), { body: 'x',
            headers: text({ Authorization: `Bearer ${jwt}` }) }), 403, 'forbidden');
        assert.equal((await b.req('POST', evPath(name), { body: `a${i}`,
            headers: text({ 'X-API-Key': KEY_A }) })).status, 201);
    }
    const h = await b.req('GET', evPath(name), { headers: { 'X-API-Key': KEY_A } });
    assert.equal(h.json.events.length, CONNS);
    // alice becomes a reader: refused on every loop from the reload on.
    const count = () => (b.stderr().match(/reload: .* read again/g) || []).length;
    fs.writeFileSync(file, JSON.stringify({ threads: THREADS, ...store, auth: authSection('reader') }));
    process.kill(b.pid, 'SIGHUP');
    await waitFor(() => count() === 1, { what: 'the reload line' });
    for (let i = 0; i < CONNS; i++)
        checkError(assert, await b.req('POST', evPath(name), { body: 'x', headers: text({ 'X-API-Key': KEY_A }) }),
            403, 'forbidden');
});

test('a second broker on the port fails (only the main loop listens)', async () => {
    const b = await start(await storeSection());
    const r = await runBroker(['--listen', `${HOST}:${b.port}`,
        '--config', tempFile('second.json', { threads: THREADS })]);
    assert.notEqual(r.code, 0, 'the second broker exits');
    assert.match(r.stderr, /cannot listen on [^\n]*: Address already in use/);
    assert.equal((await b.req('POST', evPath('still'), { body: 'x', headers: text() })).status, 201);
});

test('max_connections counts the connections of every loop', async () => {
    const b = await start({ ...(await storeSection()), limits: { max_connections: 8 } });
    // Idle connections (no request yet) stay on the main loop, counted with
    // the fronts' publishing ones.
    const idle = await Promise.all(Array.from({ length: 8 }, () => conn(b.port)));
    await waitFor(async () => (await b.req('GET', '/health')).json.stats.sockets >= 8,
        { what: '8 sockets open' });
    for (let i = 0; i < CONNS; i++) {
        const r = await b.req('POST', evPath('full'), { body: 'x', headers: text() });
        checkError(assert, r, 503, 'limit_reached');
    }
    for (const c of idle) c.close();
    await waitFor(async () => (await b.req('POST', evPath('full'), { body: 'x', headers: text() })).status === 201,
        { what: 'a publish once the idle connections are gone' });
});

test('SIGTERM while publishing: every acknowledged message is kept and delivered', async () => {
    const store = await storeSection();
    const name = uniq('term');
    const b = await start({ ...store, channel_defaults: { history: 100000 } });
    const s = await b.stream(evPath(name));
    await s.waitOpen();
    const conns = await Promise.all(Array.from({ length: 16 }, () => conn(b.port)));
    const acked = [];
    let stop = false;
    const loops = conns.map(async (c, k) => {
        for (let i = 0; i < 2000 && !stop; i++) {
            c.send(post(name, `t${k}-${i}`));
            let r;
            try { r = await c.next(5000); } catch { return; } // closed by the shutdown
            if (r.status === 201) acked.push(r.json.id);
            else return; // 503 shutting_down: this connection is done
        }
    });
    await waitFor(() => acked.length >= 200, { what: '200 publishes acknowledged', timeout: 10000 });
    assert.equal(await b.stop({ timeout: 10000 }), 0, 'exit code 0');
    stop = true;
    await Promise.all(loops);
    for (const c of conns) c.close();
    await s.waitEnd(5000);
    if (STORE !== 'redis') {
        // One process holds everything: it delivered what it acknowledged.
        const got = new Set(s.events.map((e) => e.id));
        for (const id of acked) assert.ok(got.has(id), `acknowledged ${id} delivered before the stream ended`);
    } else {
        // The store outlives the process (the drain ends streams at once,
        // then waits for the appends under way): every acknowledged message
        // is in the history after a restart.
        const b2 = await start({ ...store, channel_defaults: { history: 100000 } });
        const h = await b2.req('GET', evPath(name, '?limit=100000'));
        const stored = new Set(h.json.events.map((e) => e.id));
        for (const id of acked) assert.ok(stored.has(id), `acknowledged ${id} is in the history`);
    }
});

/** /status's "fronts" and the ssebroker_front_* samples of /metrics (checked
 * by promtool), as {status, metrics: {name: value}}. */
async function frontFigures(b) {
    const st = await b.req('GET', '/status');
    assert.equal(st.status, 200, st.text);
    const m = await b.req('GET', '/metrics');
    assert.equal(m.status, 200, m.text);
    const p = spawnSync('promtool', ['check', 'metrics'], { input: m.text, encoding: 'utf8', timeout: 20000 });
    assert.equal(p.status, 0, `promtool check metrics: ${p.stdout}${p.stderr}`);
    const metrics = {};
    for (const [, name, v] of m.text.matchAll(/^(ssebroker_front_\w+) (\d+)$/gm)) metrics[name] = Number(v);
    for (const name of ['loops', 'publishes_total', 'refused_total', 'waiting', 'waiting_max'])
        assert.match(m.text, new RegExp(`^# TYPE ssebroker_front_${name} (gauge|counter)$`, 'm'), name);
    return { status: st.json.node.fronts, metrics };
}

test('the fronts\' mailbox figures in /status and /metrics count the publishes they handed over', async () => {
    const b = await start({ ...(await storeSection()) });
    const before = await frontFigures(b);
    assert.equal(before.status.loops, THREADS - 1);
    assert.equal(before.status.limit, 4096);
    assert.equal(before.metrics.ssebroker_front_loops, THREADS - 1);
    const name = uniq('fig');
    const M = 5;
    // New connections: each publishing one goes to a front, which hands its
    // publishes to the main loop one at a time (a connection waits for its
    // answer before sending the next).
    const conns = await Promise.all(Array.from({ length: CONNS }, () => conn(b.port)));
    await Promise.all(conns.map(async (c, k) => {
        for (let i = 0; i < M; i++) {
            c.send(post(name, `f${k}-${i}`));
            const r = await c.next();
            assert.equal(r.status, 201, r.body);
        }
        c.close();
    }));
    const after_ = await frontFigures(b);
    const st = after_.status;
    assert.equal(st.publishes - before.status.publishes, CONNS * M, JSON.stringify(st));
    assert.equal(st.refused, 0, 'none refused');
    assert.equal(st.waiting, 0, 'every publish was answered: none waits');
    assert.ok(st.waiting_max >= 1 && st.waiting_max <= st.limit, JSON.stringify(st));
    // /metrics says the same (no publish in between).
    assert.equal(after_.metrics.ssebroker_front_publishes_total, st.publishes);
    assert.equal(after_.metrics.ssebroker_front_refused_total, 0);
    assert.equal(after_.metrics.ssebroker_front_waiting, 0);
    assert.equal(after_.metrics.ssebroker_front_waiting_max, st.waiting_max);
});

test('with threads 2 (a writer, no front) the fronts\' figures are there and 0', async () => {
    const b = await start({ ...(await storeSection()), threads: 2 });
    const name = uniq('one');
    for (let i = 0; i < 5; i++)
        assert.equal((await b.req('POST', evPath(name), { body: `o${i}`, headers: text() })).status, 201);
    const { status, metrics } = await frontFigures(b);
    assert.deepEqual(status, { loops: 0, limit: 4096, publishes: 0, refused: 0, waiting: 0, waiting_max: 0 });
    assert.deepEqual(metrics, { ssebroker_front_loops: 0, ssebroker_front_publishes_total: 0,
        ssebroker_front_refused_total: 0, ssebroker_front_waiting: 0, ssebroker_front_waiting_max: 0 });
});
