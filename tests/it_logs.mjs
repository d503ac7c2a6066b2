// it_logs.mjs - log_format and access_log: with "json" every line of stderr
// is one JSON object with time, level, worker and message; the access log
// has a line per answer with its method, path, status, bytes and duration,
// and a line per stream end with its lifetime and reason; under --workers
// every line names its process, in text and in JSON.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { brokerPool, uniq, evPath, chPath, waitFor, STORE } from './lib/broker.mjs';
import { startRedis } from './lib/redis.mjs';

const broker = brokerPool(after);

/** Every line of stderr as JSON (throws, naming the line, if one is not). */
function jsonLines(text) {
    return text.split('\n').filter(Boolean).map((l) => {
        try {
            return JSON.parse(l);
        } catch (e) {
            throw new Error(`not a JSON line: ${JSON.stringify(l)}: ${e.message}`);
        }
    });
}

test('log_format json: only JSON lines, with time, level, worker, message', async () => {
    const b = await broker({ log_format: 'json', log_level: 'debug' });
    assert.equal((await b.req('POST', evPath(uniq('j')), { body: 'x' })).status, 201);
    assert.equal(await b.stop(), 0);
    const lines = jsonLines(b.stderr());
    assert.ok(lines.length >= 4, `several lines: ${b.stderr()}`);
    for (const o of lines) {
        assert.match(o.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'time');
        assert.ok(['debug', 'info', 'warn', 'error'].includes(o.level), `level ${o.level}`);
        assert.equal(o.worker, null, 'no worker without --workers');
        assert.equal(typeof o.message, 'string');
    }
    assert.ok(lines.some((o) => /listening on/.test(o.message)));
    assert.ok(lines.some((o) => /^signal 15: ending/.test(o.message)));
});

test('access_log: a line per answer and per stream end, with its reason', async () => {
    const b = await broker({ log_format: 'json', access_log: true });
    const ch = uniq('acc');
    assert.equal((await b.req('POST', evPath(ch), { body: 'hello' })).status, 201);
    assert.equal((await b.req('GET', chPath(uniq('missing')))).status, 404);
    const h = await b.req('GET', '/health');
    assert.equal(h.status, 200);
    // A path with a quote, a backslash and a long tail: escaped and bounded.
    const odd = `/channels/a"b\\c${'z'.repeat(3000)}/events?access_token=secret`;
    const oddStatus = (await b.req('GET', odd)).status;
    assert.ok(oddStatus >= 400 && oddStatus < 500, `odd path: ${oddStatus}`);

    const s1 = await b.stream(evPath(ch));
    await s1.waitOpen();
    s1.close();
    const s2 = await b.stream(evPath(ch));
    await s2.waitOpen();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await b.req('DELETE', chPath(ch))).status, 204);
    await s2.waitEnd();
    await waitFor(() => jsonLines(b.stderr()).filter((o) => o.message === 'stream end').length === 2,
        { what: 'two stream end lines' });
    assert.equal(await b.stop(), 0);

    const lines = jsonLines(b.stderr());
    const req = (method, path) => lines.filter((o) => o.message === 'request' && o.method === method &&
        o.path === path);
    const pub = req('POST', evPath(ch));
    assert.equal(pub.length, 1, 'one line for the publish');
    assert.equal(pub[0].status, 201);
    assert.ok(pub[0].bytes > 0);
    assert.ok(pub[0].duration_ms >= 0);
    assert.match(pub[0].remote, /^127\.0\.0\.1:\d+$/);
    assert.equal(lines.filter((o) => o.message === 'request' && o.status === 404 &&
        o.path.startsWith('/channels/missing')).length, 1, 'the 404');
    const health = req('GET', '/health');
    assert.equal(health.length, 1);
    assert.equal(health[0].bytes, Buffer.byteLength(h.text), 'bytes: the body sent');
    const bad = lines.filter((o) => o.message === 'request' && o.path.startsWith('/channels/a"'));
    assert.equal(bad.length, 1, 'the odd path');
    assert.equal(bad[0].status, oddStatus);
    assert.ok(bad[0].path.startsWith('/channels/a"b\\c'), 'quote and backslash kept, escaped in JSON');
    assert.ok(bad[0].path.length <= 512, 'the path is bounded');
    assert.ok(!lines.some((o) => JSON.stringify(o).includes('secret')), 'the query is never logged');
    const opened = lines.filter((o) => o.message === 'stream' && o.path === evPath(ch));
    assert.equal(opened.length, 2, 'one line per stream opened');
    assert.ok(opened.every((o) => o.status === 200));
    const ends = lines.filter((o) => o.message === 'stream end');
    assert.deepEqual(ends.map((o) => o.reason).sort(), ['client', 'deleted']);
    for (const o of ends) {
        assert.equal(o.channel, ch);
        assert.equal(o.connection, null);
        assert.match(o.session, /^[0-9a-f]{16}$/);
        assert.ok(o.lifetime_s > 0 && o.lifetime_s < 30, `lifetime ${o.lifetime_s}`);
    }
    assert.ok(ends.find((o) => o.reason === 'deleted').lifetime_s >= 0.1, 'the lifetime counts');
});

test('access_log in text: key=value fields on one line', async () => {
    const b = await broker({ access_log: true });
    assert.equal((await b.req('GET', '/health')).status, 200);
    assert.equal(await b.stop(), 0);
    assert.match(b.stderr(), /^\S+Z info  request method=GET path=\/health status=200 bytes=\d+ duration_ms=[\d.]+ remote=127\.0\.0\.1:\d+$/m);
});

test('under --workers every line names its process, in text and in JSON',
    { skip: STORE !== 'redis' && 'runs once, on a Redis of its own (the redis run)' }, async () => {
        const r = await startRedis();
        try {
            for (const format of ['text', 'json']) {
                const b = await broker({ store: { type: 'redis', url: r.url, prefix: `${uniq('lg')}:` },
                    log_format: format }, ['--workers', '2']);
                assert.equal(await b.stop({ timeout: 15000 }), 0);
                const text = b.stderr();
                const lines = text.split('\n').filter(Boolean);
                const who = format === 'json'
                    ? jsonLines(text).map((o) => o.worker)
                    : lines.map((l) => (/^\S+Z \w+\s+(\S+) /.exec(l) || [])[1]);
                for (let i = 0; i < lines.length; i++)
                    assert.ok(['supervisor', 'w1', 'w2'].includes(who[i]), `${format}: names its process: ${lines[i]}`);
                assert.ok(who.includes('w1') && who.includes('w2') && who.includes('supervisor'), format);
                // The two workers' shutdown lines are told apart.
                const sig = lines.filter((l) => /signal 15: ending/.test(l));
                assert.equal(sig.length, 2, `${format}: one per worker:\n${text}`);
                const untimed = (l) => l.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/, '');
                assert.notEqual(untimed(sig[0]), untimed(sig[1]), 'the two lines differ');
            }
        } finally {
            await r.stop();
        }
    });
