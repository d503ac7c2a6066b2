// broker.mjs - shared helpers for the integration tests: start/stop a private
// ssebroker on a free loopback port, plain HTTP requests, and a raw SSE reader
// that parses the event stream itself so tests can assert the exact framing.
//
// Every wait is bounded; every process we start is tracked and stopped by PID,
// and ends with this Node process even when no exit handler runs (the test
// runner SIGKILLs the file at its timeout): see reaper.mjs.
//
// SSEB_STORE picks the store startBroker() runs a broker on when the test does
// not choose one itself: unset or "memory", the in-memory store; "redis", the
// Redis store (one private redis-server per test process, a fresh key prefix
// per broker, so every broker starts on an empty store like a memory one).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { fileURLToPath } from 'node:url';
import { watchChild } from './reaper.mjs';
import { startRedis } from './redis.mjs';

// SSEBROKER_BIN (set by `make check`), else an in-tree or build/ binary next to tests/.
const TOP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.SSEBROKER_BIN ||
    [path.join(TOP, 'ssebroker'), path.join(TOP, 'build', 'ssebroker')].find((p) => fs.existsSync(p)) ||
    path.join(TOP, 'ssebroker');
export const HOST = '127.0.0.1';

/**
 * The store of this run, from SSEB_STORE: 'memory' (unset, empty or "memory")
 * or 'redis'. A case that only concerns one store skips on the other with
 * { skip: STORE === 'redis' && 'reason' }.
 */
export const STORE = (() => {
    const v = process.env.SSEB_STORE || 'memory';
    if (v !== 'memory' && v !== 'redis') throw new Error(`SSEB_STORE=${JSON.stringify(v)}: expected "memory" or "redis"`);
    return v;
})();

// Sanitizer reports in stderr fail the test even if the exit code is 0.
const SANITIZER_RE = /ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer/;

let tmpRoot = null;
const live = new Set(); // child processes still running

process.on('exit', () => {
    // Last-resort cleanup: kill (by PID) whatever a crashed test left behind.
    for (const p of live) {
        try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true });
});

/** A fresh temporary directory shared by this test file, removed on exit. */
export function tmpDir() {
    if (!tmpRoot) tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'ssebroker-it-'));
    return tmpRoot;
}

let fileSeq = 0;
/** Write 'content' (string, or object → pretty JSON) to a temp file; returns its path. */
export function tempFile(name, content) {
    const dir = path.join(tmpDir(), String(++fileSeq));
    fs.mkdirSync(dir);
    const p = path.join(dir, name);
    fs.writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content, null, 2) + '\n');
    return p;
}

