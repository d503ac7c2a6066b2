// it_metrics.mjs - GET /metrics: the Prometheus text format (checked by
// `promtool check metrics`), counters that follow what the test did
// (publishes by result, streams opened and closed by reason, deliveries, a
// slow reader cut), well-formed histograms, access control, and under
// --workers one scrape showing every worker whichever answers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';

import { brokerPool, uniq, evPath, chPath, waitFor, HOST, STORE } from './lib/broker.mjs';
import { startRedis } from './lib/redis.mjs';
import { sha256hex } from './lib/jwt.mjs';

const broker = brokerPool(after);

/** Parse the text format into [{name, labels: {}, value}] (values as numbers). */
function parse(text) {
    const out = [];
    for (const line of text.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
        assert.ok(m, `a sample line: ${JSON.stringify(line)}`);
        const labels = {};
        for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
            labels[l[1]] = l[2];
        out.push({ name: m[1], labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
    }
    return out;
}

/** The sum of the samples named 'name' whose labels include 'labels'. */
function val(samples, name, labels = {}) {
    let sum = 0, seen = false;
    for (const s of samples) {
        if (s.name !== name || Object.entries(labels).some(([k, v]) => s.labels[k] !== v)) continue;
        sum += s.value;
        seen = true;
    }
    assert.ok(seen, `a sample ${name}${JSON.stringify(labels)}`);
    return sum;
}

/** Scrape, check the answer with promtool, return the samples. */
async function scrape(b, headers = {}) {
    const r = await b.req('GET', '/metrics', { headers });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    const p = spawnSync('promtool', ['check', 'metrics'], { input: r.text, encoding: 'utf8', timeout: 20000 });
    assert.equal(p.status, 0, `promtool check metrics: ${p.stdout}${p.stderr}\n${r.text}`);
    return { text: r.text, samples: parse(r.text) };
}

/** Every histogram of 'samples' is well-formed: buckets cumulative, le="+Inf"
 * last and equal to _count, per label set. */
function checkHistograms(samples) {
    const groups = new Map();
    for (const s of samples) {
        if (!s.name.endsWith('_bucket')) continue;
        const { le, ...rest } = s.labels;
        const key = `${s.name.slice(0, -7)}${JSON.stringify(rest)}`;
        if (!groups.has(key)) groups.set(key, { base: s.name.slice(0, -7), labels: rest, b: [] });
        groups.get(key).b.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    }
    assert.ok(groups.size >= 3, 'three histograms at least');
    for (const { base, labels, b } of groups.values()) {
        for (let i = 1; i < b.length; i++) {
            assert.ok(b[i][0] > b[i - 1][0], `${base}: bounds ascend`);
            assert.ok(b[i][1] >= b[i - 1][1], `${base}: buckets are cumulative`);
        }
        assert.equal(b[b.length - 1][0], Infinity, `${base}: le="+Inf" last`);
        const count = val(samples.filter((s) => JSON.stringify(s.labels) === JSON.stringify(labels)), `${base}_count`);
        assert.equal(b[b.length - 1][1], count, `${base}: +Inf bucket = _count`);
        assert.ok(val(samples.filter((s) => JSON.stringify(s.labels) === JSON.stringify(labels)), `${base}_sum`) >= 0);
    }
}

test('/metrics: the text format passes promtool, with every family named', async () => {
    const b = await broker();
    const { text, samples } = await scrape(b);
    for (const name of ['ssebroker_build_info', 'ssebroker_uptime_seconds', 'ssebroker_sockets_open',
        'ssebroker_sockets_accepted_total', 'ssebroker_streams_open', 'ssebroker_streams_closed_total',
        'ssebroker_publishes_total', 'ssebroker_messages_delivered_total', 'ssebroker_delivered_bytes_total',
        'ssebroker_publish_duration_seconds', 'ssebroker_store_up', 'ssebroker_store_operation_duration_seconds',
        'ssebroker_store_batch_operations', 'ssebroker_memory_used_bytes', 'ssebroker_memory_max_bytes'])
        assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    assert.equal(val(samples, 'ssebroker_build_info'), 1);
    assert.equal(val(samples, 'ssebroker_store_up', { store: STORE }), 1);
    assert.equal(val(samples, 'ssebroker_memory_max_bytes'), 1 << 30);
    assert.ok(val(samples, 'ssebroker_sockets_open') >= 1, 'this scrape has a socket');
    // HEAD: the headers alone.
    const h = await b.req('HEAD', '/metrics');
    assert.equal(h.status, 200);
    assert.equal(h.text, '');
});

test('/metrics: counters follow publishes, streams and deliveries; histograms are well-formed', async () => {
    const b = await broker();
    const ch = uniq('m');
    const before = (await scrape(b)).samples;

    const s1 = await b.stream(evPath(ch));
    const s2 = await b.stream(evPath(ch));
    await s1.waitOpen();
    await s2.waitOpen();
    const N = 5;
    let bytes = 0;
    for (let i = 0; i < N; i++) {
        const data = `message ${i} ${'x'.repeat(i * 100)}`;
        bytes += data.length;
        assert.equal((await b.req('POST', evPath(ch), { body: data })).status, 201);
    }
    assert.equal((await b.req('POST', evPath(ch), { body: [{ data: 'a' }, { data: 'b' }] })).status, 201);
    bytes += 2;
    for (let i = 0; i < 2; i++)
        assert.equal((await b.req('POST', evPath(ch), { body: '{bad', headers: { 'Content-Type': 'application/json' } })).status, 400);
    await s1.waitEvents(N + 2);
    await s2.waitEvents(N + 2);

    s1.close();
    await waitFor(async () => {
        const { samples } = await scrape(b);
        return val(samples, 'ssebroker_streams_closed_total', { reason: 'client' }) ===
            val(before, 'ssebroker_streams_closed_total', { reason: 'client' }) + 1;
    }, { what: 'the closed stream counted (client)' });
    assert.equal((await b.req('DELETE', chPath(ch))).status, 204);
    await s2.waitEnd();

    const after_ = (await scrape(b)).samples;
    const d = (name, labels) => val(after_, name, labels) - val(before, name, labels);
    assert.equal(d('ssebroker_publishes_total', { result: 'ok' }), N + 1, 'publish requests ok');
    assert.equal(d('ssebroker_publishes_total', { result: 'invalid' }), 2, 'bad requests');
    assert.equal(d('ssebroker_messages_published_total'), N + 2, 'messages published');
    assert.equal(d('ssebroker_streams_opened_total'), 2);
    assert.equal(d('ssebroker_streams_closed_total', { reason: 'client' }), 1);
    assert.equal(d('ssebroker_streams_closed_total', { reason: 'deleted' }), 1);
    assert.equal(val(after_, 'ssebroker_streams_open'), 0);
    assert.equal(d('ssebroker_messages_delivered_total'), 2 * (N + 2), 'each message to both streams');
    assert.ok(d('ssebroker_delivered_bytes_total') >= 2 * bytes, 'bytes delivered cover the data');
    assert.equal(d('ssebroker_publish_duration_seconds_count'), N + 1, 'one latency per publish');
    assert.ok(d('ssebroker_store_operation_duration_seconds_count', { store: STORE }) > 0, 'store operations timed');
    if (STORE === 'redis') assert.ok(d('ssebroker_store_batch_operations_count') > 0, 'batches counted');
    checkHistograms(after_);
});

test('/metrics: delivered bytes are the frames written: the plain one, or the envelope', async () => {
    const b = await broker({ heartbeat_s: 3600 });
    const ch = uniq('bytes');
    assert.equal((await b.req('PUT', chPath(ch), { body: {} })).status, 201);
    const streams = [
        await b.stream(evPath(ch)),
        await b.stream(`${evPath(ch)}?envelope=1`),
        await b.stream(`/events?channel=${ch}`),
    ];
    for (const s of streams)
        await s.waitUntil(() => s.session !== null, 5000, 'the session event');
    const written = () => streams.map((s) => Buffer.byteLength(s.raw));
    const raw0 = written();
    const before = (await scrape(b)).samples;
    assert.equal((await b.req('POST', evPath(ch), { body: { data: 'x'.repeat(300), event: 'e' } })).status, 201);
    for (const s of streams)
        await s.waitEvents(1);
    const after_ = (await scrape(b)).samples;
    const grown = written().map((n, i) => n - raw0[i]);
    assert.ok(grown[1] > grown[0] + 20, `the envelope is longer than the plain frame: ${grown}`);
    const d = (name) => val(after_, name) - val(before, name);
    assert.equal(d('ssebroker_messages_delivered_total'), 3);
    assert.equal(d('ssebroker_delivered_bytes_total'), grown[0] + grown[1] + grown[2],
        `each stream's frame as written: ${grown}`);
    for (const s of streams)
        s.close();
});

test('/metrics: a reader that does not read is cut and counted as slow', async () => {
    const b = await broker({ limits: { stream_buffer: 4096 } });
    const ch = uniq('slow');
    const sock = await new Promise((resolve, reject) => {
        const s = net.connect({ host: HOST, port: b.port }, () => {
            s.pause(); // never read: the kernel's buffers fill, then ours
            s.write(`GET ${evPath(ch)} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
            resolve(s);
        });
        s.on('error', () => { /* cut: that is the point */ });
        s.once('error', reject);
    });
    try {
        await waitFor(async () => val((await scrape(b)).samples, 'ssebroker_streams_open') === 1,
            { what: 'the stream open' });
        const batch = Array.from({ length: 200 }, (_, i) => ({ data: `${i}:${'y'.repeat(4000)}` }));
        for (let i = 0; i < 100; i++) {
            assert.equal((await b.req('POST', evPath(ch), { body: batch })).status, 201);
            if (val((await scrape(b)).samples, 'ssebroker_slow_disconnects_total') >= 1) break;
        }
        const { samples } = await scrape(b);
        assert.equal(val(samples, 'ssebroker_slow_disconnects_total'), 1);
        assert.equal(val(samples, 'ssebroker_streams_closed_total', { reason: 'slow' }), 1);
    } finally {
        sock.destroy();
    }
});

test('/metrics: publishes to a missing channel (autocreate false) count as not_found', async () => {
    const b = await broker({ autocreate: false });
    for (let i = 0; i < 3; i++)
        assert.equal((await b.req('POST', evPath(uniq('none')), { body: 'x' })).status, 404);
    const { samples } = await scrape(b);
    assert.equal(val(samples, 'ssebroker_publishes_total', { result: 'not_found' }), 3);
    assert.equal(val(samples, 'ssebroker_publishes_total', { result: 'ok' }), 0);
});

test('/metrics with access control: 401 anonymous, 403 without manage, 200 with it', async () => {
    const key = 'k_metrics_admin', reader = 'k_metrics_reader';
    const b = await broker({
        auth: {
            roles: {
                admin: [{ match: '*', allow: ['publish', 'subscribe', 'history', 'manage'] }],
                reader: [{ match: 'news.*', allow: ['subscribe'] }],
            },
            api_keys: [{ name: 'ops', role: 'admin', sha256: sha256hex(key) },
                { name: 'app', role: 'reader', sha256: sha256hex(reader) }],
        },
    });
    const anon = await b.req('GET', '/metrics');
    assert.equal(anon.status, 401);
    assert.equal((await b.req('GET', '/metrics', { headers: { 'X-API-Key': reader } })).status, 403);
    const { samples } = await scrape(b, { 'X-API-Key': key });
    assert.equal(val(samples, 'ssebroker_build_info'), 1);
    // A publish refused by access control is counted as denied.
    assert.equal((await b.req('POST', evPath('news.x'), { body: 'no', headers: { 'X-API-Key': reader } })).status, 403);
    const s2 = (await scrape(b, { 'X-API-Key': key })).samples;
    assert.equal(val(s2, 'ssebroker_publishes_total', { result: 'denied' }), 1);
});

test('/metrics under --workers 2: every scrape shows both workers, whichever answers',
    { skip: STORE !== 'redis' && 'runs once, on a Redis of its own (the redis run)' }, async () => {
        const r = await startRedis();
        try {
            const b = await broker(undefined, ['--store', r.url, '--workers', '2']);
            const ch = uniq('w');
            // Publish on whichever workers the kernel picks, then wait for a
            // heartbeat: every worker's series carries what it counted.
            for (let i = 0; i < 10; i++)
                assert.equal((await b.req('POST', evPath(ch), { body: `m${i}` })).status, 201);
            await waitFor(async () => {
                const { samples } = await scrape(b);
                return val(samples, 'ssebroker_publishes_total', { result: 'ok' }) === 10;
            }, { timeout: 8000, what: 'every worker\'s publishes in one scrape' });
            for (let i = 0; i < 8; i++) {
                const { samples } = await scrape(b);
                const workers = new Set(samples.filter((s) => s.name === 'ssebroker_build_info')
                    .map((s) => s.labels.worker));
                assert.deepEqual([...workers].sort(), ['1', '2'], `scrape ${i}: both workers`);
                const nodes = new Set(samples.filter((s) => s.name === 'ssebroker_uptime_seconds')
                    .map((s) => s.labels.node));
                assert.equal(nodes.size, 2, 'two nodes');
                assert.equal(val(samples, 'ssebroker_publishes_total', { result: 'ok' }), 10,
                    'the sum over the workers is what was published');
                checkHistograms(samples);
            }
            assert.equal(await b.stop({ timeout: 15000 }), 0);
        } finally {
            await r.stop();
        }
    });
