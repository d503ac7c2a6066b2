// it_limits.mjs - every configured limit, driven against the real binary:
// streams (in all and per channel), channels, connections per channel, the
// per-stream output buffer (slow readers), and the idle timeout (stalled
// requests). Each refused subscriber must get 200 + retry: and an ended stream
// (an EventSource gives up for good on any other status); everything else a
// JSON 503 with Retry-After. After each limit, normal service goes on.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

import { startBroker, uniq, chPath, evPath, waitFor, checkError, HOST } from './lib/broker.mjs';

const brokers = [];
after(async () => {
    for (const b of brokers) if (b.alive()) await b.stop();
});

async function broker(limits, extra = {}) {
    const b = await startBroker({ config: { limits, ...extra } });
    brokers.push(b);
    return b;
}

async function health(b) {
    const h = await b.req('GET', '/health');
    assert.equal(h.status, 200, h.text);
    return h.json.stats;
}

/** A refused subscriber: 200, event-stream, retry: backoff, then the end. */
async function assertSentAway(b, path, backoff) {
    const s = await b.stream(path);
    assert.equal(s.status, 200, 'a refused subscriber still gets 200');
    assert.match(String(s.headers['content-type']), /^text\/event-stream/);
    await s.waitEnd();
    assert.match(s.raw, new RegExp(`^retry: ${backoff}\\n: busy`), s.raw);
    assert.equal(s.events.length, 0);
}

async function publishOk(b, name, data) {
    const r = await b.req('POST', evPath(name), { body: data, headers: { 'Content-Type': 'text/plain' } });
    assert.equal(r.status, 201, r.text);
    return r.json.id;
}

test('max_streams_per_channel and max_streams send subscribers away with a retry', async () => {
    const b = await broker({ max_streams_per_channel: 2, max_streams: 3, backoff_ms: 7000 });
    const a = uniq('a'), c = uniq('c');
    const s1 = await b.stream(evPath(a)), s2 = await b.stream(evPath(a));
    await s1.waitOpen();
    await s2.waitOpen();
    await assertSentAway(b, evPath(a), 7000); // third on the channel
    const s3 = await b.stream(evPath(c));
    await s3.waitOpen();
    await assertSentAway(b, evPath(uniq('d')), 7000); // fourth in all
    assert.equal((await health(b)).refused_streams, 2);

    // Those admitted keep working, and a freed place is taken again.
    const id = await publishOk(b, a, 'still here');
    await s1.waitEvents(1);
    await s2.waitEvents(1);
    assert.equal(s1.events[0].id, id);
    s3.close();
    await waitFor(async () => (await health(b)).streams === 2, { what: 'the closed stream is gone' });
    const s4 = await b.stream(evPath(c));
    await s4.waitOpen();
    assert.equal(s4.status, 200);
    assert.equal(s4.ended, false);
    for (const s of [s1, s2, s4]) s.close();
});

test('a connection stream taking over its own connection is not refused', async () => {
    const b = await broker({ max_streams_per_channel: 1 });
    const name = uniq('t');
    const cn = await b.req('POST', `${chPath(name)}/connections`);
    assert.equal(cn.status, 201, cn.text);
    const p = `${chPath(name)}/connections/${cn.json.id}/events`;
    const first = await b.stream(p);
    await first.waitOpen();
    const second = await b.stream(p);
    await second.waitOpen();
    await first.waitEnd(); // taken over, not refused
    assert.equal(second.ended, false);
    second.close();
});