let nameSeq = 0;
/** A channel name unique within this process. */
export function uniq(prefix = 'ch') {
    return `${prefix}-${process.pid}-${++nameSeq}`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Poll 'fn' (sync or async) until it returns a truthy value; return that value.
 * Throws after 'timeout' ms with 'what' and the last value/error in the message.
 */
export async function waitFor(fn, { timeout = 5000, interval = 10, what = 'condition' } = {}) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
        try {
            last = await fn();
            if (last) return last;
        } catch (e) {
            last = e;
        }
        if (Date.now() > deadline) {
            const detail = last instanceof Error ? last.message : JSON.stringify(last);
            throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${detail})`);
        }
        await sleep(interval);
    }
}

function withTimeout(promise, ms, what) {
    let t;
    const timer = new Promise((_, rej) => {
        t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

/**
 * Run the binary to completion (for --help, bad configs, ...).
 * Returns {code, signal, stdout, stderr}. Kills it (by PID) after 'timeout' ms and throws.
 */
export async function runBroker(args, { timeout = 5000 } = {}) {
    const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    watchChild(proc);
    let stdout = '', stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const exited = new Promise((resolve, reject) => {
        proc.on('error', reject);
        proc.on('close', (code, signal) => resolve({ code, signal }));
    });
    try {
        const { code, signal } = await withTimeout(exited, timeout, `${BIN} ${args.join(' ')} did not exit`);
        return { code, signal, stdout, stderr };
    } catch (e) {
        try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
        throw new Error(`${e.message}\nstderr: ${stderr}`);
    } finally {
        live.delete(proc);
    }
}

let storeRedis = null; // promise of the redis-server shared by this process's brokers (SSEB_STORE=redis)
let prefixSeq = 0;

/**
 * The store settings startBroker() adds for SSEB_STORE, or null when it adds
 * none: the memory store, or a test that chose its store itself (a config
 * with a "store" key, --store, --workers or --config in args, or a config that
 * is not an object, e.g. the raw text of a bad config file). On Redis: the
 * redis-server of this process (started on first use, not keeping the process
 * alive, killed by PID at exit) and a key prefix no other broker used.
 */
async function autoStore(config, args) {
    if (STORE !== 'redis') return null;
    if (config !== undefined && (config === null || typeof config !== 'object' || Array.isArray(config) ||
        'store' in config)) return null;
    const own = /^(--store|--workers|--config|-[swc])(=|$)|^-[swc]./;
    if (args.some((a) => own.test(a))) return null;
    if (!storeRedis) storeRedis = startRedis({ unref: true });
    const r = await storeRedis;
    return { type: 'redis', url: r.url, prefix: `it${process.pid}-${++prefixSeq}:` };
}

/**
 * Start a broker on 127.0.0.1:0.
 *   config: object written to a temp JSON file and passed with --config (a
 *           string is written as is); with SSEB_STORE=redis and no store of
 *           the test's own, "store" is set to a fresh prefix on this process's
 *           redis-server (see autoStore)
 *   args:   extra command-line arguments
 *   env:    variables to add to (or, set to undefined, remove from) the
 *           broker's environment
 * Returns {port, url, proc, stderr(), stop(), alive(), assertAlive(), req(), stream()}.
 */
export async function startBroker({ config, args = [], readyTimeout = 10000, env } = {}) {
    const store = await autoStore(config, args);
    if (store) config = { ...config, store };
    const argv = ['--listen', `${HOST}:0`];
    if (config !== undefined) argv.push('--config', tempFile('config.json', config));
    argv.push(...args);

    let procEnv = process.env;
    if (env) {
        procEnv = { ...process.env, ...env };
        for (const k of Object.keys(env)) if (env[k] === undefined) delete procEnv[k];
    }
    const proc = spawn(BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: procEnv });
    live.add(proc);
    watchChild(proc);
    let stderr = '', stdout = '';
    let exit = null; // {code, signal} once the process is gone
    let stopping = false;
    const exited = new Promise((resolve) => {
        proc.on('close', (code, signal) => {
            exit = { code, signal };
            live.delete(proc);
            resolve(exit);
        });
    });
    proc.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));

    const port = await new Promise((resolve, reject) => {
        const fail = (msg) => {
            clearTimeout(timer);
            try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
            reject(new Error(`${msg}\ncommand: ${BIN} ${argv.join(' ')}\nstderr:\n${stderr}`));
        };
        const timer = setTimeout(() => fail(`broker did not log "listening on" within ${readyTimeout} ms`),
            readyTimeout);
        proc.on('error', (e) => fail(`cannot start broker: ${e.message}`));
        proc.stderr.setEncoding('utf8').on('data', (d) => {
            stderr += d;
            const m = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
            if (m) {
                clearTimeout(timer);
                resolve(Number(m[1]));
            }
        });
        exited.then(({ code, signal }) => fail(`broker exited during start-up (code ${code}, signal ${signal})`));
    });
    assertNonZeroPort(port);

    const url = `http://${HOST}:${port}`;
    const b = {
        port,
        url,
        proc,
        pid: proc.pid,
        stderr: () => stderr,
        stdout: () => stdout,
        alive: () => exit === null,
        /** Throw if the broker died (crash, abort, sanitizer halt). */
        assertAlive() {
            if (exit !== null && !stopping)
                throw new Error(`broker died unexpectedly (code ${exit.code}, signal ${exit.signal})\nstderr:\n${stderr}`);
        },
        /**
         * SIGTERM, wait up to 'timeout' ms for exit (then SIGKILL and throw).
         * Throws if the broker had already died or printed a sanitizer report.
         * Returns the exit code.
         */
        async stop({ timeout = 5000 } = {}) {
            if (exit !== null && !stopping)
                throw new Error(`broker died before stop() (code ${exit.code}, signal ${exit.signal})\nstderr:\n${stderr}`);
            if (exit === null) {
                stopping = true;
                process.kill(proc.pid, 'SIGTERM');
                try {
                    await withTimeout(exited, timeout, 'broker did not exit after SIGTERM');
                } catch (e) {
                    try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ }
                    await withTimeout(exited, 2000, 'broker did not exit after SIGKILL').catch(() => {});
                    throw new Error(`${e.message}\nstderr:\n${stderr}`);
                }
            }
            stopping = true;
            if (SANITIZER_RE.test(stderr)) throw new Error(`sanitizer report in broker stderr:\n${stderr}`);
            return exit.code;
        },
        /** Promise of {code, signal} when the process exits. */
        exited,
        req: (method, p, opts) => req(b, method, p, opts),
        stream: (p, opts) => openStream(b, p, opts),
    };
    return b;
}

