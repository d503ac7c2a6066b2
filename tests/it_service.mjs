// it_service.mjs - the broker as a systemd service (Type=notify): with a fake
// service manager's socket in NOTIFY_SOCKET (tests/notify_listen, a small C
// helper: node has no unix datagram sockets) it sends READY=1 once its port
// answers, WATCHDOG=1 every half WATCHDOG_USEC, STOPPING=1 on SIGTERM; under
// --workers only the supervisor (the service's main process) speaks, once
// every worker listens. The example config (examples/ssebroker.json) loads.
// Only the process is concerned: this file runs once, not again on Redis.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startBroker, tmpDir, waitFor, req, sleep, HOST } from './lib/broker.mjs';
import { startRedis } from './lib/redis.mjs';
import { watchChild } from './lib/reaper.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const LISTEN_BIN = process.env.SSEB_NOTIFY_LISTEN ||
    [path.join(HERE, 'notify_listen'), path.join(HERE, '..', 'build', 'tests', 'notify_listen')]
        .find((p) => fs.existsSync(p));
const EXAMPLE = path.join(HERE, '..', 'examples', 'ssebroker.json');

const cleanups = [];
after(async () => {
    for (const f of cleanups.reverse()) await f().catch(() => {});
});

let sockSeq = 0;

/**
 * A fake notification socket: tests/notify_listen bound to a fresh path (or
 * an abstract name with abstract: true). Returns {addr, msgs, waitMsg(re),
 * stop()}; msgs are {pid, text, vars, at} in arrival order, vars the
 * message's VAR=value assignments.
 */
async function notifySocket({ abstract = false } = {}) {
    assert.ok(LISTEN_BIN, 'tests/notify_listen is built (make check builds it)');
    const addr = abstract ? `@ssebroker-it-${process.pid}-${++sockSeq}`
        : path.join(tmpDir(), `notify-${++sockSeq}.sock`);
    const proc = spawn(LISTEN_BIN, [addr, '120'], { stdio: ['ignore', 'pipe', 'pipe'] });
    watchChild(proc); // ends with this file, killed or not
    const msgs = [];
    let out = '', err = '', listening = false, exited = false;
    proc.on('close', () => { exited = true; });
    proc.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    proc.stdout.setEncoding('utf8').on('data', (d) => {
        out += d;
        let nl;
        while ((nl = out.indexOf('\n')) >= 0) {
            const line = out.slice(0, nl);
            out = out.slice(nl + 1);
            if (line === 'listening') { listening = true; continue; }
            const sp = line.indexOf(' ');
            const text = line.slice(sp + 1).replace(/\\(n|\\)/g, (_, c) => (c === 'n' ? '\n' : '\\'));
            const vars = {};
            for (const kv of text.split('\n')) {
                const eq = kv.indexOf('=');
                if (eq > 0) vars[kv.slice(0, eq)] = kv.slice(eq + 1);
            }
            msgs.push({ pid: Number(line.slice(0, sp)), text, vars, at: Date.now() });
        }
    });
    const stop = async () => {
        if (!exited) try { process.kill(proc.pid, 'SIGTERM'); } catch { /* gone */ }
        await waitFor(() => exited, { timeout: 5000, what: 'notify_listen to exit' });
    };
    cleanups.push(stop);
    await waitFor(() => listening || exited, { timeout: 5000, what: 'notify_listen to bind' });
    assert.ok(listening, `notify_listen ${addr}: ${err}`);
    return {
        addr,
        msgs,
        waitMsg: (re, what = String(re), timeout = 10000) =>
            waitFor(() => msgs.find((m) => re.test(m.text)), { timeout, what: `notification ${what}` }),
        stop,
    };
}

/** Start a broker with NOTIFY_SOCKET (and more env); stopped in after() if the test did not. */
async function broker(ns, { env = {}, args = [], config } = {}) {
    const b = await startBroker({ env: { NOTIFY_SOCKET: ns.addr, ...env }, args, config });
    cleanups.push(async () => { if (b.alive()) await b.stop({ timeout: 15000 }); });
    return b;
}

