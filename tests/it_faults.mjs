// it_faults.mjs - the broker on a Redis that misbehaves without going away:
// restarted and still loading its data, frozen (kill -STOP) under publishing
// load, out of memory; sessions while it is frozen (streams are served, the
// archive answers 503); a subscription that comes back while the store still
// refuses reads (nothing it missed is lost). In each case the broker answers within a bound, says so
// on /health, comes back by itself once Redis does, and never loses a message
// it acknowledged (201).
//
// Every test starts its own redis-server (tests/lib/redis.mjs) and broker, and
// stops them by PID; a frozen Redis is always sent SIGCONT before it is stopped.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    startBroker, uniq, chPath, evPath, waitFor, checkError, sleep,
} from './lib/broker.mjs';
import { startRedis } from './lib/redis.mjs';

const cleanups = [];
after(async () => {
    const errors = [];
    for (const f of cleanups.reverse()) await f().catch((e) => errors.push(e));
    if (errors.length) throw errors[0];
});

/** Let a Redis stopped with SIGSTOP run again (nothing if it is gone). */
function thaw(r) {
    try { process.kill(r.pid, 'SIGCONT'); } catch { /* not running */ }
}

/** A private redis for one test (extra redis-server arguments in 'args'). */
async function redis(args = []) {
    const r = await startRedis({ args });
    cleanups.push(async () => {
        thaw(r);
        await r.stop();
    });
    return r;
}

/** A broker on 'r' (config store), closed in after() if the test did not. */
async function broker(r, { store = {}, ...config } = {}) {
    const b = await startBroker({ config: { store: { type: 'redis', url: r.url, ...store }, ...config } });
    cleanups.push(async () => { if (b.alive()) await b.stop(); });
    return b;
}

const big = (id) => BigInt(id);

async function publish(b, name, body) {
    const r = await b.req('POST', evPath(name), { body });
    assert.equal(r.status, 201, `publish to ${name}: ${r.status} ${r.text}`);
    return r.json.id;
}

async function historyIds(b, name) {
    const r = await b.req('GET', `${evPath(name)}?limit=100000`);
    assert.equal(r.status, 200, `history of ${name}: ${r.status} ${r.text}`);
    return r.json.events.map((e) => e.id);
}

/** Ids strictly increasing, so no duplicate and no step back. */
function assertAscending(ids, what) {
    for (let i = 1; i < ids.length; i++)
        assert.ok(big(ids[i]) > big(ids[i - 1]), `${what}: ${ids[i - 1]} then ${ids[i]} at ${i}`);
}

