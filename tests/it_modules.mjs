// it_modules.mjs - event-processing modules (include/ssebroker/module.h):
// the example counter and webhook loaded from the config and reacting, what a
// module publishes reaching subscribers and history tagged with its source,
// loop protection (modules_max_depth), errors counted in /status and
// /metrics, and every load error stopping start-up with the file, line and
// field. The modules are built by `make` (SSEB_BUILDDIR: the build tree).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { sha256hex } from './lib/jwt.mjs';
import { brokerPool, runBroker, tempFile, uniq, req, evPath, openStream, waitFor, BIN } from './lib/broker.mjs';

const BUILD = process.env.SSEB_BUILDDIR || path.dirname(BIN);
const so = (p) => {
    const f = path.join(BUILD, p);
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run make (make check builds the test modules)`);
    return f;
};
const COUNTER = so('examples/modules/counter.so');
const WEBHOOK = so('examples/modules/webhook.so');
const RELAY = so('tests/modules/relay.so');

const broker = brokerPool(after);

async function history(b, ch) {
    const r = await req(b, 'GET', evPath(ch));
    return r.status === 200 ? r.json.events : [];
}
async function publish(b, ch, data) {
    const r = await req(b, 'POST', evPath(ch), { body: data, headers: { 'Content-Type': 'text/plain' } });
    assert.equal(r.status, 201, `publish on ${ch}: ${r.text}`);
    return r.json.id;
}
async function modStatus(b) {
    const r = await req(b, 'GET', '/status');
    assert.equal(r.status, 200, r.text);
    return Object.fromEntries(r.json.node.modules.map((m) => [m.name, m]));
}

describe('counter', () => {
    test('publishes {"channel", "count"} to stats.<channel> every N events, to history and subscribers', async () => {
        const ch = uniq('sensors.a');
        const b = await broker({
            modules: [{ name: 'cnt', path: COUNTER, match: ['sensors.*'], config: { every: 3 } }],
        });
        const s = await openStream(b, evPath(`stats.${ch}`));
        for (let i = 1; i <= 7; i++) await publish(b, ch, `v${i}`);
        const evs = await s.waitEvents(2);
        s.close();
        assert.deepEqual(evs.map((e) => [e.event, JSON.parse(e.data)]), [
            ['count', { channel: ch, count: 3 }],
            ['count', { channel: ch, count: 6 }],
        ]);
        const h = await waitFor(async () => {
            const v = await history(b, `stats.${ch}`);
            return v.length === 2 && v;
        }, { what: 'two counts in the history' });
        assert.deepEqual(h.map((e) => JSON.parse(e.data).count), [3, 6]);
        // A channel that does not match is not counted.
        await publish(b, uniq('other'), 'x');
        // 'published' counts once the module's publish is answered.
        const st = await waitFor(async () => {
            const v = (await modStatus(b)).cnt;
            return v.published === 2 && v;
        }, { what: 'two publishes counted' });
        assert.equal(st.module, 'counter');
        assert.equal(st.active, true);
        assert.equal(st.events, 7);
        assert.equal(st.published, 2);
        assert.equal(st.errors, 0);
    });

    test('every T milliseconds, for the channels whose count moved', async () => {
        const ch = uniq('m');
        const b = await broker({
            modules: [{ name: 'ticker', path: COUNTER, match: [`${ch}.*`],
                config: { every: 0, interval_ms: 100, prefix: 'tick.' } }],
        });
        await publish(b, `${ch}.x`, '1');
        await publish(b, `${ch}.x`, '2');
        // A tick may fall between the two publishes: the last count is 2.
        const h = await waitFor(async () => {
            const v = await history(b, `tick.${ch}.x`);
            return v.length >= 1 && JSON.parse(v[v.length - 1].data).count === 2 && v;
        }, { what: 'a count by time' });
        assert.ok(h.length <= 2);
        assert.deepEqual(JSON.parse(h[h.length - 1].data), { channel: `${ch}.x`, count: 2 });
        // Nothing moved since: no new count (three periods).
        await new Promise((r) => setTimeout(r, 350));
        assert.equal((await history(b, `tick.${ch}.x`)).length, h.length);
    });

    test('a bad config stops start-up naming the module\'s config line', async () => {
        const file = tempFile('counter-bad.json', `{
  "listen": "127.0.0.1:0",
  "modules": [
    {"name": "c", "path": ${JSON.stringify(COUNTER)}, "match": ["a"],
     "config": {"every": -1}}
  ]
}
`);
        const r = await runBroker(['--config', file]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`${path.basename(file).replace('.', '\\.')}:5: field 'modules\\[0\\]\\.config': .*"every" must be an integer`));
    });
});

describe('webhook', () => {
    test('POSTs each event as JSON; a failing server is retried until it recovers, failures counted', async () => {
        let failing = true;
        const got = [];
        let attempts = 0;
        const srv = http.createServer((rq, rs) => {
            let body = '';
            rq.on('data', (d) => (body += d));
            rq.on('end', () => {
                attempts++;
                if (failing) {
                    rs.writeHead(503).end();
                    return;
                }
                got.push({ path: rq.url, ctype: rq.headers['content-type'], body: JSON.parse(body) });
                rs.writeHead(204).end();
            });
        });
        await new Promise((r) => srv.listen(0, '127.0.0.1', r));
        after(() => new Promise((r) => srv.close(r)));
        const url = `http://127.0.0.1:${srv.address().port}/hook?k=1`;
        const ch = uniq('orders');
        const b = await broker({
            modules: [{ name: 'hook', path: WEBHOOK, match: [`${ch}.*`],
                config: { url, backoff_ms: 20, backoff_max_ms: 100, retries: 100, timeout_ms: 2000 } }],
        });
        const ids = [];
        for (let i = 0; i < 3; i++) ids.push(await publish(b, `${ch}.eu`, `order ${i}`));
        // The server fails: attempts are made, failures counted, nothing is lost.
        await waitFor(async () => (await modStatus(b)).hook.errors >= 3, { what: 'failures counted' });
        assert.ok(attempts >= 3);
        assert.equal(got.length, 0);
        failing = false;
        await waitFor(() => got.length >= 3, { timeout: 10000, what: 'the three events after recovery' });
        assert.equal(got.length, 3);
        assert.deepEqual(got.map((g) => g.body.id), ids, 'in id order, each once');
        for (let i = 0; i < 3; i++) {
            assert.equal(got[i].path, '/hook?k=1');
            assert.match(got[i].ctype, /^application\/json/);
            assert.equal(got[i].body.channel, `${ch}.eu`);
            assert.equal(got[i].body.data, `order ${i}`);
            assert.equal(got[i].body.event, null);
            assert.equal(got[i].body.source, null);
            assert.equal(typeof got[i].body.timestamp, 'number');
        }
        const m = await req(b, 'GET', '/metrics');
        const errs = /ssebroker_module_errors_total\{module="hook"\} (\d+)/.exec(m.text);
        assert.ok(errs && Number(errs[1]) >= 3, 'errors in /metrics');
        // Up again: the next event goes at once.
        const id = await publish(b, `${ch}.us`, 'later');
        await waitFor(() => got.length === 4, { what: 'the fourth event' });
        assert.equal(got[3].body.id, id);
        assert.equal((await modStatus(b)).hook.events, 4);
    });

    test('a server that is not there: each attempt fails, the broker serves on', async () => {
        const srv = http.createServer();
        await new Promise((r) => srv.listen(0, '127.0.0.1', r));
        const port = srv.address().port;
        await new Promise((r) => srv.close(r)); // nothing listens there now
        const ch = uniq('gone');
        const b = await broker({
            modules: [{ name: 'hook', path: WEBHOOK, match: [ch],
                config: { url: `http://127.0.0.1:${port}/`, backoff_ms: 10, retries: 2, queue_max: 2 } }],
        });
        for (let i = 0; i < 4; i++) await publish(b, ch, `e${i}`);
        // Queue of 2: two of the four dropped at once; the other two given up
        // after 3 attempts each: 2 + 2 * (3 attempts + 1 drop) errors.
        await waitFor(async () => (await modStatus(b)).hook.errors >= 10, { timeout: 10000, what: 'every failure counted' });
        assert.equal((await history(b, ch)).length, 4);
    });
});

