// it_modules_cluster.mjs - modules in a cluster: with three nodes on one
// Redis, one node (the lease holder) hands each event to the modules; kill -9
// of the holder mid-stream: another node takes over within the lease time
// and resumes where the holder stopped, so no event is skipped (a repeat
// only for what the holder handed over in its last moments); a holder stopped
// (SIGTERM) while its relays are under way waits for them before it records
// its last event and gives the lease up, so none is lost. Runs once: its
// nodes share a Redis of their own.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { startBroker, uniq, evPath, waitFor, BIN } from './lib/broker.mjs';
import { startRedis, startDelayProxy } from './lib/redis.mjs';

const BUILD = process.env.SSEB_BUILDDIR || path.dirname(BIN);
const RELAY = path.join(BUILD, 'tests/modules/relay.so');
const LEASE_MS = 6000; // MODHOST_LEASE_MS (NODE_TTL_S)
const TICK_MS = 2000;  // MODHOST_LEASE_TICK_MS (NODE_HEARTBEAT_S)

const cleanups = [];
after(async () => {
    for (const f of cleanups.reverse()) await f();
});

async function active(b) {
    const r = await b.req('GET', '/status');
    return r.status === 200 && r.json.node.modules[0].active;
}

async function publish(b, name, data) {
    const res = await b.req('POST', evPath(name), { body: data, headers: { 'Content-Type': 'text/plain' } });
    assert.equal(res.status, 201, `publish on :${b.port}: ${res.text}`);
    return res.json.id;
}

test('three nodes: one runs the modules; kill -9 of it mid-stream, another takes over and nothing is skipped', async (t) => {
    assert.ok(fs.existsSync(RELAY), `${RELAY}: run make`);
    const r = await startRedis();
    cleanups.push(() => r.stop());
    const src = uniq('in');
    const out = uniq('out');
    const nodes = [];
    for (let i = 0; i < 3; i++) {
        const b = await startBroker({ config: {
            store: { type: 'redis', url: r.url },
            channel_defaults: { history: 1000 },
            modules: [{ name: 'relay', path: RELAY, match: [`${src}.*`], config: { to: out } }],
        } });
        cleanups.push(async () => { if (b.alive()) assert.equal(await b.stop(), 0); });
        nodes.push(b);
    }
    const holders = async () => {
        const v = [];
        for (const b of nodes) if (b.alive() && await active(b)) v.push(b);
        return v;
    };
    const [holder] = await waitFor(async () => {
        const v = await holders();
        return v.length === 1 && v;
    }, { timeout: LEASE_MS + 2 * TICK_MS, what: 'one node running the modules' });
    const pubNode = nodes.find((b) => b !== holder);

    const ids = [];
    for (let i = 0; i < 15; i++) ids.push(await publish(pubNode, `${src}.a`, `e${i}`));
    // The holder relayed them, each once so far, in the order it made its
    // relays (the first ones waiting for 'out' to be created included).
    const first = await waitFor(async () => {
        const h = await pubNode.req('GET', evPath(out));
        return h.status === 200 && h.json.events.length >= 15 && h.json.events;
    }, { what: 'the first 15 relayed' });
    assert.deepEqual(first.slice(0, 15).map((e) => e.data.split('|')[2]), ids, 'in order');
    process.kill(holder.pid, 'SIGKILL');
    const killedAt = Date.now();
    await waitFor(() => !holder.alive(), { what: 'the holder gone' });
    for (let i = 15; i < 30; i++) ids.push(await publish(pubNode, `${src}.a`, `e${i}`));

    // Another node takes over within the lease time (plus one renewal tick).
    const [next] = await waitFor(async () => {
        const v = await holders();
        return v.length === 1 && v;
    }, { timeout: LEASE_MS + 2 * TICK_MS, interval: 50, what: 'another node taking over' });
    const tookMs = Date.now() - killedAt;
    assert.notEqual(next, holder);
    const st = (await next.req('GET', '/status')).json.node.modules[0];
    assert.equal(st.active, true);

    // Every event relayed; a repeat is bounded: at most twice, and only for
    // events of the first batch (those the dead holder had handed over).
    const relayed = await waitFor(async () => {
        const h = await next.req('GET', evPath(out));
        if (h.status !== 200) return false;
        const seen = h.json.events.map((e) => e.data.split('|')[2]);
        return ids.every((id) => seen.includes(id)) && seen;
    }, { timeout: 10000, what: 'all 30 events relayed' });
    const count = new Map();
    for (const id of relayed) count.set(id, (count.get(id) || 0) + 1);
    for (const [id, n] of count) {
        assert.ok(n <= 2, `event ${id} relayed ${n} times`);
        if (n === 2) assert.ok(ids.indexOf(id) < 15, `only events the old holder had: ${id}`);
    }
    const repeats = [...count.values()].filter((n) => n > 1).length;
    // Exactly one node runs them.
    assert.equal((await holders()).length, 1);
    t.diagnostic(`takeover after ${tookMs} ms (lease ${LEASE_MS} ms), ${repeats} event(s) repeated`);
});

