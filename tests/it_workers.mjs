// it_workers.mjs - `--workers N`: a supervising parent and N worker processes
// sharing one port (SO_REUSEPORT) on a private Redis. Both workers accept
// connections; a worker killed with SIGKILL is restarted; SIGTERM to the parent
// stops every worker and the parent exits 0; a parent killed with SIGKILL takes
// its workers with it; the memory store and bad values are refused at start-up.
//
// Which worker holds a connection is read from /proc: the server side of each
// client socket (/proc/net/tcp, by the client's port) has an inode that appears
// among exactly one worker's /proc/<pid>/fd links. Linux only, like the feature.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';

import { startBroker, runBroker, uniq, evPath, waitFor, tempFile, HOST } from './lib/broker.mjs';
import { startRedis } from './lib/redis.mjs';

const cleanups = [];
after(async () => {
    const errors = [];
    for (const f of cleanups.reverse()) await f().catch((e) => errors.push(e));
    if (errors.length) throw errors[0];
});

const pids = new Set(); // every worker pid seen: SIGKILLed on exit if still there
process.on('exit', () => {
    for (const pid of pids) if (running(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
});

async function redis() {
    const r = await startRedis();
    cleanups.push(() => r.stop());
    return r;
}

/** A supervisor with 'n' workers on 'r'; stopped in after() if the test did not. */
async function workers(r, n = 2) {
    const b = await startBroker({ args: ['--store', r.url, '--workers', String(n)] });
    cleanups.push(async () => { if (b.alive()) await b.stop({ timeout: 15000 }); });
    return b;
}

/** The pids of a process's children (the kernel's list, no scan of /proc). */
function children(pid) {
    let text = '';
    try { text = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8'); } catch { /* gone */ }
    const list = text.trim().split(/\s+/).filter(Boolean).map(Number);
    for (const p of list) pids.add(p);
    return list;
}

/** True while 'pid' exists and is not a zombie (an orphan's reaper may be slow). */
function running(pid) {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
    } catch {
        return false;
    }
}

/** Socket inodes among a process's open files. */
function socketInodes(pid) {
    const out = new Set();
    let fds = [];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { return out; }
    for (const fd of fds) {
        try {
            const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
            if (m) out.add(m[1]);
        } catch { /* closed meanwhile */ }
    }
    return out;
}

/** Server-side sockets on 'port' (IPv4): remote port → inode. */
function serverSockets(port) {
    const map = new Map();
    const lines = fs.readFileSync('/proc/net/tcp', 'utf8').trim().split('\n').slice(1);
    for (const line of lines) {
        const f = line.trim().split(/\s+/);
        const lport = parseInt(f[1].split(':')[1], 16);
        const rport = parseInt(f[2].split(':')[1], 16);
        if (lport === port && rport !== 0 && f[9] !== '0') map.set(rport, f[9]);
    }
    return map;
}

/**
 * Open 'n' SSE streams, each on its own TCP connection and channel, and tell
 * which worker took each: returns {streams, perWorker: Map(pid → count), unknown}.
 */
async function spreadStreams(b, kids, n = 40) {
    const streams = [];
    for (let i = 0; i < n; i++) {
        const s = await b.stream(evPath(uniq('w')));
        assert.equal(s.status, 200, `stream ${i}: ${s.status} ${s.body}`);
        await s.waitOpen();
        streams.push(s);
    }
    const socks = serverSockets(b.port);
    const inodes = new Map(kids.map((pid) => [pid, socketInodes(pid)]));
    const perWorker = new Map(kids.map((pid) => [pid, 0]));
    let unknown = 0;
    for (const s of streams) {
        const inode = socks.get(s.req.socket.localPort);
        const owner = kids.find((pid) => inode && inodes.get(pid).has(inode));
        if (owner) perWorker.set(owner, perWorker.get(owner) + 1);
        else unknown++;
    }
    return { streams, perWorker, unknown };
}

/** 'n' requests to /health, each on a new TCP connection: all must answer 200. */
async function healthy(b, n = 40) {
    for (let i = 0; i < n; i++) {
        const h = await b.req('GET', '/health', { timeout: 3000 });
        assert.equal(h.status, 200, `GET /health #${i}: ${h.status} ${h.text}`);
    }
}

const count = (text, re) => (text.match(new RegExp(re.source, 'g')) || []).length;

test('a. --workers 2: one "listening on" line, two workers, both accept connections', async (t) => {
    const r = await redis();
    const b = await workers(r, 2);
    const kids = children(b.pid);
    assert.equal(kids.length, 2, `two workers under the parent ${b.pid}: ${kids}`);
    const err = b.stderr();
    assert.equal(count(err, /listening on /), 1, `one "listening on" line (the parent's):\n${err}`);
    assert.match(err, new RegExp(`listening on ${HOST}:${b.port} .*2 worker\\(s\\), supervisor pid ${b.pid}`));
    for (const i of [1, 2])
        assert.match(err, new RegExp(`worker ${i} of 2 \\(pid (${kids.join('|')})\\) accepting on ${HOST}:${b.port}`));

    await healthy(b);
    const { streams, perWorker, unknown } = await spreadStreams(b, kids);
    t.diagnostic(`streams per worker: ${JSON.stringify([...perWorker])}, unattributed ${unknown}`);
    assert.equal(unknown, 0, 'every stream is held by one of the workers');
    for (const [pid, c] of perWorker) assert.ok(c > 0, `worker ${pid} took some of the 40 connections`);
    for (const s of streams) s.close();
    assert.equal(await b.stop({ timeout: 15000 }), 0, 'exit code');
});

test('a2. the workers are one broker: subscribers on both get every publish, once, in order', async (t) => {
    const r = await redis();
    const b = await workers(r, 2);
    const kids = children(b.pid);
    const name = uniq('one');
    // 30 subscribers of one channel: the kernel spreads them over both workers.
    const subs = [];
    for (let i = 0; i < 30; i++) {
        const s = await b.stream(evPath(name));
        await s.waitOpen();
        subs.push(s);
    }
    const socks = serverSockets(b.port);
    const inodes = new Map(kids.map((pid) => [pid, socketInodes(pid)]));
    const owners = new Set(subs.map((s) => kids.find((pid) => inodes.get(pid).has(socks.get(s.req.socket.localPort)))));
    assert.equal(owners.size, 2, 'subscribers on both workers');
    // Publishes, each on a new connection (so on either worker).
    const ids = [];
    for (let i = 0; i < 20; i++) {
        const p = await b.req('POST', evPath(name), { body: `m${i}`, headers: { 'Content-Type': 'text/plain' } });
        assert.equal(p.status, 201, p.text);
        ids.push(p.json.id);
    }
    for (const s of subs) {
        await s.waitEvents(20);
        assert.deepEqual(s.events.map((e) => e.id), ids);
        s.close();
    }
    t.diagnostic('30 subscribers over 2 workers each got all 20 messages in order');
    assert.equal(await b.stop({ timeout: 15000 }), 0, 'exit code');
});

test('b. a worker killed with SIGKILL is restarted and the service goes on', async (t) => {
    const r = await redis();
    const b = await workers(r, 2);
    const kids = children(b.pid);
    assert.equal(kids.length, 2);
    const [victim, survivor] = kids;
    /** Wait for a worker in place of 'dead' (the survivor untouched); its pid. */
    const replaced = async (dead, backs) => {
        const k = await waitFor(() => {
            const l = children(b.pid);
            return l.length === 2 && !l.includes(dead) && l;
        }, { timeout: 5000, what: `a new worker in place of ${dead}` });
        assert.ok(k.includes(survivor), 'the other worker was left alone');
        await waitFor(() => count(b.stderr(), /worker \d \(pid \d+\) is back/) === backs,
            { timeout: 5000, what: 'the new worker ready' });
        return k.find((pid) => pid !== survivor);
    };

    let t0 = Date.now();
    process.kill(victim, 'SIGKILL');
    const second = await replaced(victim, 1);
    t.diagnostic(`replaced in ${Date.now() - t0} ms`);
    const slot = new RegExp(`worker (\\d) \\(pid ${victim}\\) was killed by signal 9 \\(Killed\\) after \\d+ ms; restarting it in \\d+ ms`)
        .exec(b.stderr());
    assert.ok(slot, `the death and the restart logged:\n${b.stderr()}`);

    // The replacement killed too, within a second of its start: a longer backoff.
    t0 = Date.now();
    process.kill(second, 'SIGKILL');
    const third = await replaced(second, 2);
    t.diagnostic(`replaced again in ${Date.now() - t0} ms`);
    assert.match(b.stderr(), new RegExp(`worker ${slot[1]} \\(pid ${second}\\) was killed by signal 9 \\(Killed\\) after \\d+ ms; restarting it in 400 ms`));
    assert.equal(count(b.stderr(), /listening on /), 1, 'still one "listening on" line');
    b.assertAlive();

    await healthy(b);
    const { streams, perWorker, unknown } = await spreadStreams(b, [survivor, third]);
    t.diagnostic(`streams per worker: ${JSON.stringify([...perWorker])}`);
    assert.equal(unknown, 0);
    for (const [pid, c] of perWorker) assert.ok(c > 0, `worker ${pid} took some of the 40 connections`);
    for (const s of streams) s.close();
    assert.equal(await b.stop({ timeout: 15000 }), 0, 'exit code');
});

test('c. SIGTERM to the parent: open streams end, every worker exits, the parent exits 0', async () => {
    const r = await redis();
    const b = await workers(r, 2);
    const kids = children(b.pid);
    assert.equal(kids.length, 2);
    const { streams } = await spreadStreams(b, kids, 10);

    assert.equal(await b.stop({ timeout: 15000 }), 0, `exit code; stderr:\n${b.stderr()}`);
    for (const pid of kids) assert.ok(!running(pid), `worker ${pid} is gone`);
    await waitFor(() => streams.every((s) => s.ended), { timeout: 3000, what: 'every stream ended' });
    const err = b.stderr();
    assert.match(err, /worker 1 stopped/);
    assert.match(err, /worker 2 stopped/);
    assert.match(err, /all workers stopped \(exit 0\)/);
    assert.doesNotMatch(err, /restarting it/, 'no restart during the shutdown');
});

test('d. the parent killed with SIGKILL: its workers exit too', async () => {
    const r = await redis();
    const b = await workers(r, 2);
    const kids = children(b.pid);
    assert.equal(kids.length, 2);
    process.kill(b.pid, 'SIGKILL');
    await b.exited;
    await waitFor(() => kids.every((pid) => !running(pid)),
        { timeout: 10000, what: `workers ${kids} gone after their parent` });
    // Nothing listens any more.
    const refused = await new Promise((resolve) => {
        const sock = net.connect({ host: HOST, port: b.port });
        sock.on('connect', () => { sock.destroy(); resolve(false); });
        sock.on('error', () => resolve(true));
    });
    assert.ok(refused, `port ${b.port} is closed`);
});

test('e. --workers needs the Redis store; bad values are refused', async () => {
    const mem = await runBroker(['--listen', `${HOST}:0`, '--workers', '2']);
    assert.equal(mem.code, 2, `memory store: code ${mem.code}, stderr ${mem.stderr}`);
    assert.match(mem.stderr, /--workers needs the Redis store/);
    assert.doesNotMatch(mem.stderr, /listening on/);

    const cfg = tempFile('mem.json', { store: { type: 'memory' } });
    const mem2 = await runBroker(['--listen', `${HOST}:0`, '--config', cfg, '--workers', '3']);
    assert.equal(mem2.code, 2, mem2.stderr);
    assert.match(mem2.stderr, /--workers needs the Redis store/);

    for (const v of ['0', '65', '-1', 'two', '2x', '']) {
        const res = await runBroker(['--listen', `${HOST}:0`, '--store', 'redis://127.0.0.1:1/0', '--workers', v]);
        assert.equal(res.code, 2, `--workers '${v}': code ${res.code}, stderr ${res.stderr}`);
        assert.match(res.stderr, /--workers .*from 1 to 64/, `--workers '${v}'`);
    }

    const help = await runBroker(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--workers N/);
});

test('f. a port already taken (without SO_REUSEPORT) is refused at start-up, no worker left', async () => {
    const r = await redis();
    const srv = net.createServer();
    await new Promise((resolve) => srv.listen(0, HOST, resolve));
    cleanups.push(() => new Promise((resolve) => srv.close(resolve)));
    const { port } = srv.address();
    const res = await runBroker(['--listen', `${HOST}:${port}`, '--store', r.url, '--workers', '2']);
    assert.equal(res.code, 1, `code ${res.code}, stderr ${res.stderr}`);
    assert.match(res.stderr, new RegExp(`cannot listen on ${HOST}:${port}: Address already in use`));
    assert.doesNotMatch(res.stderr, /starting 2 worker/);
});
