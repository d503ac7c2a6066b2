// it_http.mjs - the HTTP/1.1 layer (src/httpd.c) as raw clients see it:
// keep-alive, pipelining, chunked request bodies, Expect: 100-continue,
// HTTP/1.0, bare-LF heads refused, absolute-form targets, the idle timeout with 408,
// and max_connections (subscribers past it get 200 + retry:, others 503).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import { startBroker, uniq, evPath, HOST, sleep, waitFor } from './lib/broker.mjs';

const brokers = [];
after(async () => {
    for (const b of brokers) if (b.alive()) assert.equal(await b.stop(), 0);
});
async function broker(limits = {}) {
    const b = await startBroker({ config: { limits } });
    brokers.push(b);
    return b;
}

/** Parse as many complete responses as 'buf' holds ('heads': indexes of the
 * responses to HEAD requests, which have no body). */
function parseResponses(buf, heads = new Set()) {
    const out = [];
    let off = 0;
    for (;;) {
        const end = buf.indexOf('\r\n\r\n', off);
        if (end < 0) break;
        const lines = buf.slice(off, end).toString('latin1').split('\r\n');
        const m = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0]);
        assert.ok(m, `a status line: ${lines[0]}`);
        const headers = {};
        for (const l of lines.slice(1)) {
            const i = l.indexOf(':');
            headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
        }
        const status = Number(m[1]);
        let p = end + 4, body;
        if (status < 200 || status === 204 || heads.has(out.length)) {
            body = Buffer.alloc(0);
        } else if (headers['transfer-encoding'] === 'chunked') {
            const parts = [];
            for (;;) {
                const nl = buf.indexOf('\r\n', p);
                if (nl < 0) return out;
                const size = parseInt(buf.slice(p, nl).toString(), 16);
                if (buf.length < nl + 2 + size + 2) return out;
                parts.push(buf.slice(nl + 2, nl + 2 + size));
                p = nl + 2 + size + 2;
                if (size === 0) break;
            }
            body = Buffer.concat(parts);
        } else if (headers['content-length'] !== undefined) {
            const n = Number(headers['content-length']);
            if (buf.length < p + n) return out;
            body = buf.slice(p, p + n);
            p += n;
        } else {
            body = buf.slice(p); // until close
            p = buf.length;
        }
        out.push({ status, headers, text: body.toString() });
        off = p;
    }
    return out;
}

/** A raw connection: write bytes, wait for N responses or for the close. */
function rawConn(port) {
    const sock = net.connect({ host: HOST, port });
    let buf = Buffer.alloc(0), closed = false;
    const heads = new Set();
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); });
    sock.on('close', () => { closed = true; });
    sock.on('error', () => { closed = true; });
    return {
        sock,
        write: (s) => sock.write(typeof s === 'string' ? s.replace(/\n/g, '\r\n') : s),
        responses: () => parseResponses(buf, heads),
        head: (i) => heads.add(i),
        get closed() { return closed; },
        get raw() { return buf.toString('latin1'); },
        async wait(n, what = `${n} responses`) {
            await waitFor(() => parseResponses(buf, heads).length >= n || closed, { what, timeout: 5000 });
            return parseResponses(buf, heads);
        },
        async waitClosed(timeout = 5000) { await waitFor(() => closed, { what: 'the close', timeout }); },
        close: () => sock.destroy(),
    };
}

test('keep-alive: several requests in turn on one connection', async () => {
    const b = await broker();
    const c = rawConn(b.port);
    for (let i = 1; i <= 3; i++) {
        c.write(`GET /health HTTP/1.1\nHost: x\n\n`);
        const r = await c.wait(i);
        assert.equal(r[i - 1].status, 200);
        assert.equal(JSON.parse(r[i - 1].text).status, 'ok');
        assert.equal(r[i - 1].headers.connection, undefined, 'HTTP/1.1 stays open');
    }
    assert.equal(c.closed, false);
    c.close();
});

