// it_config.mjs - the command line, config file errors (file:line: field),
// config effects (autocreate off, cors_origin, --listen override) and shutdown.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { startBroker, runBroker, tempFile, uniq, chPath, evPath, checkError, waitFor } from './lib/broker.mjs';

const started = [];
async function start(opts) {
    const b = await startBroker(opts);
    started.push(b);
    return b;
}
after(async () => {
    // Stop whatever a failed test left running (stop() of a stopped broker is a no-op).
    for (const b of started) if (b.alive()) await b.stop().catch(() => {});
});

describe('command line', () => {
    test('--help prints usage to stdout and exits 0', async () => {
        for (const flag of ['--help', '-h']) {
            const r = await runBroker([flag]);
            assert.equal(r.code, 0, `${flag} exit code; stderr ${r.stderr}`);
            assert.match(r.stdout, /^usage: ssebroker/m);
            for (const opt of ['--config', '--listen', '--help', '--version']) assert.ok(r.stdout.includes(opt), `${flag} mentions ${opt}`);
        }
    });

    test('--version prints "ssebroker X.Y.Z" and exits 0', async () => {
        const r = await runBroker(['--version']);
        assert.equal(r.code, 0);
        assert.match(r.stdout, /^ssebroker \d+\.\d+\.\d+\n$/);
        assert.equal(r.stdout, 'ssebroker 0.1.0\n');
    });

    test('an unknown option prints usage to stderr and exits 2', async () => {
        for (const args of [['--bogus'], ['-x'], ['--listen']]) {
            const r = await runBroker(args);
            assert.equal(r.code, 2, `${args.join(' ')} exit code; stderr ${r.stderr}`);
            assert.match(r.stderr, /usage: ssebroker/, `${args.join(' ')} prints usage to stderr`);
            assert.equal(r.stdout, '', 'nothing on stdout');
        }
    });
});

describe('invalid config files: exit 1, one line naming file, line and field', () => {
    // Each case: file content (the bad spot on a known line), expected line, expected text.
    const cases = [
        {
            name: 'heartbeat_s out of range (line 4)',
            text: '{\n  "autocreate": true,\n  "cors_origin": "*",\n  "heartbeat_s": 0,\n  "log_level": "info"\n}\n',
            line: 4, field: /heartbeat_s/,
        },
        {
            name: 'unknown top-level key (line 3)',
            text: '{\n  "heartbeat_s": 5,\n  "no_such_key": 1\n}\n',
            line: 3, field: /no_such_key/,
        },
        {
            name: 'nested option out of range (line 5)',
            text: '{\n  "autocreate": true,\n  "channel_defaults": {\n    "history": 10,\n    "queue_limit": 0\n  }\n}\n',
            line: 5, field: /queue_limit/,
        },
        {
            name: 'unknown nested key (line 3)',
            text: '{\n  "limits": {\n    "max_bodyy": 5\n  }\n}\n',
            line: 3, field: /max_bodyy/,
        },
        {
            name: 'wrong type (line 2)',
            text: '{\n  "autocreate": "yes"\n}\n',
            line: 2, field: /autocreate/,
        },
        {
            name: 'bad log_level (line 3)',
            text: '{\n  "heartbeat_s": 5,\n  "log_level": "loud"\n}\n',
            line: 3, field: /log_level/,
        },
        {
            name: 'cors_origin with CR/LF (line 2)',
            text: '{\n  "cors_origin": "a\\r\\nb"\n}\n',
            line: 2, field: /cors_origin/,
        },
        {
            name: 'empty cors_origin (line 2)',
            text: '{\n  "cors_origin": ""\n}\n',
            line: 2, field: /cors_origin/,
        },
        {
            name: 'max_headers below 1024 (line 3)',
            text: '{\n  "limits": {\n    "max_headers": 1023\n  }\n}\n',
            line: 3, field: /max_headers/,
        },
        {
            name: 'max_retry_ms over 86400000 (line 4)',
            text: '{\n  "limits": {\n    "max_body": 4096,\n    "max_retry_ms": 86400001\n  }\n}\n',
            line: 4, field: /limits\.max_retry_ms/,
        },
        {
            name: 'syntax error: missing comma (line 3)',
            text: '{\n  "autocreate": true\n  "heartbeat_s": 5\n}\n',
            line: 3, field: null,
        },
        {
            name: 'syntax error: unterminated object (line 4)',
            text: '{\n  "autocreate": true,\n  "heartbeat_s": 5,\n',
            line: 4, field: null,
        },
        {
            name: 'not an object (line 1)',
            text: '[1, 2]\n',
            line: 1, field: null,
        },
    ];
    for (const c of cases) {
        test(c.name, async () => {
            const file = tempFile(`bad-${uniq('cfg')}.json`, c.text);
            const base = path.basename(file);
            const r = await runBroker(['--config', file, '--listen', '127.0.0.1:0']);
            assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
            const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
            assert.equal(lines.length, 1, `exactly one line on stderr: ${JSON.stringify(r.stderr)}`);
            const msg = lines[0];
            assert.ok(msg.includes(base), `names the file ${base}: ${msg}`);
            assert.match(msg, new RegExp(`${base.replace(/[.]/g, '\\.')}:${c.line}\\b`), `names line ${c.line}: ${msg}`);
            if (c.field) assert.match(msg, c.field, `names the field: ${msg}`);
            assert.doesNotMatch(msg, /listening on/);
        });
    }

    test('a missing config file: exit 1 naming the file', async () => {
        const file = path.join(path.dirname(tempFile('x.json', '{}')), 'does-not-exist.json');
        const r = await runBroker(['--config', file, '--listen', '127.0.0.1:0']);
        assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
        assert.match(r.stderr, /does-not-exist\.json/);
    });

    test('the full example config from the contract is valid', async () => {
        const b = await start({
            config: {
                listen: '127.0.0.1:8080',
                store: { type: 'memory' },
                autocreate: true,
                channel_defaults: { history: 100, queue_limit: 1000, retry_ms: 3000 },
                limits: { max_body: 1048576, max_headers: 16384 },
                heartbeat_s: 15,
                cors_origin: '*',
                log_level: 'info',
            },
        });
        assert.equal((await b.req('GET', '/health')).status, 200);
        assert.equal(await b.stop(), 0);
    });
});