describe('module publishes', () => {
    test('reach subscribers and history, tagged with the module as source; a module never sees its own', async () => {
        const ch = uniq('in');
        const out = uniq('out');
        const b = await broker({
            modules: [
                { name: 'r1', path: RELAY, match: [ch, out], config: { to: out } },
                { name: 'r2', path: RELAY, match: [out], config: { to: `${out}.seen`, event: 'seen' } },
            ],
        });
        const s = await openStream(b, evPath(out));
        const id = await publish(b, ch, 'hello');
        const [ev] = await s.waitEvents(1);
        s.close();
        assert.equal(ev.event, 'relayed');
        assert.equal(ev.data, `-|${ch}|${id}|hello`);
        // r2 saw r1's event and says r1 was its source.
        const seen = await waitFor(async () => {
            const v = await history(b, `${out}.seen`);
            return v.length === 1 && v;
        }, { what: 'r2 relaying r1' });
        assert.equal(seen[0].data, `r1|${out}|${ev.id}|${ev.data}`);
        assert.equal(seen[0].event, 'seen');
        // r1 matches 'out' too but never got its own event there.
        const st = await waitFor(async () => {
            const v = await modStatus(b);
            return v.r1.published === 1 && v;
        }, { what: 'r1\'s publish counted' });
        assert.equal(st.r1.events, 1);
        assert.equal(st.r2.events, 1);
        assert.equal((await history(b, out)).length, 1);
    });

    test('are numbered in the order the module made them, one waiting for its channel first', async () => {
        const ch = uniq('in');
        const fresh = uniq('fresh'); // looked up (created) when the module publishes
        const known = uniq('known'); // this node holds it: found at once
        const b = await broker({
            modules: [{ name: 'r', path: RELAY, match: [ch], config: { to: fresh, also: known } }],
        });
        await publish(b, known, 'first');
        const ids = [];
        for (let i = 0; i < 3; i++) ids.push(await publish(b, ch, `e${i}`));
        const got = await waitFor(async () => {
            const f = await history(b, fresh);
            const k = (await history(b, known)).slice(1);
            return f.length === 3 && k.length === 3 && [f, k];
        }, { what: 'every event relayed to both channels' });
        const [f, k] = got;
        assert.deepEqual(f.map((e) => e.data.split('|')[2]), ids);
        assert.deepEqual(k.map((e) => e.data.split('|')[2]), ids);
        // Each event's publish to 'fresh' was made first, so it has the lower id.
        for (let i = 0; i < 3; i++)
            assert.ok(BigInt(f[i].id) < BigInt(k[i].id), `event ${i}: ${f[i].id} before ${k[i].id}`);
    });

    test('the publisher\'s identity reaches the module (access control)', async () => {
        const ch = uniq('who');
        const b = await broker({
            auth: {
                roles: { svc: [{ match: '*', allow: ['publish', 'subscribe', 'history'] }],
                    guest: [{ match: '*', allow: ['publish'] }] },
                anonymous_role: 'guest',
                api_keys: [{ name: 'orders', role: 'svc', sha256: sha256hex('k-123') }],
            },
            modules: [{ name: 'id', path: RELAY, match: [`${ch}.in`], config: { to: `${ch}.out`, identity: true } }],
        });
        const r1 = await req(b, 'POST', evPath(`${ch}.in`), { body: 'a', headers: { 'Content-Type': 'text/plain', 'X-API-Key': 'k-123' } });
        assert.equal(r1.status, 201, r1.text);
        await publish(b, `${ch}.in`, 'b');
        const h = await waitFor(async () => {
            const r = await req(b, 'GET', evPath(`${ch}.out`), { headers: { 'X-API-Key': 'k-123' } });
            return r.status === 200 && r.json.events.length === 2 && r.json.events;
        }, { what: 'both relayed' });
        assert.deepEqual(h.map((e) => e.data), ['orders|svc', '-|guest']);
    });

    test('on_session_start and on_session_stop are told of every stream', async () => {
        const ch = uniq('live');
        const b = await broker({
            log_level: 'debug',
            modules: [{ name: 'sess', path: RELAY, match: [`${ch}.none`], config: { to: `${ch}.x` } }],
        });
        // Joins are published once sys.sessions exists: the host opens it at
        // start-up (with Redis, after asking the store).
        await waitFor(async () => (await req(b, 'GET', '/channels/sys.sessions')).status === 200,
            { what: 'sys.sessions opened' });
        const s = await openStream(b, evPath(ch));
        await s.waitOpen();
        const sid = await s.waitUntil(() => s.session, 5000, 'the session event');
        await waitFor(() => b.stderr().includes('module sess: session: {') &&
            b.stderr().includes(sid), { what: 'the start told' });
        s.close();
        await waitFor(() => /module sess: session: \{[^\n]*"left_at":\d/.test(b.stderr()), { what: 'the stop told' });
    });

    test('a chain of modules stops after modules_max_depth, the cut counted', async () => {
        const ping = uniq('ping');
        const pong = uniq('pong');
        const b = await broker({
            modules_max_depth: 5,
            modules: [
                { name: 'ping', path: RELAY, match: [ping], config: { to: pong } },
                { name: 'pong', path: RELAY, match: [pong], config: { to: ping } },
            ],
        });
        await publish(b, ping, 'ball');
        // Depths 1..5: ping, pong, ping, pong, ping; the sixth (pong's) cut.
        // 'published' counts once the publisher is answered, which may come
        // after the others reacted.
        const st = await waitFor(async () => {
            const v = await modStatus(b);
            return v.ping.cut + v.pong.cut === 1 && v.ping.published + v.pong.published === 5 && v;
        }, { what: 'the cut' });
        assert.equal(st.ping.published, 3);
        assert.equal(st.pong.published, 2);
        assert.equal(st.pong.cut, 1);
        assert.equal((await history(b, ping)).length, 1 + 2);
        assert.equal((await history(b, pong)).length, 3);
        const m = await req(b, 'GET', '/metrics');
        assert.match(m.text, /ssebroker_module_chain_cut_total\{module="pong"\} 1\n/);
        // Nothing more comes: the chain is over.
        await new Promise((r) => setTimeout(r, 200));
        assert.equal((await history(b, pong)).length, 3);
    });

    test('errors a module returns are counted and logged; it goes on', async () => {
        const ch = uniq('err');
        const b = await broker({
            modules: [{ name: 'bad', path: RELAY, match: [ch], config: { to: `${ch}.out`, error: true } }],
        });
        for (let i = 0; i < 3; i++) await publish(b, ch, `x${i}`);
        await waitFor(async () => (await modStatus(b)).bad.errors === 3, { what: 'three errors' });
        assert.match(b.stderr(), /module bad: error -7 on event/);
        const m = await req(b, 'GET', '/metrics');
        assert.match(m.text, /ssebroker_module_errors_total\{module="bad"\} 3\n/);
        assert.match(m.text, /ssebroker_module_events_total\{module="bad"\} 3\n/);
        await waitFor(async () => (await history(b, `${ch}.out`)).length === 3, { what: 'its publishes' });
    });
});

describe('load errors stop start-up with the file, line and field', () => {
    const cases = [
        { name: 'a missing file', path: '/nonexistent/x.so', config: {}, field: 'path', line: 5, text: /cannot load '\/nonexistent\/x\.so'/ },
        { name: 'no descriptor symbol', path: () => so('tests/modules/nosym.so'), config: {}, field: 'path', line: 5, text: /no symbol ssebroker_module/ },
        { name: 'another ABI', path: () => so('tests/modules/badabi.so'), config: { to: 'x' }, field: 'path', line: 5, text: /module ABI 999, this broker runs ABI 1/ },
        { name: 'init refusing its config', path: () => RELAY, config: { refuse: 'no, thanks' }, field: 'config', line: 7, text: /refused its config: no, thanks/ },
    ];
    for (const c of cases) {
        test(c.name, async () => {
            const p = typeof c.path === 'function' ? c.path() : c.path;
            const file = tempFile(`mod-${uniq('bad')}.json`, `{
  "listen": "127.0.0.1:0",
  "modules": [
    {"name": "ok", "path": ${JSON.stringify(RELAY)}, "match": ["a"], "config": {"to": "b"}},
    {"name": "bad", "path": ${JSON.stringify(p)},
     "match": ["a.*"],
     "config": ${JSON.stringify(c.config)}}
  ]
}
`);
            const r = await runBroker(['--config', file]);
            assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
            const base = path.basename(file).replace(/[.]/g, '\\.');
            assert.match(r.stderr, new RegExp(`${base}:${c.line}: field 'modules\\[1\\]\\.${c.field}': `), r.stderr);
            assert.match(r.stderr, c.text);
            assert.doesNotMatch(r.stderr, /listening on/);
        });
    }

    test('bad entries are config errors', async () => {
        const bad = [
            [{ name: 'x', path: RELAY, match: ['a.*.b'] }, 'match'],
            [{ name: 'x y', path: RELAY, match: ['a'] }, 'name'],
            [{ name: 'x', match: ['a'] }, 'path'],
            [{ name: 'x', path: RELAY, match: ['a'], config: [] }, 'config'],
            [{ name: 'x', path: RELAY, match: ['a'], extra: 1 }, 'extra'],
        ];
        for (const [entry, field] of bad) {
            const file = tempFile(`mod-${uniq('cfg')}.json`, JSON.stringify({ modules: [entry] }, null, 2));
            const r = await runBroker(['--config', file, '--listen', '127.0.0.1:0']);
            assert.equal(r.code, 1, `${JSON.stringify(entry)}: ${r.stderr}`);
            assert.match(r.stderr, new RegExp(`:\\d+: field 'modules\\[0\\]\\.${field}'`), r.stderr);
        }
        const dup = tempFile('dup.json', JSON.stringify({ modules: [
            { name: 'x', path: RELAY, match: ['a'] }, { name: 'x', path: RELAY, match: ['b'] }] }, null, 2));
        const r = await runBroker(['--config', dup, '--listen', '127.0.0.1:0']);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /field 'modules\[1\]\.name': 'x' is the name of modules\[0\] too/);
        const depth = tempFile('depth.json', '{\n  "modules_max_depth": 0\n}\n');
        const r2 = await runBroker(['--config', depth, '--listen', '127.0.0.1:0']);
        assert.equal(r2.code, 1);
        assert.match(r2.stderr, /depth\.json:2: field 'modules_max_depth'/);
    });
});
