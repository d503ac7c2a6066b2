// it_idle.mjs - channel slots come back: a channel that holds nothing (no
// retained message, no connection, no live stream) for
// limits.channel_idle_ttl_s expires, whether a PUT, a subscribe or a publish
// created it; one that holds anything, or is published to, stays. GET
// /channels answers bounded pages (limit, after, next). Runs on both stores
// (SSEB_STORE); several nodes on one Redis are in it_cluster.mjs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { startBroker, runBroker, tempFile, uniq, chPath, evPath, checkError, waitFor, sleep, STORE } from './lib/broker.mjs';

const brokers = [];
after(async () => {
    for (const b of brokers) if (b.alive()) assert.equal(await b.stop(), 0);
});

async function broker(limits) {
    const b = await startBroker({ config: { limits } });
    brokers.push(b);
    return b;
}

const exists = async (b, name) => {
    const r = await b.req('GET', chPath(name));
    assert.ok(r.status === 200 || r.status === 404, `GET ${name}: ${r.status} ${r.text}`);
    return r.status === 200;
};

async function publish(b, name, data = 'x') {
    const r = await b.req('POST', evPath(name), { body: data, headers: { 'Content-Type': 'text/plain' } });
    assert.equal(r.status, 201, `publish to ${name}: ${r.text}`);
    return r.json.id;
}

test('a channel holding nothing expires; history, a connection, a stream or publishing keep one', async () => {
    const TTL = 2;
    const b = await broker({ channel_idle_ttl_s: TTL });
    const empty = uniq('empty'), hist = uniq('hist'), withConn = uniq('conn'), sub = uniq('sub');
    const busy = uniq('busy'), auto = uniq('auto');
    assert.equal((await b.req('PUT', chPath(empty))).status, 201);
    assert.equal((await b.req('PUT', chPath(hist))).status, 201);
    await publish(b, hist, 'kept');
    assert.equal((await b.req('PUT', chPath(withConn))).status, 201);
    const cr = await b.req('POST', `${chPath(withConn)}/connections`);
    assert.equal(cr.status, 201, cr.text);
    const s = await b.stream(evPath(sub)); // autocreated by the subscribe
    assert.equal(s.status, 200);
    assert.equal((await b.req('PUT', chPath(busy), { body: { history: 0 } })).status, 201);
    await publish(b, auto, 'autocreated'); // autocreated by the publish...
    assert.equal((await b.req('PUT', chPath(auto), { body: { history: 0 } })).status, 200); // ...then keeps nothing

    // Publishing to 'busy' (which keeps nothing) every 400 ms is activity.
    let publishing = true;
    const publisher = (async () => {
        for (let i = 0; i < 40 && publishing; i++) {
            await publish(b, busy, `p${i}`);
            await sleep(400);
        }
    })();
    await waitFor(async () => !(await exists(b, empty)) && !(await exists(b, auto)),
        { timeout: (TTL + 6) * 1000, interval: 200, what: 'the empty channels to expire' });
    await sleep(1500); // past another sweep or two
    for (const name of [hist, withConn, sub, busy]) assert.ok(await exists(b, name), `${name} is kept`);
    publishing = false;
    await publisher;
    const h = (await b.req('GET', '/health')).json;
    assert.ok(h.stats.expired_channels >= 2, `counted: ${JSON.stringify(h.stats)}`);
    assert.equal(s.ended, false, 'the subscriber of a kept channel is untouched');

    // Once they hold nothing, they go too.
    s.close();
    assert.equal((await b.req('DELETE', `${chPath(withConn)}/connections/${cr.json.id}`)).status, 204);
    await waitFor(async () => !(await exists(b, sub)) && !(await exists(b, withConn)) && !(await exists(b, busy)),
        { timeout: (TTL + 6) * 1000, interval: 200, what: 'the emptied channels to expire' });
    assert.ok(await exists(b, hist), 'the channel with a retained message stays');

    // An expired channel is gone for good: a new one of that name starts empty.
    assert.equal((await b.req('PUT', chPath(empty), { body: { history: 5 } })).status, 201);
    const hr = await b.req('GET', evPath(auto));
    assert.equal(hr.status, 404, 'an expired channel has no history left');
    const id = await publish(b, auto, 'again');
    const again = await b.req('GET', evPath(auto));
    assert.deepEqual(again.json.events.map((e) => e.id), [id], 'autocreated again, with only the new message');
    b.assertAlive();
});