test('a. Redis restarted while loading its data: the broker comes back by itself', async (t) => {
    // AOF with fsync on every write, so kill -9 loses nothing acknowledged; the
    // filler keys go into the AOF's RDB base, which a restart reads at 200 us
    // a key or more (key-load-delay: 2.4 s at least) while answering LOADING
    // to clients every 1 KiB.
    const FILLER = 12000;
    const r = await redis(['--appendonly', 'yes', '--appendfsync', 'always',
        '--key-load-delay', '200', '--loading-process-events-interval-bytes', '1024']);
    const b = await broker(r, { log_level: 'debug' });
    const name = uniq('loading');
    assert.equal((await b.req('PUT', chPath(name), { body: { history: 1000 } })).status, 201);
    const s = await b.stream(evPath(name));
    assert.equal(s.status, 200);
    await s.waitOpen();

    const acked = [];
    for (let i = 0; i < 3; i++) acked.push(await publish(b, name, { data: `early${i}` }));
    await r.cmd('EVAL', "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'filler:' .. i, 'x') end",
        '0', String(FILLER));
    await r.cmd('BGREWRITEAOF');
    await waitFor(async () => /aof_rewrite_in_progress:0/.test(await r.cmd('INFO', 'persistence')) &&
        /aof_rewrite_scheduled:0/.test(await r.cmd('INFO', 'persistence')),
    { timeout: 10000, interval: 50, what: 'the AOF rewrite' });
    for (let i = 0; i < 3; i++) acked.push(await publish(b, name, { data: `late${i}` }));
    await s.waitEvents(acked.length);

    await r.kill9();
    const t0 = Date.now();
    let readyAt = 0;
    const restarted = r.restart().then(() => { readyAt = Date.now(); });
    // Redis really is loading, and the broker really met it so.
    await waitFor(() => /LOADING/.test(b.stderr()), { timeout: 10000, interval: 20, what: 'the broker meeting LOADING' });
    const during = await b.req('GET', '/health');
    assert.equal(during.status, 503, `/health while Redis loads: ${during.text}`);
    assert.deepEqual([during.json.status, during.json.store.state], ['degraded', 'unreachable']);
    const tp = Date.now();
    const pub = await b.req('POST', evPath(name), { body: { data: 'while loading' }, timeout: 10000 });
    const pubMs = Date.now() - tp;
    if (!readyAt) { // (a slow machine may have got there first)
        checkError(assert, pub, 503, 'store_unavailable', 'publish while Redis loads');
        assert.ok(pubMs < 3000, `the publish failed after ${pubMs} ms`);
    }
    if (pub.status === 201) acked.push(pub.json.id);
    await restarted;
    const loadMs = readyAt - t0;
    assert.ok(loadMs >= 1000, `Redis took ${loadMs} ms to load: it must take 1 s or more to show anything`);

    // Back with the backoff (at most 5 s after Redis is ready), without a restart.
    const h = await waitFor(async () => {
        const x = await b.req('GET', '/health');
        return x.status === 200 && x;
    }, { timeout: 8000, interval: 50, what: '/health 200 after Redis finished loading' });
    const upMs = Date.now() - readyAt;
    assert.deepEqual([h.json.status, h.json.store.state], ['ok', 'up']);
    for (let i = 0; i < 3; i++) acked.push(await publish(b, name, { data: `after${i}` }));
    t.diagnostic(`Redis loaded for ${loadMs} ms; a publish meanwhile answered ${pub.status} ` +
        `after ${pubMs} ms; /health 200 ${upMs} ms after Redis was ready`);

    // The appends work again (the script was loaded once Redis could take it),
    // the subscription is live, and nothing acknowledged went missing.
    const hist = await historyIds(b, name);
    assertAscending(hist, 'history');
    assert.deepEqual(acked.filter((id) => !hist.includes(id)), [], 'acknowledged ids missing from the history');
    await s.waitUntil(() => acked.every((id) => s.events.some((e) => e.id === id)), 5000,
        'every acknowledged message on the stream that stayed open');
    assertAscending(s.events.map((e) => e.id), 'the stream');
    assert.equal(s.ended, false, 'the stream stayed open');
    assert.doesNotMatch(b.stderr(), /appends will fail/);
    s.close();
    assert.equal(await b.stop(), 0);
});