test('max_channels: creation beyond it is refused, existing channels serve on', async () => {
    const b = await broker({ max_channels: 2, backoff_ms: 1000 });
    const [x, y, z] = [uniq('x'), uniq('y'), uniq('z')];
    assert.equal((await b.req('PUT', chPath(x))).status, 201);
    await publishOk(b, y, 'autocreated'); // the second channel
    const put = await b.req('PUT', chPath(z));
    checkError(assert, put, 503, 'limit_reached', 'PUT beyond max_channels');
    assert.ok(put.headers['retry-after'], 'Retry-After is set');
    checkError(assert, await b.req('POST', evPath(z), { body: 'x' }), 503, 'limit_reached');
    checkError(assert, await b.req('POST', `${chPath(z)}/connections`), 503, 'limit_reached');
    await assertSentAway(b, evPath(z), 1000);
    const list = await b.req('GET', '/channels');
    assert.deepEqual(list.json.channels.map((ch) => ch.name).sort(), [x, y].sort(), 'nothing created');
    await publishOk(b, x, 'fine'); // existing channels are unaffected
    assert.equal((await b.req('DELETE', chPath(x))).status, 204);
    assert.equal((await b.req('PUT', chPath(z))).status, 201, 'a freed place can be used');
});

test('max_connections_per_channel: one more connection is refused', async () => {
    const b = await broker({ max_connections_per_channel: 2 });
    const name = uniq('q');
    for (let i = 0; i < 2; i++)
        assert.equal((await b.req('POST', `${chPath(name)}/connections`)).status, 201);
    const r = await b.req('POST', `${chPath(name)}/connections`);
    checkError(assert, r, 503, 'limit_reached');
    assert.equal((await b.req('GET', chPath(name))).json.connections, 2);
});

/** Resident memory of a process, in KiB. */
function rssKiB(pid) {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]);
}

/** A raw client that sends 'text'; 'read' false: it never reads. */
function rawClient(port, text, { read = false } = {}) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: HOST, port }, () => {
            if (!read) sock.pause(); // never read: the kernel buffers fill, then ours
            else sock.resume(); // read and discard, so a close is seen
            if (text) sock.write(text);
            resolve(sock);
        });
        sock.on('error', () => { /* the broker may cut it: that is the point */ });
        sock.once('error', reject);
    });
}

test('slow and stalled clients: bounded memory, slow ones cut, others lose nothing', async (t) => {
    const N = 1000;
    // Backpressure off: this is about slow readers, and on a loaded machine
    // writing 20 KiB to 1000 streams per request can fall a second behind
    // (a 503 overloaded, right in itself, would fail it).
    const b = await broker({ stream_buffer: 65536, idle_timeout_s: 2, max_streams: 5000,
        max_delivery_lag_ms: 0 }, { heartbeat_s: 1 });
    const name = uniq('slow');
    const base = rssKiB(b.pid);

    // 1000 subscribers that never read, and 1000 requests that stall halfway.
    // The readers' tiny receive buffers keep the kernel from holding megabytes
    // for them, so that they are cut after about stream_buffer each, quickly
    // even on a loaded machine.
    const slow = await nonReaders(b.port, N, evPath(name));
    t.after(() => slow.stop()); // also when an assertion fails: the child holds the sockets
    const stalled = [];
    for (let i = 0; i < N; i++)
        stalled.push(await rawClient(b.port, `POST ${evPath(name)} HTTP/1.1\r\nHost: x\r\nContent-Le`,
            { read: true }));
    const closed = stalled.map((s) => new Promise((r) => s.once('close', () => r(true))));

    // A normal subscriber on the same channel must see every message in order.
    const good = await b.stream(evPath(name));
    await good.waitOpen();
    await waitFor(async () => (await health(b)).streams === N + 1, { timeout: 10000, what: 'all subscribed' });

    // Publish 1 KiB messages for a bounded time, until every slow one is cut.
    const payload = 'x'.repeat(1024);
    const ids = [];
    let peak = 0;
    const deadline = Date.now() + 30000;
    for (let i = 0; Date.now() < deadline && i < 20000; i++) {
        const batch = Array.from({ length: 20 }, (_, k) => ({ data: `${i}:${k}:${payload}` }));
        const r = await b.req('POST', evPath(name), { body: batch });
        assert.equal(r.status, 201, r.text);
        ids.push(...r.json.ids);
        if (i % 10 === 0) {
            peak = Math.max(peak, rssKiB(b.pid));
            if ((await health(b)).slow_disconnects >= N) break;
        }
    }
    const stats = await health(b);
    peak = Math.max(peak, rssKiB(b.pid));
    t.diagnostic(`published ${ids.length} x 1 KiB; slow streams cut: ${stats.slow_disconnects}; ` +
        `RSS ${Math.round(base / 1024)} MiB at start, peak ${Math.round(peak / 1024)} MiB`);
    assert.equal(stats.slow_disconnects, N, 'every reader that never reads is cut');
    // Stated bound (production build): 160 MiB over the start-up size for
    // 1000 slow readers at stream_buffer 64 KiB (each slow stream holds at
    // most 64 KiB of shared frames plus one small chain per message); about
    // 1,000 1 KiB messages cut them all, measured ~25 MiB of growth. Under
    // AddressSanitizer the allocator keeps up to 256 MiB of freed memory in
    // quarantine by design, so RSS says nothing there and only the figure is
    // printed.
    if (process.env.ASAN_OPTIONS === undefined)
        assert.ok(peak - base < 160 * 1024, `RSS grew by ${Math.round((peak - base) / 1024)} MiB`);

    // The stalled requests were closed by the idle timeout.
    const all = await Promise.race([
        Promise.all(closed),
        new Promise((r) => setTimeout(() => r(false), 15000)),
    ]);
    assert.ok(all, 'every half-sent request is closed by the idle timeout');

    // The normal subscriber got everything, in order, with no loss.
    await good.waitEvents(ids.length, 20000);
    assert.deepEqual(good.events.map((e) => e.id), ids);
    good.close();
});