describe('config effects', () => {
    test('autocreate false: publish/subscribe/connect to a missing channel → 404 channel_not_found', async () => {
        const b = await start({ config: { autocreate: false } });
        const ch = uniq('noauto');
        checkError(assert, await b.req('POST', evPath(ch), { body: { data: 'x' } }), 404, 'channel_not_found', 'publish');
        checkError(assert, await b.req('POST', evPath(ch), { body: 'raw', headers: { 'Content-Type': 'text/plain' } }),
            404, 'channel_not_found', 'raw publish');
        const s = await b.stream(evPath(ch));
        assert.equal(s.status, 404, 'subscribe to a missing channel');
        assert.match(String(s.headers['content-type']), /^application\/json/);
        await s.waitEnd();
        assert.equal(JSON.parse(s.body).error.code, 'channel_not_found');
        checkError(assert, await b.req('POST', `${chPath(ch)}/connections`), 404, 'channel_not_found', 'connection');
        checkError(assert, await b.req('GET', chPath(ch)), 404, 'channel_not_found', 'still missing');
        assert.deepEqual((await b.req('GET', '/channels')).json, { channels: [] });
        // Created explicitly, everything works.
        assert.equal((await b.req('PUT', chPath(ch))).status, 201);
        const p = await b.req('POST', evPath(ch), { body: { data: 'x' } });
        assert.equal(p.status, 201);
        const s2 = await b.stream(evPath(ch), { headers: { 'Last-Event-ID': 'x' } });
        assert.equal(s2.status, 200);
        assert.equal((await s2.waitEvents(1))[0].id, p.json.id);
        s2.close();
        assert.equal(await b.stop(), 0);
    });

    test('channel_defaults apply to new channels', async () => {
        const b = await start({ config: { channel_defaults: { history: 2, queue_limit: 7, retry_ms: 250 } } });
        const ch = uniq('defs');
        const r = await b.req('PUT', chPath(ch));
        assert.deepEqual(r.json.options, { history: 2, queue_limit: 7, retry_ms: 250 });
        const r2 = await b.req('PUT', chPath(uniq('defs')), { body: { history: 5 } });
        assert.deepEqual(r2.json.options, { history: 5, queue_limit: 7, retry_ms: 250 });
        const s = await b.stream(evPath(ch));
        await s.waitOpen();
        assert.ok(s.raw.startsWith('retry: 250\n'), JSON.stringify(s.raw));
        s.close();
        assert.equal(await b.stop(), 0);
    });

    test('cors_origin is sent on JSON, error, OPTIONS and SSE responses', async () => {
        const origin = 'https://example.test';
        const b = await start({ config: { cors_origin: origin } });
        const h = await b.req('GET', '/health');
        assert.equal(h.headers['access-control-allow-origin'], origin);
        const e = await b.req('GET', '/nope');
        assert.equal(e.status, 404);
        assert.equal(e.headers['access-control-allow-origin'], origin);
        const o = await b.req('OPTIONS', '/channels/x/events', { headers: { Origin: origin } });
        assert.equal(o.status, 204);
        assert.equal(o.headers['access-control-allow-origin'], origin);
        const p = await b.req('POST', evPath('corsy'), { body: { data: 'x' } });
        assert.equal(p.headers['access-control-allow-origin'], origin);
        const s = await b.stream(evPath('corsy'));
        assert.equal(s.headers['access-control-allow-origin'], origin);
        s.close();
        assert.equal(await b.stop(), 0);
    });

    test('--listen overrides the listen address of the config file', async () => {
        // Occupy a port and put it in the config: only the override lets the broker start.
        const blocker = net.createServer();
        await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
        const busy = blocker.address().port;
        try {
            const b = await start({ config: { listen: `127.0.0.1:${busy}` } });
            assert.notEqual(b.port, busy);
            assert.equal((await b.req('GET', '/health')).status, 200);
            assert.equal(await b.stop(), 0);
            // Without the override the busy port makes start-up fail (non-zero exit).
            const r = await runBroker(['--config', tempFile('busy.json', { listen: `127.0.0.1:${busy}` })]);
            assert.notEqual(r.code, 0, `binding a busy port must fail; stderr: ${r.stderr}`);
        } finally {
            blocker.close();
        }
    });

    test('limits.max_body: a body of exactly max_body is accepted, one byte more is 413', async () => {
        const b = await start({ config: { limits: { max_body: 100 } } });
        const ok = await b.req('POST', evPath('lim'), { body: 'x'.repeat(100), headers: { 'Content-Type': 'text/plain' } });
        assert.equal(ok.status, 201, ok.text);
        const big = await b.req('POST', evPath('lim'), { body: 'x'.repeat(101), headers: { 'Content-Type': 'text/plain' } });
        assert.equal(big.status, 413);
        assert.equal((await b.req('GET', evPath('lim'))).json.events.length, 1);
        assert.equal(await b.stop(), 0);
    });

    test('limits.max_retry_ms bounds a published retry; at the bound it reaches subscribers', async () => {
        const b = await start({ config: { limits: { max_retry_ms: 1500 } } });
        const ch = uniq('retry');
        const s = await b.stream(evPath(ch));
        await s.waitOpen();
        checkError(assert, await b.req('POST', evPath(ch), { body: { data: 'x', retry: 1501 } }),
            400, 'invalid_retry', 'one over the bound');
        const batch = await b.req('POST', evPath(ch), { body: [{ data: 'a' }, { data: 'b', retry: 86400000 }] });
        checkError(assert, batch, 400, 'invalid_retry', 'a batch with a day-long retry');
        assert.match(batch.json.error.message, /^events\[1\]: .*0 to 1500/);
        const ok = await b.req('POST', evPath(ch), { body: { data: 'ok', retry: 1500 } });
        assert.equal(ok.status, 201, ok.text);
        const [e] = await s.waitEvents(1);
        assert.equal(e.data, 'ok', 'nothing refused was published');
        assert.equal(e.retry, '1500');
        assert.equal((await b.req('GET', evPath(ch))).json.events.length, 1);
        s.close();
        assert.equal(await b.stop(), 0);
    });
});

