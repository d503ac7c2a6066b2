// it_reload.mjs - SIGHUP reads the config file again: new roles and API
// keys, CORS origins, limits and the log level apply at once, open streams
// stay open, settings read only at start are logged as needing a restart; a
// bad file is refused with its file, line and field, and the old
// configuration stays. Under --workers the supervisor passes it on to every
// worker (Redis).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { startBroker, uniq, evPath, waitFor, checkError, tempFile, STORE } from './lib/broker.mjs';
import { startRedis } from './lib/redis.mjs';
import { sha256hex } from './lib/jwt.mjs';

const cleanups = [];
after(async () => {
    for (const f of cleanups.reverse()) await f();
});

let redis = null;
/** The store section for this run's store: a fresh prefix on Redis. */
async function storeSection() {
    if (STORE !== 'redis') return {};
    if (!redis) {
        redis = await startRedis();
        cleanups.push(() => redis.stop());
    }
    return { store: { type: 'redis', url: redis.url, prefix: `rl${process.pid}-${uniq('p')}:` } };
}

const KEY_A = 'key-a-0123456789', KEY_B = 'key-b-0123456789';
const bearer = (k) => ({ Authorization: `Bearer ${k}` });
const text = (h = {}) => ({ 'Content-Type': 'text/plain', ...h });

function configV1(store) {
    return {
        ...store,
        log_level: 'info',
        cors_origin: 'https://a.example',
        limits: { max_body: 1000 },
        auth: {
            roles: {
                admin: [{ match: '*', allow: ['subscribe', 'publish', 'history', 'manage'] }],
                reader: [{ match: '*', allow: ['subscribe'] }],
            },
            api_keys: [{ name: 'alice', role: 'admin', sha256: sha256hex(KEY_A) }],
        },
    };
}

function configV2(store) {
    return {
        ...store,
        log_level: 'debug',
        cors_origin: 'https://b.example',
        heartbeat_s: 7, // read at start only
        limits: { max_body: 5000 },
        auth: {
            roles: {
                admin: [{ match: '*', allow: ['subscribe', 'publish', 'history', 'manage'] }],
                reader: [{ match: '*', allow: ['subscribe'] }],
            },
            // alice is now a reader; bob is new
            api_keys: [{ name: 'alice', role: 'reader', sha256: sha256hex(KEY_A) },
                { name: 'bob', role: 'admin', sha256: sha256hex(KEY_B) }],
        },
    };
}

async function start(file, args = []) {
    const b = await startBroker({ args: ['--config', file, ...args] });
    cleanups.push(async () => { if (b.alive()) assert.equal(await b.stop(), 0); });
    return b;
}

/** Send SIGHUP and wait for the 'n'th line matching 're' in stderr. */
async function hup(b, re, n = 1) {
    const count = () => (b.stderr().match(new RegExp(re.source, 'g')) || []).length;
    const before = count();
    process.kill(b.pid, 'SIGHUP');
    await waitFor(() => count() >= before + n, { timeout: 5000, what: `${re} in stderr:\n${b.stderr()}` });
}