test('b. Redis frozen (kill -STOP) under load: 503 within the timeout, degraded, back after kill -CONT', async (t) => {
    // Six reply timeouts long: the connection times out, then set-up attempts
    // on the frozen Redis time out (at twice the reply timeout) and are retried.
    const TIMEOUT = 1000, FREEZE = 6000;
    // Sent: TIMEOUT (+ a tick); waiting for a connection: min(2 s, TIMEOUT);
    // both at worst, and slack for a loaded CI machine.
    const BOUND = 2 * TIMEOUT + 1000;
    const r = await redis();
    const b = await broker(r, { store: { timeout_ms: TIMEOUT }, log_level: 'debug' });
    cleanups.push(async () => thaw(r)); // before the broker is stopped, if the test failed
    const name = uniq('frozen');
    assert.equal((await b.req('PUT', chPath(name), { body: { history: 100000 } })).status, 201);
    const s = await b.stream(evPath(name));
    assert.equal(s.status, 200);
    await s.waitOpen();

    const results = []; // {start, end, status, id, code}
    let stop = false;
    const worker = async (w) => {
        for (let i = 0; !stop && i < 100000; i++) {
            const start = Date.now();
            const res = await b.req('POST', evPath(name), { body: { data: `w${w}-${i}` }, timeout: 30000 })
                .catch((e) => ({ status: 0, json: { error: { code: e.message } } }));
            results.push({ start, end: Date.now(), status: res.status, id: res.json?.id, code: res.json?.error?.code });
            if (res.status !== 201) await sleep(20);
        }
    };
    const workers = [0, 1, 2, 3].map(worker);
    cleanups.push(async () => { stop = true; await Promise.all(workers); });
    await waitFor(() => results.filter((x) => x.status === 201).length >= 20, { timeout: 5000, what: 'publishes before the freeze' });

    process.kill(r.pid, 'SIGSTOP');
    const tStop = Date.now();
    const hDown = await waitFor(async () => {
        const x = await b.req('GET', '/health', { timeout: 5000 });
        return x.status === 503 && x;
    }, { timeout: TIMEOUT + 2000, interval: 50, what: '/health 503 while Redis is frozen' });
    const degradedMs = Date.now() - tStop;
    assert.deepEqual([hDown.json.status, hDown.json.store], ['degraded', { type: 'redis', state: 'unreachable' }]);
    assert.ok(degradedMs <= TIMEOUT + 700, `/health said degraded ${degradedMs} ms after the freeze`);
    // A read from the store fails within the bound too, it does not hang.
    const tn = Date.now();
    const nodes = await b.req('GET', '/nodes', { timeout: 10000 });
    checkError(assert, nodes, 503, 'store_unavailable', '/nodes while Redis is frozen');
    const nodesMs = Date.now() - tn;
    assert.ok(nodesMs <= BOUND, `/nodes answered after ${nodesMs} ms`);

    await sleep(Math.max(0, FREEZE - (Date.now() - tStop)));
    // Nothing may be acknowledged while Redis is frozen.
    const tCont = Date.now();
    const frozenOk = results.filter((x) => x.status === 201 && x.end > tStop + 300 && x.end < tCont);
    process.kill(r.pid, 'SIGCONT');

    const hUp = await waitFor(async () => {
        const x = await b.req('GET', '/health');
        return x.status === 200 && x;
    }, { timeout: 8000, interval: 20, what: '/health 200 after kill -CONT' });
    const upMs = Date.now() - tCont;
    assert.deepEqual([hUp.json.status, hUp.json.store.state], ['ok', 'up']);
    const firstOk = await waitFor(() => results.find((x) => x.status === 201 && x.start >= tCont),
        { timeout: 8000, what: 'a publish acknowledged after kill -CONT' });
    await waitFor(() => results.filter((x) => x.status === 201 && x.start >= tCont).length >= 20,
        { timeout: 8000, what: 'publishes acknowledged again' });
    stop = true;
    await Promise.all(workers);

    const during = results.filter((x) => x.start >= tStop + TIMEOUT + 200 && x.end < tCont);
    const failed = results.filter((x) => x.status !== 201);
    const slowest = Math.max(...results.map((x) => x.end - x.start));
    t.diagnostic(`${results.length} publishes, ${failed.length} failed; slowest ${slowest} ms; ` +
        `/health degraded after ${degradedMs} ms, /nodes 503 after ${nodesMs} ms; ` +
        `/health ok ${upMs} ms and the first 201 ${firstOk.end - tCont} ms after kill -CONT`);
    assert.deepEqual(frozenOk, [], 'publishes acknowledged while Redis was frozen');
    assert.ok(during.length >= 4, `publishes while frozen: ${during.length}`);
    for (const x of failed) assert.equal(`${x.status} ${x.code}`, '503 store_unavailable');
    assert.ok(slowest <= BOUND, `a publish took ${slowest} ms (bound ${BOUND} ms)`);
    // The connection was dropped once (not every tick), and the attempts that
    // met the frozen Redis were given up and retried.
    const noReply = b.stderr().match(/no reply for/g) || [];
    assert.ok(noReply.length >= 1 && noReply.length <= 3, `"no reply" logged ${noReply.length} times`);
    assert.match(b.stderr(), /connection not set up after \d+ ms; retrying/);

    // Every acknowledged message is in the history and reached the subscriber,
    // once and in order. So did whatever else the history holds: a publish
    // answered 503 because Redis did not answer in time may still have been
    // stored when it resumed (its outcome was unknown), and then the broker
    // delivers it from the catch-up like any other.
    const acked = results.filter((x) => x.status === 201).map((x) => x.id);
    const hist = await historyIds(b, name);
    assertAscending(hist, 'history');
    assert.deepEqual(acked.filter((id) => !hist.includes(id)), [], 'acknowledged ids missing from the history');
    await s.waitUntil(() => s.events.length >= hist.length, 5000, 'the subscriber has the whole history');
    const got = s.events.map((e) => e.id);
    assertAscending(got, 'the stream');
    assert.deepEqual(hist.filter((id) => !got.includes(id)), [], 'stored messages the subscriber never got');
    t.diagnostic(`${acked.length} acknowledged, ${hist.length} stored, ${got.length} delivered`);
    assert.equal(s.ended, false, 'the stream stayed open');
    s.close();
    assert.equal(await b.stop(), 0);
});