/**
 * startBroker() for a test file whose brokers live across its tests:
 * broker(config, args) starts one, and the 'after' hook given (node:test's)
 * stops every one still running, newest first.
 */
export function brokerPool(afterHook) {
    const started = [];
    afterHook(async () => {
        for (const b of started.reverse()) if (b.alive()) await b.stop({ timeout: 15000 });
    });
    return async (config, args) => {
        const b = await startBroker({ config, args });
        started.push(b);
        return b;
    };
}

function assertNonZeroPort(port) {
    if (!(port > 0 && port < 65536)) throw new Error(`broker logged an invalid port ${port}`);
}

function target(b) {
    return typeof b === 'string' ? new URL(b) : new URL(b.url);
}

/**
 * One HTTP request (node:http, so the path is sent exactly as given: no
 * normalisation of "..", percent-escapes kept). body: string/Buffer sent as is;
 * any other value is sent as JSON with Content-Type application/json unless a
 * content-type header is given. Returns {status, headers, text, json}
 * (json: parsed body, or undefined when the body is not JSON).
 */
export function req(b, method, p, { headers = {}, body, timeout = 10000 } = {}) {
    const u = target(b);
    const hdrs = { ...headers };
    let payload = null;
    if (body !== undefined && body !== null) {
        if (typeof body === 'string' || Buffer.isBuffer(body)) {
            payload = Buffer.from(body);
        } else {
            payload = Buffer.from(JSON.stringify(body));
            if (!Object.keys(hdrs).some((k) => k.toLowerCase() === 'content-type'))
                hdrs['Content-Type'] = 'application/json';
        }
        hdrs['Content-Length'] = String(payload.length);
    }
    return new Promise((resolve, reject) => {
        const r = http.request({ host: u.hostname, port: u.port, method, path: p, headers: hdrs, agent: false });
        const timer = setTimeout(() => r.destroy(new Error(`${method} ${p}: no response within ${timeout} ms`)),
            timeout);
        r.on('error', (e) => {
            clearTimeout(timer);
            let msg = `${method} ${p}: ${e.message}`;
            if (b.alive && !b.alive()) msg += `\nbroker is dead; stderr:\n${b.stderr()}`;
            reject(new Error(msg));
        });
        r.on('response', (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('error', (e) => { clearTimeout(timer); reject(e); });
            res.on('end', () => {
                clearTimeout(timer);
                const text = Buffer.concat(chunks).toString('utf8');
                let json;
                try { json = JSON.parse(text); } catch { json = undefined; }
                resolve({ status: res.statusCode, headers: res.headers, text, json });
            });
        });
        // A server that answers early (413) may close before we finish writing:
        // ignore write errors once a response arrived (the 'error' handler above
        // reports them otherwise).
        if (payload) r.write(payload);
        r.end();
    });
}