test('pipelining: requests sent at once are answered in order', async () => {
    const b = await broker();
    const name = uniq('pipe');
    const c = rawConn(b.port);
    const pub = (d) => `POST ${evPath(name)} HTTP/1.1\nHost: x\nContent-Type: text/plain\nContent-Length: ${d.length}\n\n${d}`;
    c.write(pub('one') + pub('two') + `GET ${evPath(name)} HTTP/1.1\nHost: x\n\n` + pub('three'));
    const r = await c.wait(4);
    assert.deepEqual(r.map((x) => x.status), [201, 201, 200, 201]);
    const ids = [r[0], r[1], r[3]].map((x) => Number(JSON.parse(x.text).id));
    assert.ok(ids[0] < ids[1] && ids[1] < ids[2], `ids in order: ${ids}`);
    assert.deepEqual(JSON.parse(r[2].text).events.map((e) => e.data), ['one', 'two']);
    c.close();
});

test('a chunked request body publishes like a sized one', async () => {
    const b = await broker();
    const name = uniq('chunked');
    const c = rawConn(b.port);
    c.write(`POST ${evPath(name)} HTTP/1.1\nHost: x\nContent-Type: text/plain\nTransfer-Encoding: chunked\n\n`);
    c.sock.write('5;ext=1\r\nhello\r\n');
    await sleep(50); // the rest in a later segment
    c.sock.write('6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n');
    const r = await c.wait(1);
    assert.equal(r[0].status, 201, r[0].text);
    const h = await b.req('GET', evPath(name));
    assert.deepEqual(h.json.events.map((e) => e.data), ['hello world']);
    c.close();
});

