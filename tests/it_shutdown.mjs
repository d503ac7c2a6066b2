// it_shutdown.mjs - SIGTERM under load: 1000 live streams and publishes in
// flight. Every stream must end cleanly (the final empty chunk), every write
// the store had pending must reach Redis before the process exits, and the
// exit code must be 0 with no sanitizer report (checked by stop()). And
// SIGTERM while Redis is frozen (SIGSTOP) with requests of every kind
// waiting for it (publishes, lookups of channels and connections, reads),
// with front loops and without: at the store's 5 s deadline the broker
// gives up on it (main.c, kv_abandon), every request is answered 503
// store_unavailable, the process exits 0, and nothing leaks (under ASan,
// LSan would report what waited for the store and was never answered).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startBroker, uniq, chPath, evPath, waitFor, HOST } from './lib/broker.mjs';
import { startRedis, pairs } from './lib/redis.mjs';

const cleanups = [];
after(async () => { for (const f of cleanups.reverse()) await f().catch(() => {}); });

/** A raw HTTP/1.1 SSE client that records every byte it receives. */
function subscriber(port, path) {
    return new Promise((resolve, reject) => {
        const c = { data: '', closed: false };
        const sock = net.connect({ host: HOST, port }, () => {
            sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
            resolve(c);
        });
        sock.setEncoding('latin1');
        sock.on('data', (d) => { c.data += d; });
        sock.on('close', () => { c.closed = true; });
        sock.on('error', reject);
        c.sock = sock;
    });
}

test('SIGTERM with 1000 streams and publishes in flight: clean ends, writes flushed, exit 0', async (t) => {
    const N = 1000;
    const r = await startRedis();
    cleanups.push(() => r.stop());
    // sync false and a long buffer time: at the signal, writes are pending.
    const b = await startBroker({ config: {
        store: { type: 'redis', url: r.url, sync: false, buffertime_ms: 3000, maxbuffer: 100000 },
        channel_defaults: { history: 100000 },
        // Not a backpressure test: on a loaded machine (ASan) writing 50
        // messages to 1000 streams can fall a second behind, and a publish
        // refused with 503 overloaded would fail it before the signal.
        limits: { max_delivery_lag_ms: 0 },
    } });
    cleanups.push(async () => { if (b.alive()) await b.stop(); });
    const name = uniq('bye');

    const subs = [];
    for (let i = 0; i < N; i++) subs.push(await subscriber(b.port, evPath(name)));
    await waitFor(async () => (await b.req('GET', '/health')).json.stats.streams === N,
        { timeout: 10000, what: `${N} streams open` });

    // Acknowledged publishes (each answered once Redis has it: ids come from
    // Redis)...
    const acked = [];
    for (let i = 0; i < 50; i++) {
        const p = await b.req('POST', evPath(name), { body: `m${i}`, headers: { 'Content-Type': 'text/plain' } });
        assert.equal(p.status, 201, p.text);
        acked.push(p.json.id);
    }
    // ...writes nobody waits for (channel records: sync false, buffertime
    // 3 s), still pending in the broker at the signal...
    const extra = Array.from({ length: 10 }, (_, i) => `${name}-x${i}`);
    for (const c of extra) assert.equal((await b.req('PUT', `/channels/${c}`, { body: { history: 7 } })).status, 201);
    const before = pairs(await r.cmd('HGETALL', 'ssebroker:c/'));
    const pending = extra.filter((c) => !(c in before)).length;
    t.diagnostic(`before SIGTERM: ${acked.length} publishes acknowledged; ${extra.length} channel records buffered`);
    // ...and more publishes in flight when the signal lands.
    const inflight = Array.from({ length: 20 }, (_, i) =>
        b.req('POST', evPath(name), { body: `late${i}`, headers: { 'Content-Type': 'text/plain' }, timeout: 8000 })
            .catch(() => null));

    const t0 = Date.now();
    assert.equal(await b.stop({ timeout: 10000 }), 0, 'exit code 0');
    t.diagnostic(`shut down in ${Date.now() - t0} ms`);

    // Every acknowledged message reached Redis before the process exited.
    const late = (await Promise.all(inflight)).filter((p) => p && p.status === 201).map((p) => p.json.id);
    const stored = await r.cmd('XRANGE', `ssebroker:g/${name}`, '-', '+');
    const storedIds = stored.map((e) => JSON.parse(pairs(e[1]).v).id);
    for (const id of [...acked, ...late])
        assert.ok(storedIds.includes(id), `acknowledged ${id} is in Redis`);
    // The buffered channel records were flushed before exit.
    const recs = pairs(await r.cmd('HGETALL', 'ssebroker:c/'));
    for (const c of extra) assert.ok(c in recs, `channel record ${c} reached Redis (pending before: ${pending})`);

    // Every stream was ended cleanly: the final empty chunk, then the close.
    await waitFor(() => subs.every((c) => c.closed), { timeout: 5000, what: 'every stream closed' });
    const clean = subs.filter((c) => c.data.endsWith('0\r\n\r\n')).length;
    assert.equal(clean, N, `${clean} of ${N} streams ended with the final chunk`);
});