test('c. Redis out of memory (maxmemory, noeviction): a publish is a clear 503 and changes nothing', async () => {
    const r = await redis();
    const b = await broker(r);
    const name = uniq('oom');
    const first = await publish(b, name, { data: 'before' });
    const seq = await r.cmd('HGET', 'ssebroker:meta/', 'seq');
    await r.cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await r.cmd('CONFIG', 'SET', 'maxmemory', '1mb');
    assert.ok(Number(/used_memory:(\d+)/.exec(await r.cmd('INFO', 'memory'))[1]) > 1024 * 1024,
        'Redis uses more than maxmemory');

    for (const body of [{ data: 'refused' }, [{ data: 'one' }, { data: 'two' }]]) {
        const t = Date.now();
        const res = await b.req('POST', evPath(name), { body });
        checkError(assert, res, 503, 'store_full', 'publish on a full Redis');
        assert.ok(Date.now() - t < 1000, `answered after ${Date.now() - t} ms`);
    }
    assert.deepEqual(await historyIds(b, name), [first], 'the history is unchanged');
    assert.equal(await r.cmd('HGET', 'ssebroker:meta/', 'seq'), seq, 'no id was taken');
    assert.equal(await r.cmd('XLEN', `ssebroker:g/${name}`), 1, 'nothing was appended');
    const h = await b.req('GET', '/health');
    assert.equal(h.status, 200, 'Redis still answers: the store is up');

    await r.cmd('CONFIG', 'SET', 'maxmemory', '0');
    const next = await publish(b, name, { data: 'after' });
    assert.equal(big(next), big(first) + 1n, 'the next id follows the last stored one');
    assert.deepEqual(await historyIds(b, name), [first, next]);
    assert.equal(await b.stop(), 0);
});