test('a body arriving in pieces, past 4 KiB, sized or chunked, publishes whole', async () => {
    // The body is allocated as it arrives (httpd.c body_room): it grows
    // across reads, a chunk's data split between segments included.
    const b = await broker();
    const name = uniq('pieces');
    const c = rawConn(b.port);
    const text = (n, seed) => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + ((i * 7 + seed) % 26))).join('');
    const sized = text(20000, 1), chunked = text(15000, 2);
    const head = `POST ${evPath(name)} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n`;
    c.sock.write(head + `Content-Length: ${sized.length}\r\n\r\n`);
    for (let i = 0; i < sized.length; i += 3000) {
        c.sock.write(sized.slice(i, i + 3000));
        await sleep(10); // each piece in a segment of its own, most likely
    }
    c.sock.write(head + 'Transfer-Encoding: chunked\r\n\r\n');
    let wire = '';
    for (let i = 0; i < chunked.length; i += 1500)
        wire += `${Math.min(1500, chunked.length - i).toString(16)}\r\n${chunked.slice(i, i + 1500)}\r\n`;
    wire += '0\r\n\r\n';
    for (let i = 0; i < wire.length; i += 2000) {
        c.sock.write(wire.slice(i, i + 2000));
        await sleep(10);
    }
    c.sock.write(`GET ${evPath(name)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const r = await c.wait(3);
    assert.deepEqual(r.map((x) => x.status), [201, 201, 200], r.map((x) => x.text).join(' '));
    const got = JSON.parse(r[2].text).events.map((e) => e.data);
    assert.equal(got.length, 2);
    assert.ok(got[0] === sized, 'the sized body whole');
    assert.ok(got[1] === chunked, 'the chunked body whole');
    c.close();
});

test('Expect: 100-continue gets 100 before the body is sent', async () => {
    const b = await broker();
    const name = uniq('expect');
    const c = rawConn(b.port);
    c.write(`POST ${evPath(name)} HTTP/1.1\nHost: x\nContent-Type: text/plain\nContent-Length: 4\nExpect: 100-continue\n\n`);
    const interim = await c.wait(1, 'the interim 100');
    assert.equal(interim[0].status, 100);
    c.write('body');
    const r = await c.wait(2);
    assert.equal(r[1].status, 201);
    c.close();
});

test('HTTP/1.0 is answered and closed; keep-alive when asked; absolute-form works; bare LF does not', async () => {
    const b = await broker();
    let c = rawConn(b.port);
    c.sock.write('GET /health HTTP/1.0\r\n\r\n'); // no Host
    let r = await c.wait(1);
    assert.equal(r[0].status, 200);
    assert.equal(r[0].headers.connection, 'close');
    await c.waitClosed();

    // Bare LF line ends: refused (a proxy may frame them otherwise), and closed.
    c = rawConn(b.port);
    c.sock.write('GET /health HTTP/1.0\n\n');
    r = await c.wait(1);
    assert.equal(r[0].status, 400);
    assert.equal(JSON.parse(r[0].text).error.code, 'invalid_request');
    await c.waitClosed();

    c = rawConn(b.port);
    c.write('GET /health HTTP/1.0\nConnection: keep-alive\n\n');
    r = await c.wait(1);
    assert.equal(r[0].headers.connection, 'keep-alive');
    c.write('GET http://example.test:8080/health HTTP/1.1\nHost: x\n\n');
    r = await c.wait(2);
    assert.equal(r[1].status, 200, 'absolute-form target served by its path');
    c.head(2);
    c.write('HEAD /health HTTP/1.1\nHost: x\n\n');
    r = await c.wait(3);
    assert.equal(r[2].status, 200);
    assert.ok(Number(r[2].headers['content-length']) > 0, 'HEAD tells the length');
    c.write('GET /health HTTP/1.1\nHost: x\nConnection: close\n\n');
    await c.waitClosed();
    assert.equal(c.responses().length, 4, 'HEAD sent no body: the next response parses');
});

test('idle timeout: a half-sent request gets 408 and is closed, an idle keep-alive is closed', async () => {
    const b = await broker({ idle_timeout_s: 1 });
    const half = rawConn(b.port);
    half.write('POST /channels/x/events HTTP/1.1\nHost: x\nContent-Length: 10\n\nabc');
    const idle = rawConn(b.port);
    idle.write('GET /health HTTP/1.1\nHost: x\n\n');
    await idle.wait(1);
    await half.waitClosed(4000);
    await idle.waitClosed(4000);
    const r = half.responses();
    assert.equal(r.length, 1);
    assert.equal(r[0].status, 408);
    assert.equal(JSON.parse(r[0].text).error.code, 'request_timeout');
    assert.equal(r[0].headers['access-control-allow-origin'], '*', 'a page can read the 408');
    assert.equal(idle.responses().length, 1, 'the idle connection got nothing more');
});

test('max_connections: past it a subscriber gets 200 + retry: and an ended stream, others 503', async () => {
    const b = await broker({ max_connections: 5, backoff_ms: 7000 });
    const name = uniq('maxconn');
    const held = [];
    for (let i = 0; i < 5; i++) {
        const c = rawConn(b.port);
        c.write('GET /health HTTP/1.1\nHost: x\n\n');
        await c.wait(1);
        held.push(c);
    }
    // The sixth connection is over the limit.
    const sub = rawConn(b.port);
    sub.write(`GET ${evPath(name)} HTTP/1.1\nHost: x\nAccept: text/event-stream\n\n`);
    let r = await sub.wait(1);
    assert.equal(r[0].status, 200);
    assert.match(r[0].headers['content-type'], /text\/event-stream/);
    assert.match(r[0].text, /^retry: 7000\n/);
    const other = rawConn(b.port);
    other.write(`POST ${evPath(name)} HTTP/1.1\nHost: x\nContent-Length: 1\n\nx`);
    r = await other.wait(1);
    assert.equal(r[0].status, 503);
    assert.equal(r[0].headers['retry-after'], '5');
    assert.equal(JSON.parse(r[0].text).error.code, 'limit_reached');
    await other.waitClosed();
    // /health still answers past the limit, and counts what happened.
    const hc = rawConn(b.port);
    hc.write('GET /health HTTP/1.1\nHost: x\n\n');
    r = await hc.wait(1);
    const stats = JSON.parse(r[0].text).stats;
    assert.ok(stats.sockets >= 6, `sockets counted: ${stats.sockets}`);
    assert.ok(stats.refused_connections >= 2, `refusals counted: ${stats.refused_connections}`);
    hc.close();
    sub.close();
    // Below the limit again: served as usual.
    for (const c of held) c.close();
    await waitFor(async () => (await b.req('GET', '/health')).json.stats.sockets <= 2, { what: 'connections closed' });
    const ok = await b.req('POST', evPath(name), { body: 'fine', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(ok.status, 201);
});
