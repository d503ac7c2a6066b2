// redis.mjs - a private redis-server for the integration tests, and a tiny RESP
// client for assertions on the keys the broker writes.
//
// startRedis() runs `redis-server --bind 127.0.0.1 --port P --save '' --appendonly no
// --dir <mkdtemp>` on a free loopback port and waits (bounded) for PONG. Every
// process is tracked and killed by PID on exit; a missing redis-server binary is
// an error (a test failure, not a skip).
//
// A server also ends with this Node process when no exit handler runs (the
// test runner kills the file at its timeout, SIGKILL): reaper.mjs's watcher
// SIGKILLs it by PID and removes its directory.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { watchChild } from './reaper.mjs';

export const REDIS_BIN = process.env.REDIS_SERVER || 'redis-server';
const HOST = '127.0.0.1';

const live = new Set(); // redis-server child processes still running
const dirs = new Set(); // data directories to remove on exit

process.on('exit', () => {
    for (const p of live) {
        try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free loopback TCP port: listen on port 0, read it, close. */
export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, HOST, () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

// ---- RESP ----

/** Encode a command as a RESP array of bulk strings. */
function encode(args) {
    const parts = [`*${args.length}\r\n`];
    for (const a of args) {
        const b = Buffer.from(String(a));
        parts.push(`$${b.length}\r\n`, b, '\r\n');
    }
    return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}

/**
 * Parse one reply from buf at offset 'at'. Returns {value, end} or null when
 * the buffer does not hold a whole reply yet. Error replies become
 * {error: "ERR ..."} objects (redisCmd throws them).
 */
function parse(buf, at = 0) {
    const nl = buf.indexOf('\r\n', at);
    if (nl < 0) return null;
    const type = String.fromCharCode(buf[at]);
    const line = buf.toString('utf8', at + 1, nl);
    const next = nl + 2;
    switch (type) {
    case '+': return { value: line, end: next };
    case '-': return { value: { error: line }, end: next };
    case ':': return { value: Number(line), end: next };
    case '$': {
        const n = Number(line);
        if (n < 0) return { value: null, end: next };
        if (buf.length < next + n + 2) return null;
        return { value: buf.toString('utf8', next, next + n), end: next + n + 2 };
    }
    case '*': {
        const n = Number(line);
        if (n < 0) return { value: null, end: next };
        const out = [];
        let pos = next;
        for (let i = 0; i < n; i++) {
            const r = parse(buf, pos);
            if (!r) return null;
            out.push(r.value);
            pos = r.end;
        }
        return { value: out, end: pos };
    }
    default:
        throw new Error(`RESP: unexpected reply type ${JSON.stringify(type)} in ${JSON.stringify(buf.toString())}`);
    }
}

/**
 * Send one command to the redis on 127.0.0.1:port and return its reply:
 * string (simple or bulk), number (integer), null, or an array of those.
 * Throws on an error reply, a connection error or after 'timeout' ms.
 */
export function redisCmd(port, ...args) {
    return redisCmdT(port, args, 3000);
}

function redisCmdT(port, args, timeout) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: HOST, port });
        let buf = Buffer.alloc(0);
        let done = false;
        const finish = (err, value) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            sock.destroy();
            if (err) reject(err);
            else resolve(value);
        };
        const timer = setTimeout(() => finish(new Error(`redis ${args[0]}: no reply within ${timeout} ms`)), timeout);
        sock.on('connect', () => sock.write(encode(args)));
        sock.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            let r;
            try { r = parse(buf); } catch (e) { finish(e); return; }
            if (!r) return;
            if (r.value && typeof r.value === 'object' && !Array.isArray(r.value) && r.value.error)
                finish(new Error(`redis ${args.join(' ')}: ${r.value.error}`));
            else finish(null, r.value);
        });
        sock.on('error', (e) => finish(new Error(`redis ${args[0]} on port ${port}: ${e.message}`)));
        sock.on('close', () => finish(new Error(`redis ${args[0]}: connection closed before a reply`)));
    });
}

/** HGETALL reply (flat array) → plain object. */
export function pairs(arr) {
    const o = {};
    for (let i = 0; i + 1 < (arr || []).length; i += 2) o[arr[i]] = arr[i + 1];
    return o;
}

/** PING over a raw socket with the inline protocol; true on "+PONG". */
function ping(port) {
    return new Promise((resolve) => {
        const sock = net.connect({ host: HOST, port });
        let got = '';
        const done = (ok) => { clearTimeout(timer); sock.destroy(); resolve(ok); };
        const timer = setTimeout(() => done(false), 500);
        sock.on('connect', () => sock.write('PING\r\n'));
        sock.on('data', (d) => {
            got += d.toString();
            if (got.includes('\r\n')) done(got.startsWith('+PONG'));
        });
        sock.on('error', () => done(false));
        sock.on('close', () => done(false));
    });
}