test('a holder stopped with relays under way waits for them, then gives the lease up: every event relayed', async (t) => {
    const r = await startRedis();
    cleanups.push(() => r.stop());
    // The holder reaches Redis through a proxy that, once set, holds every
    // chunk DELAY_MS: a relay it makes is under way (its channel looked up,
    // then its append) for 4 * DELAY_MS at least, long after the holder
    // handed its event over and is stopped.
    const DELAY_MS = 150;
    const proxy = await startDelayProxy(r.port);
    cleanups.push(() => proxy.stop());
    const src = uniq('in');
    const out = `${src}-out`;
    const config = (url) => ({
        store: { type: 'redis', url },
        modules: [{ name: 'relay', path: RELAY, match: [`${src}.*`], config: { to: out } }],
    });
    // Alone at first, the holder takes the lease at once.
    const holder = await startBroker({ config: config(proxy.url) });
    cleanups.push(async () => { if (holder.alive()) assert.equal(await holder.stop(), 0); });
    await waitFor(() => active(holder), { timeout: LEASE_MS + 2 * TICK_MS, what: 'the holder' });
    const other = await startBroker({ config: config(r.url) });
    cleanups.push(async () => { if (other.alive()) assert.equal(await other.stop(), 0); });
    proxy.delay = DELAY_MS;

    const events = [];
    for (let i = 0; i < 5; i++) events.push({ data: `before${i}` });
    const res = await other.req('POST', evPath(`${src}.a`), { body: events });
    assert.equal(res.status, 201, res.text);
    const ids = res.json.ids;
    assert.equal(ids.length, 5);
    // Stopped as soon as it handed the first over: its relays are under way.
    await waitFor(async () => (await holder.req('GET', '/status')).json.node.modules[0].events >= 1,
        { timeout: 10000, what: 'the holder handing the first event over' });
    const stopped = holder.stop({ timeout: 10000 });
    ids.push(await publish(other, `${src}.a`, 'after'));
    assert.equal(await stopped, 0);
    assert.match(holder.stderr(), /modules: stopping: waiting for \d+ publish/);
    // Within a renewal tick, not the lease time: the lease was given up.
    await waitFor(() => active(other), { timeout: TICK_MS + 1500, interval: 50, what: 'the other node taking over' });
    // Every event relayed, by one node or the other, at least once.
    const seen = await waitFor(async () => {
        const v = (await other.req('GET', evPath(out))).json?.events?.map((e) => e.data.split('|')[2]);
        return v && ids.every((id) => v.includes(id)) && v;
    }, { timeout: 10000, what: 'every event relayed' });
    t.diagnostic(`${seen.length} relays for ${ids.length} events`);
});