test('channel slots taken by a creation storm come back once the channels expire', async () => {
    const b = await broker({ channel_idle_ttl_s: 1, max_channels: 50 });
    for (let i = 0; i < 50; i++) assert.equal((await b.req('PUT', chPath(`storm-${i}`))).status, 201, `PUT ${i}`);
    const full = await b.req('PUT', chPath('one-more'));
    checkError(assert, full, 503, 'limit_reached', 'the 51st channel');
    await waitFor(async () => (await b.req('PUT', chPath('one-more'))).status === 201,
        { timeout: 8000, interval: 200, what: 'a slot to come back' });
    const h = (await b.req('GET', '/health')).json;
    assert.ok(h.stats.expired_channels >= 1, `expired: ${h.stats.expired_channels}`);
    const s = await b.stream(evPath('by-subscribe'));
    assert.equal(s.status, 200, 'autocreation works again too');
    s.close();
});

test('channel_idle_ttl_s 0: channels never expire', async () => {
    const b = await broker({ channel_idle_ttl_s: 0 });
    const name = uniq('forever');
    assert.equal((await b.req('PUT', chPath(name))).status, 201);
    await sleep(3000); // three sweeps' worth, were there a sweep
    assert.ok(await exists(b, name));
    assert.equal((await b.req('GET', '/health')).json.stats.expired_channels, 0);
});

test('a bad channel_idle_ttl_s is a config error naming the field', { skip: STORE === 'redis' && 'no store involved' }, async () => {
    for (const v of [-1, 31536001, '60', 1.5]) {
        const f = tempFile('bad-idle.json', JSON.stringify({ limits: { channel_idle_ttl_s: v } }));
        const r = await runBroker(['--config', f, '--listen', '127.0.0.1:0']);
        assert.equal(r.code, 1, `${JSON.stringify(v)} is refused`);
        assert.match(r.stderr, /channel_idle_ttl_s/, `the error names the field: ${r.stderr}`);
    }
});

test('GET /channels pages by name: limit, after, next; bounded whatever the count', async () => {
    const b = await broker({ channel_idle_ttl_s: 0 });
    const prefix = uniq('pg');
    const names = [];
    for (let i = 0; i < 250; i++) names.push(`${prefix}-${String(i).padStart(3, '0')}`);
    // Created out of order: the listing sorts.
    for (const n of [...names].reverse()) assert.equal((await b.req('PUT', chPath(n))).status, 201);
    names.sort();

    const first = await b.req('GET', '/channels');
    assert.equal(first.status, 200);
    assert.equal(first.json.channels.length, 100, 'the default page is 100');
    assert.deepEqual(first.json.channels.map((c) => c.name), names.slice(0, 100));
    assert.equal(first.json.next, names[99], 'next names the last of the page');
    assert.equal(first.headers.link, `</channels?after=${encodeURIComponent(names[99])}>; rel="next"`);

    // Walk every page of 33.
    const seen = [];
    let after = null, pages = 0;
    for (;;) {
        const q = `/channels?limit=33${after ? `&after=${encodeURIComponent(after)}` : ''}`;
        const r = await b.req('GET', q);
        assert.equal(r.status, 200, r.text);
        assert.ok(r.json.channels.length <= 33);
        seen.push(...r.json.channels.map((c) => c.name));
        pages++;
        if (!r.json.next) {
            assert.equal(r.headers.link, undefined, 'no Link on the last page');
            break;
        }
        assert.equal(r.headers.link, `</channels?limit=33&after=${encodeURIComponent(r.json.next)}>; rel="next"`);
        after = r.json.next;
        assert.ok(pages < 20, 'the walk ends');
    }
    assert.deepEqual(seen, names, 'every channel once, in order');
    assert.equal(pages, Math.ceil(250 / 33));

    // 'after' need not be a channel; a channel deleted between pages does not matter.
    const mid = await b.req('GET', `/channels?limit=2&after=${encodeURIComponent(`${prefix}-0995`)}`);
    assert.deepEqual(mid.json.channels.map((c) => c.name), names.slice(100, 102), 'after a name between two');
    assert.equal((await b.req('DELETE', chPath(names[101]))).status, 204);
    const gone = await b.req('GET', `/channels?limit=2&after=${encodeURIComponent(names[100])}`);
    assert.deepEqual(gone.json.channels.map((c) => c.name), [names[102], names[103]]);
    const last = await b.req('GET', `/channels?after=${encodeURIComponent(names[249])}`);
    assert.deepEqual(last.json.channels, []);
    assert.equal(last.json.next, undefined, 'no next past the end');
    const all = await b.req('GET', '/channels?limit=1000');
    assert.equal(all.json.channels.length, 249);
    assert.equal(all.json.next, undefined);

    for (const bad of ['0', '1001', 'abc', '-1', '10x', '']) {
        const r = await b.req('GET', `/channels?limit=${bad}`);
        checkError(assert, r, 400, 'invalid_query', `limit=${bad}`);
    }
});