test('READY=1 with MAINPID and STATUS once the port answers; STOPPING=1 on SIGTERM', async () => {
    const ns = await notifySocket();
    // Connect the moment READY arrives: the port must already answer.
    let answered = null;
    const checked = (async () => {
        const m = await ns.waitMsg(/^READY=1$/m, 'READY=1');
        const port = /listening on 127\.0\.0\.1:(\d+)/.exec(m.vars.STATUS)?.[1];
        assert.ok(port, `STATUS names the address: ${m.text}`);
        answered = (await req(`http://${HOST}:${port}`, 'GET', '/health')).status;
    })();
    const b = await broker(ns, { env: { WATCHDOG_USEC: undefined, WATCHDOG_PID: undefined } });
    await checked;
    assert.equal(answered, 200, 'GET /health at READY=1');
    const ready = ns.msgs.find((m) => m.vars.READY === '1');
    assert.equal(ready.vars.MAINPID, String(b.pid));
    assert.equal(ready.pid, b.pid, 'sent by the broker itself');
    assert.match(ready.vars.STATUS, new RegExp(`^listening on 127\\.0\\.0\\.1:${b.port} \\(store: `));
    assert.equal(ns.msgs.filter((m) => m.vars.READY).length, 1, 'READY=1 once');
    assert.ok(!ns.msgs.some((m) => m.vars.WATCHDOG), 'no WATCHDOG=1 without WATCHDOG_USEC');
    assert.ok(!ns.msgs.some((m) => m.vars.STOPPING), 'no STOPPING=1 before the signal');

    assert.equal(await b.stop(), 0);
    const stopping = await ns.waitMsg(/^STOPPING=1$/m, 'STOPPING=1');
    assert.equal(stopping.pid, b.pid);
    assert.ok(ns.msgs.indexOf(stopping) > ns.msgs.indexOf(ready), 'STOPPING=1 after READY=1');
    assert.doesNotMatch(b.stderr(), /cannot notify/);
});

test('WATCHDOG=1 every half WATCHDOG_USEC (200 ms) while it runs', async () => {
    const ns = await notifySocket();
    const b = await broker(ns, { env: { WATCHDOG_USEC: '200000', WATCHDOG_PID: undefined } });
    await ns.waitMsg(/^READY=1$/m, 'READY=1');
    const t0 = Date.now();
    const dogs = () => ns.msgs.filter((m) => m.text === 'WATCHDOG=1');
    await waitFor(() => dogs().length >= 8, { timeout: 10000, what: '8 WATCHDOG=1' });
    const d = dogs();
    assert.ok(d.every((m) => m.pid === b.pid), 'sent by the broker');
    // Every 100 ms: 8 take at least ~0.6 s after the first; never a burst.
    const span = d[7].at - d[0].at;
    assert.ok(span >= 500, `8 pings spread over ${span} ms`);
    assert.ok(Date.now() - t0 < 8000);
    // Still going.
    const n = dogs().length;
    await sleep(350);
    assert.ok(dogs().length >= n + 2, 'pings keep coming');
    assert.equal(await b.stop(), 0);
    await ns.waitMsg(/^STOPPING=1$/m, 'STOPPING=1');
});

test('WATCHDOG_PID of another process: no pings; an abstract socket (@name) works', async () => {
    const ns = await notifySocket({ abstract: true });
    const b = await broker(ns, { env: { WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid) } });
    await ns.waitMsg(/^READY=1$/m, 'READY=1 on an abstract socket');
    await sleep(400);
    assert.ok(!ns.msgs.some((m) => m.vars.WATCHDOG), 'the watchdog is not for us');
    assert.equal(await b.stop(), 0);
    await ns.waitMsg(/^STOPPING=1$/m, 'STOPPING=1');
});