/**
 * 'n' subscribers of 'path' that never read, each with SO_RCVBUF 1024 so
 * that the kernel holds next to nothing for them and what they are sent
 * stays in the broker (node cannot set SO_RCVBUF: a perl child holds the
 * sockets; perl-base is part of every Debian system). Resolves once all are
 * connected; stop() kills the child by PID.
 */
async function nonReaders(port, n, path) {
    const script = `
        use strict; use Socket;
        my ($port, $n, $path) = @ARGV; my @s;
        for (1 .. $n) {
            socket(my $fh, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
            setsockopt($fh, SOL_SOCKET, SO_RCVBUF, pack("i", 1024)) or die "SO_RCVBUF: $!";
            connect($fh, sockaddr_in($port, inet_aton("127.0.0.1"))) or die "connect: $!";
            my $r = "GET $path HTTP/1.1\\r\\nHost: x\\r\\nAccept: text/event-stream\\r\\n\\r\\n";
            syswrite($fh, $r) == length($r) or die "write: $!";
            push @s, $fh;
        }
        $| = 1; print "ready\\n";
        my $wait = <STDIN>; # never read the sockets; end when the test closes stdin
    `;
    const proc = spawn('perl', ['-e', script, String(port), String(n), path], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    proc.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    const stop = () => { try { process.kill(proc.pid, 'SIGKILL'); } catch { /* gone */ } };
    try {
        await waitFor(() => out.includes('ready') || proc.exitCode !== null,
            { timeout: 10000, what: `${n} non-reading sockets` });
    } catch (e) {
        stop();
        throw e;
    }
    if (!out.includes('ready')) throw new Error(`perl helper failed: ${err}`);
    return { pid: proc.pid, stop };
}

test('non-reading streams of tiny messages are cut, and memory stays within stream_buffer x streams', async (t) => {
    // Issue 13: a tiny frame is 30 to 130 bytes, but each message queued on a
    // stream used to cost a 1 KiB buffer chain (a reference to the shared
    // frame), so stream_buffer, which counted the frame bytes, bounded nothing:
    // 1000 such streams took RSS to 4 GB without one being cut. What a stream
    // holds is now counted in what it costs (src/http/http_stream.c).
    const N = 100, BUF = 65536;
    const b = await broker({ stream_buffer: BUF, max_streams: 5000 }, { heartbeat_s: 3600 });
    const name = uniq('tiny');
    const slow = await nonReaders(b.port, N, evPath(name));
    try {
        await waitFor(async () => (await health(b)).streams === N, { timeout: 10000, what: 'all subscribed' });
        const base = rssKiB(b.pid);
        // 100 bytes: a ~130-byte frame, still far below the 1 KiB a reference
        // cost, and few enough batches to fill the kernel's buffers (about
        // 2 MiB a socket on loopback, whatever SO_RCVBUF) in a bounded time.
        const batch = Array.from({ length: 1000 }, () => ({ data: 'x'.repeat(100) }));
        let peak = base, sent = 0, stats;
        const started = Date.now();
        while (Date.now() - started < 20000 && sent < 100) {
            const r = await b.req('POST', evPath(name), { body: batch });
            assert.equal(r.status, 201, r.text);
            sent++;
            peak = Math.max(peak, rssKiB(b.pid));
            stats = await health(b);
            if (stats.slow_disconnects >= N) break;
        }
        const grew = peak - base;
        t.diagnostic(`${sent} x 1000 events of 100 bytes in ${Date.now() - started} ms; cut ${stats.slow_disconnects} of ${N}; ` +
            `RSS ${Math.round(base / 1024)} MiB after subscribing, peak +${Math.round(grew / 1024)} MiB`);
        assert.equal(stats.slow_disconnects, N, 'every stream that never reads is cut');
        // The bound: stream_buffer for each stream (6.25 MiB here), plus a
        // stated 8 MiB for everything else (the retained history, a
        // 1000-event publish being parsed and encoded, the allocator's
        // slack). Before the fix this run grew by ~50 MiB (N x ~500 queued
        // frames of 1 KiB each). Under AddressSanitizer RSS says nothing
        // (freed memory sits in quarantine): only the figure is printed.
        if (process.env.ASAN_OPTIONS === undefined)
            assert.ok(grew < (N * BUF) / 1024 + 8 * 1024, `RSS grew by ${Math.round(grew / 1024)} MiB`);
    } finally {
        slow.stop();
    }
});

test('idle timeout closes a stalled request but never a quiet stream', async () => {
    const b = await broker({ idle_timeout_s: 1 }, { heartbeat_s: 3600 });
    const name = uniq('quiet');
    const s = await b.stream(evPath(name));
    await s.waitOpen();
    const stalled = await rawClient(b.port, 'GET /health HTTP/1.1\r\nHost', { read: true });
    const t0 = Date.now();
    await new Promise((r) => stalled.once('close', r));
    assert.ok(Date.now() - t0 < 5000, 'stalled request closed');
    // The stream has been silent longer than the idle timeout and still works.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(s.ended, false, 'the quiet stream is still open');
    const id = await publishOk(b, name, 'late');
    await s.waitEvents(1);
    assert.equal(s.events[0].id, id);
    s.close();
});

test('a burst bigger than stream_buffer does not cut a subscriber that reads', async () => {
    // 4 KiB bound, a 60-message batch of ~1 KiB each published at once: the
    // frames are queued in one loop turn, far past the bound, yet the socket
    // takes them as fast as they come; only a client that leaves them unread
    // may be cut.
    const b = await broker({ stream_buffer: 4096 });
    const name = uniq('burst');
    const s = await b.stream(evPath(name));
    await s.waitOpen();
    const batch = Array.from({ length: 60 }, (_, i) => ({ data: `${i}:${'b'.repeat(1000)}` }));
    const r = await b.req('POST', evPath(name), { body: batch });
    assert.equal(r.status, 201);
    await s.waitEvents(60, 10000);
    assert.deepEqual(s.events.map((e) => e.id), r.json.ids);
    assert.equal(s.ended, false, 'still open');
    assert.equal((await health(b)).slow_disconnects, 0);
    s.close();
});