/**
 * Incremental parser for text/event-stream (WHATWG rules: lines end with CRLF,
 * LF or CR; "field: value" strips one space; ":" starts a comment; a blank line
 * ends a block). Blocks with data become events {id, event, data, dataLines,
 * retry}; every block (incl. data-less ones such as the opening "retry:" block)
 * is kept in 'blocks'. Comments and retry values are collected in order.
 */
export class SseParser {
    constructor() {
        this.buf = '';
        this.raw = '';
        this.events = [];
        this.blocks = [];
        this.comments = [];
        this.retries = [];
        this.cur = null;
        this.session = null; // the id in the broker's "session" event
        this.sessionIndex = -1; // how many blocks came before it
        this.gaps = []; // the data of the broker's "sys.gap" events, parsed
    }

    push(text) {
        this.raw += text;
        this.buf += text;
        this._drain(false);
    }

    end() {
        this._drain(true);
    }

    _drain(final) {
        for (;;) {
            const m = /\r\n|\r|\n/.exec(this.buf);
            if (!m) break;
            // A lone CR at the very end may be the first half of a CRLF.
            if (m[0] === '\r' && m.index === this.buf.length - 1 && !final) break;
            const line = this.buf.slice(0, m.index);
            this.buf = this.buf.slice(m.index + m[0].length);
            this._line(line);
        }
    }