test('a socket that is gone: one warning, and the broker serves on', async () => {
    const ns = await notifySocket();
    await ns.stop();
    fs.rmSync(ns.addr, { force: true });
    const b = await broker(ns, { env: { WATCHDOG_USEC: '100000', WATCHDOG_PID: undefined } });
    await sleep(500); // about 10 pings that fail
    assert.equal((await b.req('GET', '/health')).status, 200);
    const warnings = b.stderr().match(/cannot notify the service manager/g) || [];
    assert.equal(warnings.length, 1, b.stderr());
    assert.equal(await b.stop(), 0);
});

test('--workers: the supervisor alone speaks: READY=1 once every worker listens, WATCHDOG=1, STOPPING=1', async () => {
    const r = await startRedis();
    cleanups.push(() => r.stop());
    const ns = await notifySocket();
    const b = await broker(ns, {
        env: { WATCHDOG_USEC: '200000', WATCHDOG_PID: undefined },
        args: ['--store', r.url, '--workers', '2'],
    });
    const ready = await ns.waitMsg(/^READY=1$/m, 'READY=1');
    assert.equal(ready.pid, b.pid, 'from the supervisor');
    assert.equal(ready.vars.MAINPID, String(b.pid));
    assert.match(ready.vars.STATUS, /2 worker\(s\)/);
    // Both workers listened before it: each logged its line before the
    // supervisor's "listening on", which comes with READY=1.
    assert.equal((b.stderr().match(/worker \d of 2 \(pid \d+\) accepting on/g) || []).length, 2);
    assert.equal((await b.req('GET', '/health')).status, 200);
    await waitFor(() => ns.msgs.filter((m) => m.text === 'WATCHDOG=1').length >= 4,
        { timeout: 10000, what: '4 WATCHDOG=1' });
    assert.equal(await b.stop({ timeout: 15000 }), 0);
    await ns.waitMsg(/^STOPPING=1$/m, 'STOPPING=1');
    assert.ok(ns.msgs.every((m) => m.pid === b.pid), `only the supervisor sent: ${
        JSON.stringify(ns.msgs.map((m) => [m.pid, m.text]))}`);
    assert.equal(ns.msgs.filter((m) => m.vars.READY).length, 1, 'READY=1 once');
});

test('the example config (examples/ssebroker.json) loads', async () => {
    assert.ok(fs.existsSync(EXAMPLE), EXAMPLE);
    JSON.parse(fs.readFileSync(EXAMPLE, 'utf8'));
    const b = await startBroker({ args: ['--config', EXAMPLE] });
    cleanups.push(async () => { if (b.alive()) await b.stop(); });
    const h = await b.req('GET', '/health');
    assert.equal(h.status, 200);
    assert.equal(h.json.store.type, 'memory');
    const p = await b.req('POST', '/channels/news/events', { body: 'hello' });
    assert.equal(p.status, 201);
    assert.equal(await b.stop(), 0);
});

test('ssebroker.json(5): the example file is the one the page shows, and every example in the page loads', async () => {
    const page = fs.readFileSync(path.join(HERE, '..', 'docs', 'ssebroker.json.5.in'), 'utf8');
    const blocks = [...page.matchAll(/^\.EX\n([\s\S]*?)^\.EE$/gm)].map((m) => m[1])
        .filter((t) => t.startsWith('{'))
        .map((t) => JSON.parse(t.replace(/\\-/g, '-').replace(/\\\(aq/g, "'")));
    assert.equal(blocks.length, 2, 'two JSON examples');
    assert.deepEqual(blocks[0], JSON.parse(fs.readFileSync(EXAMPLE, 'utf8')));
    for (const cfg of blocks) {
        // The process's own store: the Redis example's URL may have no Redis.
        const { store, ...rest } = cfg;
        const b = await startBroker({ config: { ...rest, store: { type: 'memory' } } });
        cleanups.push(async () => { if (b.alive()) await b.stop(); });
        assert.equal((await b.req('GET', '/health')).status, 200);
        assert.equal(await b.stop(), 0);
    }
});