/**
 * SIGTERM with Redis frozen (SIGSTOP) while requests of every kind wait for
 * it, on a broker with 'threads' loops: publishes to a channel held here
 * (on the fronts with threads 4, on the main loop with 1) and to one it does
 * not hold yet (its lookup), a stream and a JSON history of channels it does
 * not hold (their lookups), a channel's record, a connection's lookup, read
 * and creation, a connection list, the sessions archive and the node list.
 * At the 5 s deadline the broker gives up on the store: each request is
 * answered 503 store_unavailable, the process exits 0, and nothing leaks:
 * under ASan, LSan reports at exit whatever waited for the store and was not
 * freed (stop() fails on it).
 */
async function frozenShutdown(t, threads) {
    const r = await startRedis();
    cleanups.push(() => r.stop());
    // A long store timeout: the frozen store fails nothing before the signal,
    // so every request is still waiting when the deadlines run out.
    const b = await startBroker({ config: {
        threads,
        store: { type: 'redis', url: r.url, timeout_ms: 600000 },
        limits: { max_delivery_lag_ms: 0 },
    } });
    cleanups.push(async () => { if (b.alive()) await b.stop({ timeout: 15000 }); });
    const name = uniq('frozen');
    const text = { 'Content-Type': 'text/plain' };
    assert.equal((await b.req('POST', evPath(name), { body: 'before', headers: text })).status, 201);
    const made = await b.req('POST', `${chPath(name)}/connections`);
    assert.equal(made.status, 201, made.text);
    const connId = made.json.id;

    process.kill(r.pid, 'SIGSTOP');
    t.after(() => { try { process.kill(r.pid, 'SIGCONT'); } catch { /* gone */ } });
    // Each on a new connection. A publish's connection goes to a front (with
    // threads 4), which hands the append to the main loop; the main loop
    // waits for the store.
    const waiting = [];
    const wait = (what, p) => {
        const w = { what, answeredAt: null };
        w.result = p.catch((e) => e).finally(() => { w.answeredAt = Date.now(); });
        waiting.push(w);
    };
    const N = 12;
    for (let i = 0; i < N; i++)
        wait(`publish ${i}`, b.req('POST', evPath(name), { body: `w${i}`, headers: text, timeout: 30000 }));
    wait('publish to a channel not held', b.req('POST', evPath(uniq('new-pub')), { body: 'x', headers: text, timeout: 30000 }));
    wait('stream of a channel not held', b.stream(evPath(uniq('new-stream')), { timeout: 30000 }));
    wait('history of a channel not held', b.req('GET', evPath(uniq('new-hist')), { timeout: 30000 }));
    wait('record of a channel not held', b.req('GET', chPath(uniq('new-rec')), { timeout: 30000 }));
    wait('connection lookup', b.req('GET', `${chPath(name)}/connections/0123456789abcdef`, { timeout: 30000 }));
    wait('connection read', b.req('GET', `${chPath(name)}/connections/${connId}`, { timeout: 30000 }));
    wait('connection list', b.req('GET', `${chPath(name)}/connections`, { timeout: 30000 }));
    wait('connection creation', b.req('POST', `${chPath(name)}/connections`, { timeout: 30000 }));
    wait('sessions', b.req('GET', '/sessions', { timeout: 30000 }));
    wait('nodes', b.req('GET', '/nodes', { timeout: 30000 }));
    const front = async () => {
        const m = await b.req('GET', '/metrics');
        return Number(/^ssebroker_front_waiting (\d+)$/m.exec(m.text)?.[1] ?? 0);
    };
    // The fronts hold the publishes (the one to a new channel too) until the
    // main loop answers them. The rest are the main loop's: answered here
    // after them, a request on a newer connection shows that it read them.
    if (threads > 1)
        await waitFor(async () => (await front()) === N + 1, { timeout: 10000, what: `${N + 1} publishes waiting at the fronts` });
    for (let i = 0; i < 2; i++) await b.req('GET', '/metrics');
    const early = waiting.filter((w) => w.answeredAt !== null).map((w) => w.what);
    assert.deepEqual(early, [], 'every request waits for the frozen store');

    const t0 = Date.now();
    // stop() throws if the broker does not exit in time or printed a
    // sanitizer report (LSan's, at exit, in the ASan build).
    assert.equal(await b.stop({ timeout: 15000 }), 0, 'exit code 0');
    t.diagnostic(`shut down in ${Date.now() - t0} ms (the store's deadline: 5 s)`);
    const answers = await Promise.all(waiting.map((w) => w.result));
    // Given up on at the deadline, the store answers each of them KV_EIO:
    // every request hears so (the loop's last turns write the answers).
    const got = answers.map((a, i) => {
        if (a instanceof Error) return `${waiting[i].what}: ${a.message}`;
        let code;
        try { code = (a.json ?? JSON.parse(a.body)).error.code; } catch { code = a.text ?? a.body; }
        return `${waiting[i].what}: ${a.status} ${code}`;
    });
    assert.deepEqual(got, waiting.map((w) => `${w.what}: 503 store_unavailable`));
    assert.match(b.stderr(), /did not answer within 5 s: giving up on it/);
    assert.match(b.stderr(), /stopped/);
}

test('SIGTERM with Redis frozen and requests of every kind waiting, threads 4: exit 0 within the deadlines, no leak',
    (t) => frozenShutdown(t, 4));
test('SIGTERM with Redis frozen and requests of every kind waiting, threads 1: exit 0 within the deadlines, no leak',
    (t) => frozenShutdown(t, 1));