    _line(line) {
        if (line === '') {
            if (this.cur) {
                const blk = this.cur;
                this.cur = null;
                // The broker's first event on every stream names its session
                // (event "session", no id): kept apart, so that tests count
                // messages and blocks as they did before it.
                if (this.session === null && this.blocks.length <= 1 && blk.event === 'session' &&
                    blk.id === null && blk.dataLines.length === 1) {
                    try {
                        this.session = JSON.parse(blk.dataLines[0]).id;
                        this.sessionIndex = this.blocks.length;
                        return;
                    } catch { /* not ours: an ordinary event */ }
                }
                // A resuming subscriber that missed messages is told first
                // (event "sys.gap", no id): kept apart as well.
                if (blk.event === 'sys.gap' && blk.id === null && blk.dataLines.length === 1) {
                    try {
                        this.gaps.push(JSON.parse(blk.dataLines[0]));
                        return;
                    } catch { /* not ours: an ordinary event */ }
                }
                this.blocks.push(blk);
                if (blk.dataLines.length > 0) {
                    this.events.push({
                        id: blk.id,
                        event: blk.event,
                        data: blk.dataLines.join('\n'),
                        dataLines: blk.dataLines,
                        retry: blk.retry,
                    });
                }
            }
            return;
        }
        if (!this.cur) this.cur = { id: null, event: null, dataLines: [], retry: null, comments: [], fields: [] };
        if (line.startsWith(':')) {
            const c = line.slice(1).replace(/^ /, '');
            this.comments.push(c);
            this.cur.comments.push(c);
            return;
        }
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        let value = i < 0 ? '' : line.slice(i + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        this.cur.fields.push([field, value]);
        switch (field) {
        case 'id': this.cur.id = value; break;
        case 'event': this.cur.event = value; break;
        case 'data': this.cur.dataLines.push(value); break;
        case 'retry': this.cur.retry = value; this.retries.push(value); break;
        default: break;
        }
    }
}

/**
 * Open a raw SSE stream with http.get (Accept: text/event-stream unless
 * overridden). Resolves once the response headers arrived with an object:
 *   status, headers, raw (text so far), events, comments, retries, blocks,
 *   session (the id of the broker's first event "session", kept out of
 *   events and blocks), gaps (the data of its "sys.gap" events, parsed, also
 *   kept out of them),
 *   ended (bool), endReason ('end' | 'close' | 'error'), body (for non-200)
 *   waitEvents(n, timeout)   - resolves with events when at least n arrived
 *   waitOpen(timeout)        - resolves when the opening block (retry + comment) arrived
 *   waitUntil(fn, timeout, what)
 *   waitEnd(timeout)         - resolves when the server ended the response
 *   close()                  - abort from the client side
 */
export function openStream(b, p, { headers = {}, timeout = 5000 } = {}) {
    const u = target(b);
    const hdrs = { Accept: 'text/event-stream', ...headers };
    const parser = new SseParser();
    const s = {
        status: 0,
        headers: {},
        get raw() { return parser.raw; },
        get events() { return parser.events; },
        get comments() { return parser.comments; },
        get retries() { return parser.retries; },
        get blocks() { return parser.blocks; },
        get session() { return parser.session; },
        get gaps() { return parser.gaps; },
        body: '',
        ended: false,
        endReason: null,
        req: null,
        parser,
        waitUntil(fn, t = 5000, what = 'stream condition') {
            return waitFor(() => fn(s), { timeout: t, what: `${what} on ${p}; raw so far: ${JSON.stringify(parser.raw)}` });
        },
        waitEvents(n, t = 5000) {
            return s.waitUntil(() => parser.events.length >= n && parser.events, t, `${n} event(s)`);
        },
        waitOpen(t = 5000) {
            return s.waitUntil(() => parser.blocks.length >= 1, t, 'the opening block');
        },
        waitEnd(t = 5000) {
            return s.waitUntil(() => s.ended, t, 'the end of the stream');
        },
        close() {
            if (s.req) s.req.destroy();
        },
    };
    return new Promise((resolve, reject) => {
        const r = http.get({ host: u.hostname, port: u.port, path: p, headers: hdrs, agent: false });
        s.req = r;
        const timer = setTimeout(() => r.destroy(new Error(`GET ${p}: no response headers within ${timeout} ms`)),
            timeout);
        r.on('error', (e) => {
            clearTimeout(timer);
            if (!s.status) {
                let msg = `GET ${p}: ${e.message}`;
                if (b.alive && !b.alive()) msg += `\nbroker is dead; stderr:\n${b.stderr()}`;
                reject(new Error(msg));
            } else if (!s.ended) {
                s.ended = true;
                s.endReason = 'error';
            }
        });
        r.on('response', (res) => {
            clearTimeout(timer);
            s.status = res.statusCode;
            s.headers = res.headers;
            res.setEncoding('utf8');
            res.on('data', (d) => {
                if (res.statusCode === 200) parser.push(d);
                else s.body += d;
            });
            res.on('end', () => {
                parser.end();
                if (!s.ended) { s.ended = true; s.endReason = 'end'; }
            });
            res.on('close', () => {
                if (!s.ended) { s.ended = true; s.endReason = 'close'; }
            });
            res.on('error', () => {
                if (!s.ended) { s.ended = true; s.endReason = 'error'; }
            });
            resolve(s);
        });
    });
}

/** Assert an error response: status, JSON content type and {"error":{"code","message"}}. */
export function checkError(assert, res, status, code, what = '') {
    const ctx = `${what} → ${res.status} ${res.text}`;
    assert.equal(res.status, status, `status ${ctx}`);
    assert.match(String(res.headers['content-type'] || ''), /^application\/json/, `content-type ${ctx}`);
    assert.ok(res.json && typeof res.json === 'object' && res.json.error, `error object ${ctx}`);
    if (code !== undefined) assert.equal(res.json.error.code, code, `error code ${ctx}`);
    assert.equal(typeof res.json.error.message, 'string', `error message ${ctx}`);
    assert.ok(res.json.error.message.length > 0, `non-empty error message ${ctx}`);
}

/** Path helpers with proper escaping of the channel name. */
export const chPath = (name) => `/channels/${encodeURIComponent(name)}`;
export const evPath = (name, q = '') => `${chPath(name)}/events${q}`;