test('SIGHUP applies new roles and keys, CORS origins, limits and the log level; streams stay open', async () => {
    const store = await storeSection();
    const file = tempFile('reload.json', configV1(store));
    const b = await start(file);
    const ch = uniq('rl');

    // Before: alice publishes, bob is unknown, a.example is allowed, 1000 bytes max.
    assert.equal((await b.req('POST', evPath(ch), { body: 'one', headers: text(bearer(KEY_A)) })).status, 201);
    checkError(assert, await b.req('POST', evPath(ch), { body: 'x', headers: text(bearer(KEY_B)) }), 401, 'unauthorized');
    const cors1 = await b.req('GET', '/health', { headers: { Origin: 'https://a.example' } });
    assert.equal(cors1.headers['access-control-allow-origin'], 'https://a.example');
    checkError(assert, await b.req('POST', evPath(ch), { body: 'y'.repeat(2000), headers: text(bearer(KEY_A)) }),
        413, 'body_too_large');

    const s = await b.stream(evPath(ch), { headers: bearer(KEY_A) });
    await s.waitOpen();

    fs.writeFileSync(file, JSON.stringify(configV2(store), null, 2));
    await hup(b, /reload: .* read again/);
    assert.match(b.stderr(), /reload: 'heartbeat_s' changed: it takes effect at the next restart/);
    assert.doesNotMatch(b.stderr(), /reload: 'limits|reload: 'auth|reload: 'cors/);

    // After: bob publishes; alice, a reader now, may not; b.example is the origin.
    const two = await b.req('POST', evPath(ch), { body: 'z'.repeat(2000), headers: text(bearer(KEY_B)) });
    assert.equal(two.status, 201, `2000 bytes under the new max_body: ${two.text}`);
    checkError(assert, await b.req('POST', evPath(ch), { body: 'x', headers: text(bearer(KEY_A)) }), 403, 'forbidden');
    checkError(assert, await b.req('POST', evPath(ch), { body: 'y'.repeat(6000), headers: text(bearer(KEY_B)) }),
        413, 'body_too_large');
    const cors2 = await b.req('GET', '/health', { headers: { Origin: 'https://b.example' } });
    assert.equal(cors2.headers['access-control-allow-origin'], 'https://b.example');
    const cors3 = await b.req('GET', '/health', { headers: { Origin: 'https://a.example' } });
    assert.notEqual(cors3.headers['access-control-allow-origin'], 'https://a.example');
    // The log level is debug now: a debug line appears for what follows.
    assert.ok(b.alive());

    // The stream opened before the reload is still open and gets the new message.
    await s.waitEvents(1);
    assert.equal(s.events.at(-1).id, two.json.id);
    assert.equal(s.events.at(-1).data, 'z'.repeat(2000));
    s.close();
});

test('a bad file on SIGHUP is refused with its file, line and field; the old configuration stays', async () => {
    const store = await storeSection();
    const file = tempFile('keep.json', configV1(store));
    const b = await start(file);
    const ch = uniq('keep');

    // A syntax error on line 3.
    fs.writeFileSync(file, '{\n  "log_level": "debug",\n  "limits": {"max_body": 5000,,}\n}\n');
    await hup(b, /reload refused/);
    assert.match(b.stderr(), /reload refused: [^\n]*keep[^\n]*\.json:3[^\n]*the running configuration stays/);
    // A bad value: its field is named.
    fs.writeFileSync(file, JSON.stringify({ ...configV2(store), limits: { max_body: 0 } }, null, 2));
    await hup(b, /reload refused/);
    assert.match(b.stderr(), /reload refused: [^\n]*keep[^\n]*\.json:\d+: field 'limits.max_body'/);
    // An API key whose role does not exist.
    const bad = configV2(store);
    bad.auth.api_keys[1].role = 'nobody';
    fs.writeFileSync(file, JSON.stringify(bad, null, 2));
    await hup(b, /reload refused/);
    assert.match(b.stderr(), /reload refused: [^\n]*field 'auth.api_keys\[1\]\.role'/);
    // No auth and a non-loopback address would be refused too; the file is gone:
    fs.rmSync(file);
    await hup(b, /reload refused/);

    // Still the first configuration.
    assert.equal((await b.req('POST', evPath(ch), { body: 'one', headers: text(bearer(KEY_A)) })).status, 201);
    checkError(assert, await b.req('POST', evPath(ch), { body: 'x', headers: text(bearer(KEY_B)) }), 401, 'unauthorized');
    checkError(assert, await b.req('POST', evPath(ch), { body: 'y'.repeat(2000), headers: text(bearer(KEY_A)) }),
        413, 'body_too_large');
    const cors = await b.req('GET', '/health', { headers: { Origin: 'https://a.example' } });
    assert.equal(cors.headers['access-control-allow-origin'], 'https://a.example');
    assert.doesNotMatch(b.stderr(), /reload: .* read again/);
});

test('under --workers the supervisor passes SIGHUP on to every worker',
    { skip: STORE !== 'redis' && '--workers needs the Redis store' }, async () => {
        const store = await storeSection();
        const file = tempFile('workers.json', configV1(store));
        const b = await start(file, ['--workers', '2']);
        fs.writeFileSync(file, JSON.stringify(configV2(store), null, 2));
        await hup(b, /reload: .* read again/, 2);
        assert.match(b.stderr(), /supervisor[^\n]*SIGHUP: passing it on to 2 worker\(s\)/);
        assert.match(b.stderr(), /w1[^\n]*reload: .* read again/);
        assert.match(b.stderr(), /w2[^\n]*reload: .* read again/);
        // Whichever worker answers, bob may publish now and alice may not.
        const ch = uniq('wk');
        for (let i = 0; i < 6; i++) {
            assert.equal((await b.req('POST', evPath(ch), { body: `m${i}`, headers: text(bearer(KEY_B)) })).status, 201);
            checkError(assert, await b.req('POST', evPath(ch), { body: 'x', headers: text(bearer(KEY_A)) }), 403, 'forbidden');
        }
    });