test('d. sessions while Redis is frozen: streams open and flow; the archive answers 503, then again', async () => {
    const TIMEOUT = 1000;
    const r = await redis();
    const b = await broker(r, { store: { timeout_ms: TIMEOUT }, heartbeat_s: 1 });
    cleanups.push(async () => thaw(r));
    const name = uniq('sessfault');
    assert.equal((await b.req('PUT', chPath(name))).status, 201);
    const mon = await b.stream(evPath('sys.sessions')); // joins are published from now on
    await mon.waitUntil(() => mon.session, 5000, 'the monitor\'s session event');
    const before = await b.stream(evPath(name));
    await before.waitUntil(() => before.session, 5000, 'a session event');

    process.kill(r.pid, 'SIGSTOP');
    await waitFor(async () => (await b.req('GET', '/health', { timeout: 5000 })).status === 503,
        { timeout: TIMEOUT + 3000, interval: 50, what: '/health 503 while Redis is frozen' });
    // A subscriber arriving now is served as ever: its session event, then
    // heartbeats; writing its session and publishing its join fail quietly.
    const during = await b.stream(evPath(name));
    assert.equal(during.status, 200);
    await during.waitUntil(() => during.session, 5000, 'a session event while Redis is frozen');
    await during.waitUntil(() => during.comments.filter((c) => c === 'hb').length >= 2, 5000, 'heartbeats');
    const list = await b.req('GET', '/sessions', { timeout: 10000 });
    checkError(assert, list, 503, 'store_unavailable', 'the archive is in the store');
    before.close();
    b.assertAlive();

    thaw(r);
    await waitFor(async () => (await b.req('GET', '/health')).status === 200,
        { timeout: 10000, interval: 50, what: '/health 200 once Redis runs again' });
    const after = await b.stream(evPath(name));
    await after.waitUntil(() => after.session, 5000, 'a session event');
    const rec = await waitFor(async () => {
        const x = await b.req('GET', `/sessions/${after.session}`);
        return x.status === 200 && x.json;
    }, { what: 'a new session archived again' });
    assert.equal(rec.channel, name);
    // The live streams went on throughout.
    assert.equal(during.ended, false);
    assert.ok(!mon.ended);
    for (const s of [during, after, mon]) s.close();
});

test('e. the subscription is back but the store refuses reads: nothing missed meanwhile is lost, nothing goes out of order', async () => {
    const r = await redis();
    const a = await broker(r, { store: { sync: false } });
    const b = await broker(r, { store: { sync: false } });
    const name = uniq('missed');
    const first = await publish(b, name, 'before');
    const s = await a.stream(evPath(name));
    await waitFor(async () => (await a.req('GET', chPath(name))).status === 200, { what: 'node a knows the channel' });
    // Both nodes lose their subscription, and may not take it back yet; node
    // a may not read histories either (an ACL, as an operator's mistake or a
    // restarting Redis would).
    await r.cmd('ACL', 'SETUSER', 'default', '-psubscribe', '-xrange', '-xrevrange');
    await r.cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
    const subscribers = async () => String(await r.cmd('CLIENT', 'LIST', 'TYPE', 'pubsub')).split('\n').filter((l) => l.trim()).length;
    await waitFor(async () => (await subscribers()) === 0, { what: 'no subscription left' });
    const missed = [await publish(b, name, 'missed 1'), await publish(b, name, 'missed 2')];
    // The subscriptions come back: node a's catch-up cannot read, and what
    // arrives now must wait for what it missed.
    await r.cmd('ACL', 'SETUSER', 'default', '+psubscribe');
    await waitFor(async () => (await subscribers()) === 2 && /the subscription is back/.test(a.stderr().split('subscription lost').pop()),
        { timeout: 15000, interval: 100, what: 'both subscribed again' });
    const after = await publish(b, name, 'after');
    await sleep(500);
    assert.deepEqual(s.events.map((e) => e.data), [], 'nothing out of order while the history cannot be read');
    await r.cmd('ACL', 'SETUSER', 'default', '+xrange', '+xrevrange');
    await s.waitEvents(3, 15000);
    assert.deepEqual(s.events.map((e) => [e.id, e.data]),
        [[missed[0], 'missed 1'], [missed[1], 'missed 2'], [after, 'after']], 'every message, in order');
    assert.ok(big(missed[0]) > big(first));
    assert.equal(s.ended, false);
    s.close();
    assert.match(a.stderr(), /could not be read while catching up/, 'the retry is logged');
});