/**
 * Start a private redis-server.
 *   args:  more redis-server arguments, after the defaults above (so they
 *          override them), on every start including restart(); e.g.
 *          ['--appendonly', 'yes'] to keep the data across kill9()
 *   unref: true - the server does not keep this Node process alive (a server
 *          shared by a whole test file that no test stops: the exit handler
 *          above kills it by PID when the file is done)
 * Returns
 *   {port, url, dir, pid, log(),
 *    stop({removeDir = true}) - SIGTERM by PID, await the exit (SIGKILL after 5 s), remove the dir,
 *    kill9()                  - SIGKILL by PID, await the exit,
 *    restart()                - start again on the same port and dir (recreated if removed),
 *    cmd(...args)             - redisCmd on this server}
 */
export async function startRedis({ readyTimeout = 10000, unref = false, args = [] } = {}) {
    let port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssebroker-it-redis-'));
    dirs.add(dir);
    let proc = null;
    let exited = null;
    let log = '';

    async function launch() {
        fs.mkdirSync(dir, { recursive: true });
        dirs.add(dir);
        const argv = ['--bind', HOST, '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir,
            ...args];
        const p = spawn(REDIS_BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
        proc = p;
        live.add(p);
        watchChild(p, { dir });
        p.stdout.setEncoding('utf8').on('data', (d) => (log += d));
        p.stderr.setEncoding('utf8').on('data', (d) => (log += d));
        if (unref) {
            p.unref();
            p.stdout.unref();
            p.stderr.unref();
        }
        let exit = null;
        let spawnError = null;
        exited = new Promise((resolve) => {
            p.on('error', (e) => { spawnError = e; });
            p.on('close', (code, signal) => {
                exit = { code, signal };
                live.delete(p);
                resolve(exit);
            });
        });
        const deadline = Date.now() + readyTimeout;
        for (;;) {
            if (spawnError) throw new Error(`cannot start ${REDIS_BIN}: ${spawnError.message} (install redis-server)`);
            if (exit) throw new Error(`redis-server exited during start-up (${JSON.stringify(exit)}) on port ${port}:\n${log}`);
            if (await ping(port)) return;
            if (Date.now() > deadline) {
                try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
                throw new Error(`redis-server on port ${port} did not answer PING within ${readyTimeout} ms:\n${log}`);
            }
            await sleep(20);
        }
    }

    async function terminate(signal) {
        if (!proc || !live.has(proc)) return;
        try { process.kill(proc.pid, signal); } catch { /* gone */ }
        let t;
        const timeout = new Promise((r) => { t = setTimeout(() => r('timeout'), 5000); });
        const res = await Promise.race([exited, timeout]);
        clearTimeout(t);
        if (res === 'timeout') {
            try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
            await exited;
        }
    }

    // The free port may be taken between freePort() and the bind (another
    // test, a benchmark): pick another, a bounded number of times.
    for (let attempt = 1; ; attempt++) {
        try {
            await launch();
            break;
        } catch (e) {
            if (attempt >= 5 || !/Address already in use/.test(log)) throw e;
            log = '';
            port = await freePort();
        }
    }
    const r = {
        port,
        url: `redis://${HOST}:${port}/0`,
        dir,
        get pid() { return proc.pid; },
        log: () => log,
        async stop({ removeDir = true } = {}) {
            await terminate('SIGTERM');
            if (removeDir) {
                fs.rmSync(dir, { recursive: true, force: true });
                dirs.delete(dir);
            }
        },
        async kill9() {
            await terminate('SIGKILL');
        },
        async restart() {
            if (proc && live.has(proc)) throw new Error('restart(): redis-server is still running');
            await launch();
        },
        cmd: (...args) => redisCmd(port, ...args),
    };
    return r;
}

/**
 * A TCP proxy on a free loopback port to the redis-server on 'port', that
 * holds every chunk 'delay' ms (both ways, in order) once 'delay' is set:
 * a store answering slowly, for one broker. Returns
 *   {port, url, delay (settable, ms; 0: none), stop() - closes it and every connection}
 */
export async function startDelayProxy(port) {
    const socks = new Set();
    const pipe = (from, to, p) => from.on('data', (d) => {
        if (p.delay > 0) setTimeout(() => to.write(d), p.delay);
        else to.write(d);
    });
    const p = { delay: 0 };
    const srv = net.createServer((client) => {
        const up = net.connect(port, HOST);
        for (const s of [client, up]) {
            socks.add(s);
            s.on('error', () => {});
            s.on('close', () => { socks.delete(s); client.destroy(); up.destroy(); });
        }
        pipe(client, up, p);
        pipe(up, client, p);
    });
    await new Promise((resolve, reject) => {
        srv.on('error', reject);
        srv.listen(0, HOST, resolve);
    });
    p.port = srv.address().port;
    p.url = `redis://${HOST}:${p.port}/0`;
    p.stop = () => new Promise((resolve) => {
        for (const s of socks) s.destroy();
        srv.close(() => resolve());
    });
    return p;
}