describe('shutdown', () => {
    for (const sig of ['SIGTERM', 'SIGINT']) {
        test(`${sig} with live streams ends them and exits 0 promptly`, async () => {
            const b = await start();
            const ch = uniq('bye');
            const streams = [];
            for (let i = 0; i < 3; i++) streams.push(await b.stream(evPath(ch)));
            const c = await b.req('POST', `${chPath(ch)}/connections`);
            streams.push(await b.stream(`${chPath(ch)}/connections/${c.json.id}/events`));
            for (const s of streams) await s.waitOpen();
            await b.req('POST', evPath(ch), { body: { data: 'last words' } });
            for (const s of streams) await s.waitEvents(1);
            const t0 = Date.now();
            process.kill(b.pid, sig);
            const { code, signal } = await waitFor(() => !b.alive() && b.exited, { timeout: 5000, what: `exit after ${sig}` })
                .then(() => b.exited);
            const took = Date.now() - t0;
            assert.equal(signal, null, `exited by itself, not killed by ${signal}`);
            assert.equal(code, 0, `exit code after ${sig}; stderr:\n${b.stderr()}`);
            assert.ok(took < 3000, `shutdown took ${took} ms`);
            for (const s of streams) {
                await s.waitEnd(2000);
                assert.equal(s.endReason, 'end', 'the stream response finished cleanly');
            }
            assert.doesNotMatch(b.stderr(), /ERROR: \w+Sanitizer|runtime error:/);
        });
    }
});
