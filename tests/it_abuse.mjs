// it_abuse.mjs - what a client acting as an adversary could do to the broker
// as a whole (issue 13), each bounded in count and time, loopback only:
// a creation storm must not flood the log.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { startBroker, uniq, chPath } from './lib/broker.mjs';

const brokers = [];
after(async () => {
    for (const b of brokers) if (b.alive()) assert.equal(await b.stop(), 0);
});

async function broker(config) {
    const b = await startBroker({ config });
    brokers.push(b);
    return b;
}

/** Create 'n' channels with a connection each; returns the names. */
async function storm(b, n) {
    const names = [];
    for (let i = 0; i < n; i++) {
        const name = uniq('storm');
        assert.equal((await b.req('PUT', chPath(name))).status, 201);
        assert.equal((await b.req('POST', `${chPath(name)}/connections`)).status, 201);
        assert.equal((await b.req('DELETE', chPath(name))).status, 204);
        names.push(name);
    }
    return names;
}

test('a creation storm logs nothing per channel or connection at info; debug still tells', async () => {
    const N = 50;
    const quiet = await broker({ log_level: 'info' });
    const before = quiet.stderr().split('\n').length;
    const names = await storm(quiet, N);
    const lines = quiet.stderr().split('\n').slice(before - 1).filter(Boolean);
    const routine = lines.filter((l) => names.some((n) => l.includes(n)));
    assert.deepEqual(routine, [], 'no line names a channel of the storm');
    assert.ok(lines.length < 5, `a handful of lines at most, got ${lines.length}:\n${lines.join('\n')}`);

    const loud = await broker({ log_level: 'debug' });
    const [name] = await storm(loud, 1);
    assert.match(loud.stderr(), new RegExp(`debug .*channel '${name}' created`));
    assert.match(loud.stderr(), new RegExp(`debug .*connection [0-9a-f]{16} created on '${name}'`));
});
