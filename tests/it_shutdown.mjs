// it_shutdown.mjs - SIGTERM under load: 1000 live streams and publishes in
// flight. Every stream must end cleanly (the final empty chunk), every write
// the store had pending must reach Redis before the process exits, and the
// exit code must be 0 with no sanitizer report (checked by stop()). And
// SIGTERM while Redis is frozen (SIGSTOP) with publishes of the front loops
// waiting for it: the process still exits 0 within its deadlines (5 s for
// the store, then 2 s for the fronts), and nothing leaks (under ASan, LSan
// would report the fronts' requests the store never answered).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startBroker, uniq, evPath, waitFor, HOST } from './lib/broker.mjs';
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

test('SIGTERM with Redis frozen and publishes waiting at the front loops: exit 0 within the deadlines, no leak', async (t) => {
    const r = await startRedis();
    cleanups.push(() => r.stop());
    // A long store timeout: the frozen store fails nothing before the signal,
    // so the publishes are still the broker's when the deadlines run out.
    const b = await startBroker({ config: {
        threads: 4,
        store: { type: 'redis', url: r.url, timeout_ms: 600000 },
        limits: { max_delivery_lag_ms: 0 },
    } });
    cleanups.push(async () => { if (b.alive()) await b.stop({ timeout: 15000 }); });
    const name = uniq('frozen');
    assert.equal((await b.req('POST', evPath(name), { body: 'before', headers: { 'Content-Type': 'text/plain' } })).status, 201);

    process.kill(r.pid, 'SIGSTOP');
    t.after(() => { try { process.kill(r.pid, 'SIGCONT'); } catch { /* gone */ } });
    // Each on a new connection, which the main loop hands to a front; the
    // front hands the append to the main loop, which waits for the store.
    const N = 12;
    const waiting = Array.from({ length: N }, (_, i) =>
        b.req('POST', evPath(name), { body: `w${i}`, headers: { 'Content-Type': 'text/plain' }, timeout: 30000 })
            .catch((e) => e));
    const front = async () => {
        const m = await b.req('GET', '/metrics');
        return Number(/^ssebroker_front_waiting (\d+)$/m.exec(m.text)?.[1]);
    };
    await waitFor(async () => (await front()) === N, { timeout: 10000, what: `${N} publishes waiting at the fronts` });

    const t0 = Date.now();
    // stop() throws if the broker does not exit in time or printed a
    // sanitizer report (LSan's, at exit, in the ASan build).
    assert.equal(await b.stop({ timeout: 15000 }), 0, 'exit code 0');
    t.diagnostic(`shut down in ${Date.now() - t0} ms (deadlines: 5 s for the store, 2 s for the fronts)`);
    const answers = await Promise.all(waiting);
    assert.ok(answers.every((a) => a instanceof Error || a.status !== 201), 'no publish was acknowledged');
    assert.match(b.stderr(), /stopped/);
});
