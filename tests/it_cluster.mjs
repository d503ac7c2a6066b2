// it_cluster.mjs - several ssebroker processes on one Redis behave as one
// broker: every message reaches every subscriber on every node once, in one
// order, with one id; resume, channel/connection/listener changes and queues
// work across nodes; /nodes and /status show the cluster, a killed node goes
// offline after its heartbeat expires; a Redis restart leaves no subscriber
// deaf. With access control, a connection belongs to its creator on every
// node; targeted messages reach only their receivers on every node and after
// a restart.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { startBroker, uniq, chPath, evPath, waitFor, sleep, tempFile } from './lib/broker.mjs';
import { startRedis, redisCmd } from './lib/redis.mjs';
import { makeKeys, mint, sha256hex } from './lib/jwt.mjs';

const cleanups = [];
after(async () => {
    for (const f of cleanups.reverse()) await f();
});

async function cluster(n, extra = {}) {
    const r = await startRedis();
    cleanups.push(() => r.stop());
    const nodes = [];
    for (let i = 0; i < n; i++) {
        const b = await startBroker({ config: { store: { type: 'redis', url: r.url }, ...extra } });
        cleanups.push(async () => { if (b.alive()) assert.equal(await b.stop(), 0); });
        nodes.push(b);
    }
    return { r, nodes };
}

async function publish(b, name, data) {
    const res = await b.req('POST', evPath(name), { body: data, headers: { 'Content-Type': 'text/plain' } });
    assert.equal(res.status, 201, `publish on :${b.port}: ${res.text}`);
    return res.json.id;
}

const connPath = (name, id) => `${chPath(name)}/connections/${id}`;

test('three nodes: every subscriber gets every message once, in one order, with the same ids', async () => {
    const { nodes } = await cluster(3);
    const name = uniq('fan');
    assert.equal((await nodes[0].req('PUT', chPath(name), { body: { history: 1000 } })).status, 201);
    const subs = [];
    for (const b of nodes) {
        for (let k = 0; k < 2; k++) {
            const s = await b.stream(evPath(name));
            await s.waitOpen();
            subs.push(s);
        }
    }
    // 20 rounds of three concurrent publishes, one on each node.
    const acked = [];
    for (let round = 0; round < 20; round++) {
        const ids = await Promise.all(nodes.map((b, i) => publish(b, name, `r${round}n${i}`)));
        acked.push(...ids);
    }
    const want = [...acked].sort((a, b) => Number(a) - Number(b));
    assert.equal(new Set(want).size, 60, 'ids are unique');
    for (const s of subs) await s.waitEvents(60, 10000);
    const first = subs[0].events.map((e) => `${e.id}:${e.data}`);
    for (const [i, s] of subs.entries()) {
        assert.deepEqual(s.events.map((e) => e.id), want, `subscriber ${i}: every id once, in id order`);
        assert.deepEqual(s.events.map((e) => `${e.id}:${e.data}`), first, `subscriber ${i}: same ids and data as subscriber 0`);
    }
    // The history is the same on every node.
    const hist = await Promise.all(nodes.map(async (b) => (await b.req('GET', evPath(name))).json.events.map((e) => e.id)));
    for (const h of hist) assert.deepEqual(h, want);
    for (const s of subs) s.close();
});

test('a subscriber that moves to another node with Last-Event-ID misses nothing', async () => {
    const { nodes } = await cluster(3);
    const name = uniq('move');
    const s1 = await nodes[0].stream(evPath(name));
    await s1.waitOpen();
    const early = [];
    for (let i = 0; i < 3; i++) early.push(await publish(nodes[i], name, `early${i}`));
    await s1.waitEvents(3);
    const last = s1.events[2].id;
    s1.close();
    const missed = [];
    for (let i = 0; i < 4; i++) missed.push(await publish(nodes[2], name, `missed${i}`));
    const s2 = await nodes[1].stream(evPath(name), { headers: { 'Last-Event-ID': last } });
    await s2.waitEvents(4);
    assert.deepEqual(s2.events.map((e) => e.id), missed, 'exactly what it missed');
    const live = await publish(nodes[0], name, 'live');
    await s2.waitEvents(5);
    assert.equal(s2.events[4].id, live);
    s2.close();
});

test('a Last-Event-ID this node has not seen yet: no false sys.gap, resumed right after it; an id the store never gave: the gap', async () => {
    const { r, nodes: [a, b] } = await cluster(2);
    const name = uniq('notyet');
    assert.equal((await a.req('PUT', chPath(name), { body: { history: 100 } })).status, 201);
    const watch = await b.stream(evPath(name));
    await watch.waitOpen();
    const first = await publish(a, name, 'first');
    await watch.waitEvents(1); // b has seen 'first'
    // Another node takes ids whose notifications have not reached b yet: the
    // store's counter moves on (as a publish on a does before b hears of it).
    // (The store's key "meta/seq" is field "seq" of the hash "<prefix>meta/".)
    assert.equal(await redisCmd(r.port, 'HGET', 'ssebroker:meta/', 'seq'), first);
    const given = String(await redisCmd(r.port, 'HINCRBY', 'ssebroker:meta/', 'seq', 3));
    const plain = await b.stream(evPath(name), { headers: { 'Last-Event-ID': given } });
    const topic = await b.stream(`/events?channel=${name}`, { headers: { 'Last-Event-ID': given } });
    const unknown = String(Number(given) + 1000); // never given out
    const lost = await b.stream(evPath(name), { headers: { 'Last-Event-ID': unknown } });
    for (const s of [plain, topic, lost])
        await s.waitUntil((x) => x.session !== null, 5000, 'the session event');
    await lost.waitEvents(1);
    const next = await publish(a, name, 'next');
    assert.ok(Number(next) > Number(given));
    for (const s of [plain, topic]) {
        await s.waitEvents(1);
        await watch.waitEvents(2);
        assert.deepEqual(s.gaps, [], 'no gap: the id was given out, b had not seen it yet');
        assert.deepEqual(s.events.map((e) => e.id), [next], 'nothing at or before it again');
    }
    await lost.waitEvents(2);
    assert.deepEqual(lost.gaps, [{ last_event_id: unknown, first_retained: first }]);
    assert.deepEqual(lost.events.map((e) => e.id), [first, next], 'an unknown id: everything retained');
    for (const s of [watch, plain, topic, lost]) s.close();
});

test('channel, connection and listener changes on one node take effect on all', async () => {
    const { nodes } = await cluster(3);
    const [n1, n2, n3] = nodes;
    const name = uniq('changes');

    assert.equal((await n1.req('PUT', chPath(name), { body: { history: 5, retry_ms: 1234 } })).status, 201);
    const seen = await waitFor(async () => {
        const r = await n2.req('GET', chPath(name));
        return r.status === 200 && r.json;
    }, { what: 'the channel on node 2' });
    assert.equal(seen.options.history, 5);
    assert.equal(seen.options.retry_ms, 1234);

    // A connection created on node 1, messages published on node 2 while no
    // one is attached, attached on node 3: its queue drains there.
    const cr = await n1.req('POST', `${chPath(name)}/connections`);
    assert.equal(cr.status, 201);
    const id = cr.json.id;
    await waitFor(async () => (await n3.req('GET', connPath(name, id))).status === 200, { what: 'the connection on node 3' });
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push(await publish(n2, name, `q${i}`));
    const a3 = await n3.stream(`${connPath(name, id)}/events`);
    await a3.waitEvents(3);
    assert.deepEqual(a3.events.map((e) => e.id), queued, 'the queue drained on node 3, in order');

    // Stopped on node 1: node 3's stream gets nothing until started again.
    assert.equal((await n1.req('POST', `${connPath(name, id)}/stop`)).status, 200);
    await waitFor(async () => (await n3.req('GET', connPath(name, id))).json.listener === 'stopped', { what: 'stopped on node 3' });
    const held = await publish(n2, name, 'held');
    await sleep(300);
    assert.equal(a3.events.length, 3, 'nothing while stopped');
    assert.equal((await n1.req('POST', `${connPath(name, id)}/start`)).status, 200);
    await a3.waitEvents(4);
    assert.equal(a3.events[3].id, held);

    // Attached again on node 1: the stream on node 3 is taken over (ends).
    const a1 = await n1.stream(`${connPath(name, id)}/events`);
    await a1.waitOpen();
    await waitFor(() => a3.ended, { what: 'node 3 stream taken over' });
    const next = await publish(n3, name, 'next');
    await a1.waitEvents(1);
    assert.equal(a1.events[0].id, next);
    a1.close();

    // Deleted on node 2: gone everywhere.
    assert.equal((await n2.req('DELETE', chPath(name))).status, 204);
    for (const b of [n1, n3])
        await waitFor(async () => (await b.req('GET', chPath(name))).status === 404, { what: 'deleted everywhere' });
});

test('a connection created on one node gets what is published at once on another, attached on a third (50 rounds)', async () => {
    const { nodes } = await cluster(3);
    const [n1, n2, n3] = nodes;
    const name = uniq('window');
    for (let round = 0; round < 50; round++) {
        const cr = await n1.req('POST', `${chPath(name)}/connections`);
        assert.equal(cr.status, 201, `round ${round}: ${cr.text}`);
        const id = cr.json.id;
        // At once: node 2 may not have heard of the connection (nor, in the
        // first round, of the channel) yet.
        const ids = await Promise.all([0, 1, 2, 3].map((i) => publish(n2, name, `r${round}m${i}`)));
        const s = await n3.stream(`${connPath(name, id)}/events`);
        assert.equal(s.status, 200, `round ${round}: attach on node 3: ${s.body}`);
        await s.waitEvents(4, 5000);
        assert.deepEqual(s.events.map((e) => e.id), [...ids].sort((a, b) => Number(a) - Number(b)),
            `round ${round}: every message, in id order`);
        s.close();
        assert.equal((await n3.req('DELETE', connPath(name, id))).status, 204);
    }
});

test('connection info is the same on every node', async () => {
    const { nodes } = await cluster(3);
    const [n1, n2, n3] = nodes;
    const name = uniq('info');
    assert.equal((await n1.req('PUT', chPath(name), { body: { queue_limit: 3 } })).status, 201);
    const id = (await n1.req('POST', `${chPath(name)}/connections`)).json.id;
    const same = async (want, what) => {
        const seen = [];
        for (const b of nodes) {
            const r = await b.req('GET', connPath(name, id));
            assert.equal(r.status, 200, `${what} on :${b.port}: ${r.text}`);
            seen.push(r.json);
        }
        for (const j of seen) assert.deepEqual(j, { id, channel: name, ...want }, what);
    };
    for (let i = 0; i < 5; i++) await publish(n2, name, `m${i}`);
    await same({ listener: 'running', attached: false, queue_length: 3, dropped: 2 }, '5 published, 3 kept');
    const s = await n3.stream(`${connPath(name, id)}/events`);
    await s.waitEvents(3);
    // Saved once the socket took them: a moment after they arrive.
    await waitFor(async () => (await n1.req('GET', connPath(name, id))).json.queue_length === 0,
        { what: 'the drain saved' });
    await same({ listener: 'running', attached: true, queue_length: 0, dropped: 2 }, 'drained on node 3');
    assert.equal((await n2.req('POST', `${connPath(name, id)}/stop`)).status, 200);
    await waitFor(async () => (await n3.req('GET', connPath(name, id))).json.listener === 'stopped',
        { what: 'stopped everywhere' });
    await publish(n1, name, 'held1');
    await publish(n1, name, 'held2');
    await same({ listener: 'stopped', attached: true, queue_length: 2, dropped: 2 }, 'two held while stopped');
    s.close();
    await waitFor(async () => (await n1.req('GET', connPath(name, id))).json.attached === false,
        { what: 'detached' });
    await same({ listener: 'stopped', attached: false, queue_length: 2, dropped: 2 }, 'detached');
});

test('kill -9 of the node holding a stream mid-drain: attached again elsewhere, nothing is lost', async (t) => {
    const { nodes } = await cluster(2);
    const [n1, n2] = nodes;
    const name = uniq('middrain');
    assert.equal((await n1.req('PUT', chPath(name), { body: { history: 10, queue_limit: 4000 } })).status, 201);
    const id = (await n1.req('POST', `${chPath(name)}/connections`)).json.id;
    const ids = [];
    const blob = 'x'.repeat(1000);
    for (let k = 0; k < 4; k++) {
        const r = await n2.req('POST', evPath(name), { body: Array.from({ length: 1000 }, (_, i) => ({ data: `${k}-${i}-${blob}` })) });
        assert.equal(r.status, 201, r.text);
        ids.push(...r.json.ids);
    }
    const s1 = await n1.stream(`${connPath(name, id)}/events`);
    await s1.waitEvents(1, 5000);
    process.kill(n1.pid, 'SIGKILL');
    await n1.exited;
    await s1.waitEnd(5000);
    const s2 = await n2.stream(`${connPath(name, id)}/events`);
    assert.equal(s2.status, 200, s2.body);
    // Whatever node 1 gave before it died (all, some or none), node 2 gives
    // the rest: together, every message.
    const missing = () => {
        const got = new Set([...s1.events, ...s2.events].map((e) => e.id));
        return ids.filter((x) => !got.has(x));
    };
    await s2.waitUntil(() => missing().length === 0, 10000, 'every message on node 1 or 2').catch(() => {});
    const lost = missing();
    assert.equal(lost.length, 0, `lost ${lost.length}: ${lost.slice(0, 5)}`);
    // Node 2 starts where node 1's saved cursor was: at or before where its
    // stream stopped (a few given twice, as documented), in order, once each.
    const second = s2.events.map((e) => Number(e.id));
    assert.ok(second.every((x, i) => i === 0 || x > second[i - 1]), 'node 2 gives them in order, once');
    t.diagnostic(`node 1 gave ${s1.events.length}, node 2 ${s2.events.length} of ${ids.length}`);
    s2.close();
});

test('/nodes and /status; kill -9 of a node: offline after the TTL, the others serve, its listener re-attaches', async () => {
    const { nodes } = await cluster(3);
    const [n1, n2, n3] = nodes;
    const list = await waitFor(async () => {
        const r = await n1.req('GET', '/nodes');
        return r.status === 200 && r.json.nodes.filter((n) => n.status === 'online').length === 3 && r.json.nodes;
    }, { what: 'three nodes online' });
    for (const n of list) {
        assert.match(n.id, /^[0-9a-f]{16}$/);
        assert.match(n.address, /^127\.0\.0\.1:\d+$/);
        assert.ok(n.started > 0 && n.heartbeat >= n.started && typeof n.version === 'string');
    }
    assert.deepEqual(list.map((n) => Number(n.address.split(':')[1])).sort(), nodes.map((b) => b.port).sort());
    const st = await n2.req('GET', '/status');
    assert.equal(st.status, 200);
    assert.equal(st.json.node.address, `127.0.0.1:${n2.port}`);
    assert.equal(st.json.cluster.online, 3);

    const name = uniq('dies');
    const id = (await n1.req('POST', `${chPath(name)}/connections`)).json.id;
    await waitFor(async () => (await n3.req('GET', connPath(name, id))).status === 200, { what: 'connection on node 3' });
    const s3 = await n3.stream(`${connPath(name, id)}/events`);
    await s3.waitOpen();
    const n3id = (await n3.req('GET', '/status')).json.node.id;

    n3.proc.kill('SIGKILL');
    await waitFor(() => !n3.alive(), { what: 'node 3 gone' });
    const after9 = [];
    for (let i = 0; i < 3; i++) after9.push(await publish(n2, name, `after${i}`));
    const t0 = Date.now();
    await waitFor(async () => {
        const r = await n1.req('GET', '/nodes');
        const me = r.json.nodes.find((n) => n.id === n3id);
        return me && me.status === 'offline';
    }, { timeout: 12000, interval: 200, what: 'node 3 offline in /nodes' });
    assert.ok(Date.now() - t0 < 12000);
    assert.equal((await n2.req('GET', '/status')).json.cluster.online, 2);
    // Its listener attaches on node 1 and drains what was published since.
    const s1 = await n1.stream(`${connPath(name, id)}/events`);
    await s1.waitEvents(3);
    assert.deepEqual(s1.events.map((e) => e.id), after9);
    s1.close();
});

test('Redis restarted under load: every subscriber on every node has every acknowledged message', async () => {
    const { r, nodes } = await cluster(3, { heartbeat_s: 1 });
    const name = uniq('outage');
    assert.equal((await nodes[0].req('PUT', chPath(name), { body: { history: 10000 } })).status, 201);
    const subs = [];
    for (const b of nodes) {
        const s = await b.stream(evPath(name));
        await s.waitOpen();
        subs.push(s);
    }
    const acked = [];
    let stop = false;
    const load = nodes.map(async (b, i) => {
        for (let k = 0; !stop && k < 2000; k++) {
            const res = await b.req('POST', evPath(name), { body: `n${i}k${k}`, headers: { 'Content-Type': 'text/plain' }, timeout: 8000 }).catch(() => null);
            if (res && res.status === 201) acked.push(res.json.id);
            else await sleep(50);
        }
    });
    await sleep(500);
    await r.kill9();
    await sleep(1000);
    await r.restart();
    // Publishing succeeds again on every node, then a little more load.
    for (const b of nodes)
        await waitFor(async () => (await b.req('POST', evPath(name), { body: 'probe', headers: { 'Content-Type': 'text/plain' } })).status === 201,
            { timeout: 10000, interval: 100, what: `publishing again on :${b.port}` });
    await sleep(1000);
    stop = true;
    await Promise.all(load);
    assert.ok(acked.length > 20, `${acked.length} acknowledged`);
    for (const [i, s] of subs.entries()) {
        await waitFor(() => {
            const got = new Set(s.events.map((e) => e.id));
            return acked.every((id) => got.has(id));
        }, { timeout: 10000, what: `subscriber on node ${i} has all ${acked.length} acknowledged messages` });
        const ids = s.events.map((e) => Number(e.id));
        assert.equal(new Set(ids).size, ids.length, `subscriber on node ${i}: no duplicates`);
        assert.ok(!s.ended, `subscriber on node ${i} stayed connected`);
    }
    for (const s of subs) s.close();
});

test('idle expiry across nodes: a stream on one node keeps the channel on all; once empty it expires everywhere', async () => {
    const TTL = 2;
    const { nodes: [a, b] } = await cluster(2, { limits: { channel_idle_ttl_s: TTL } });
    const watched = uniq('watched'), held = uniq('held');
    // Created on b keeping no history (so that a publish leaves nothing in it);
    // a only hears of it.
    assert.equal((await b.req('PUT', chPath(watched), { body: { history: 0 } })).status, 201);
    const s = await b.stream(evPath(watched));
    assert.equal(s.status, 200);
    assert.equal((await a.req('PUT', chPath(held))).status, 201);
    const cr = await a.req('POST', `${chPath(held)}/connections`);
    assert.equal(cr.status, 201, cr.text);
    await waitFor(async () => (await a.req('GET', chPath(watched))).status === 200, { what: 'a knows the channel' });
    // Three TTLs: node a sees nothing of b's stream but its mark in the store.
    await sleep(3 * TTL * 1000);
    for (const n of [a, b]) {
        assert.equal((await n.req('GET', chPath(watched))).status, 200, `kept on :${n.port} while b streams`);
        assert.equal((await n.req('GET', chPath(held))).status, 200, `kept on :${n.port} while it has a connection`);
    }
    const id = await publish(a, watched, 'still here');
    await s.waitUntil((x) => x.events.some((e) => e.id === id), 5000, 'the message on b');
    assert.equal(s.ended, false);
    s.close();
    assert.equal((await b.req('DELETE', `${chPath(held)}/connections/${cr.json.id}`)).status, 204);
    for (const n of [a, b])
        await waitFor(async () => (await n.req('GET', chPath(watched))).status === 404 &&
            (await n.req('GET', chPath(held))).status === 404,
        { timeout: (TTL + 8) * 1000, interval: 200, what: `both expired on :${n.port}` });
});

test('access control across nodes: a connection made on one node belongs to its creator on every node', async () => {
    const keys = makeKeys();
    const apikey = 'cluster-test-backend-key';
    const auth = {
        roles: {
            user: [{ match: 'room.?', allow: ['subscribe', 'publish'] }],
            backend: [{ match: '*', allow: ['publish', 'subscribe', 'history', 'manage'] }],
        },
        jwt: { keys: [{ alg: 'EdDSA', public_key_file: tempFile('ed.pem', keys.ed.pem) }] },
        api_keys: [{ name: 'svc', role: 'backend', sha256: sha256hex(apikey) }],
    };
    const { r, nodes } = await cluster(2, { auth });
    const as = (sub) => ({ Authorization: `Bearer ${mint(keys.ed, { sub, role: 'user' }, { expIn: 600 })}` });
    const name = `room.${uniq('acl')}`;
    const made = await nodes[0].req('POST', `${chPath(name)}/connections`, { headers: as('alice') });
    assert.equal(made.status, 201, made.text);
    const cp = connPath(name, made.json.id);
    // On the other node at once: its owner, and refusals for anyone else.
    const there = await nodes[1].req('GET', cp, { headers: as('alice') });
    assert.equal(there.status, 200, there.text);
    assert.equal(there.json.owner, 'alice');
    for (const [m, p] of [['GET', cp], ['DELETE', cp], ['POST', `${cp}/stop`], ['POST', `${cp}/events`]]) {
        const res = await nodes[1].req(m, p, { headers: as('bob'), body: m === 'POST' ? 'x' : undefined });
        assert.equal(res.status, 403, `bob ${m} ${p} on node 2: ${res.text}`);
    }
    const bs = await nodes[1].stream(`${cp}/events`, { headers: as('bob') });
    assert.equal(bs.status, 403);
    bs.close();
    // Alice attaches on node 2 and gets what node 1 publishes.
    const s = await nodes[1].stream(`${cp}/events`, { headers: as('alice') });
    assert.equal(s.status, 200);
    const id = (await nodes[0].req('POST', evPath(name), { headers: as('alice'), body: 'hi' })).json.id;
    const ev = await s.waitEvents(1);
    assert.deepEqual([ev[0].id, ev[0].data], [id, 'hi']);
    s.close();
    // The list shows the owner; a node started afterwards reads it from the store.
    const key = { 'X-API-Key': apikey };
    const list = await nodes[1].req('GET', `${chPath(name)}/connections`, { headers: key });
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.connections.map((c) => c.owner), ['alice']);
    const late = await startBroker({ config: { store: { type: 'redis', url: r.url }, auth } });
    cleanups.push(async () => { if (late.alive()) assert.equal(await late.stop(), 0); });
    const fresh = await late.req('GET', cp, { headers: as('bob') });
    assert.equal(fresh.status, 403, `a new node: bob is refused: ${fresh.text}`);
    assert.equal((await late.req('GET', cp, { headers: as('alice') })).json.owner, 'alice');
});

test('node_ttl_s: a node that stopped leaves /nodes once its last heartbeat is that old; counters say what they count', async () => {
    const { nodes: [a, b] } = await cluster(2, { node_ttl_s: 10 });
    // The cluster's figures are the records' (written every heartbeat, 2 s):
    // a stream open on b is a socket and a stream there.
    const s = await b.stream(evPath(uniq('held')));
    await s.waitOpen();
    const st = await waitFor(async () => {
        const r = await a.req('GET', '/status');
        return r.json.cluster.nodes === 2 && r.json.cluster.sockets >= 1 && r.json.cluster.streams === 1 && r;
    }, { timeout: 8000, interval: 200, what: 'both nodes in /status, b\'s socket and stream counted' });
    assert.ok(st.json.node.sockets >= 1, `this node's sockets (this request): ${st.text}`);
    s.close();
    assert.equal(st.json.node.connections, undefined, 'no ambiguous "connections" on a node');
    const bid = (await b.req('GET', '/status')).json.node.id;
    assert.equal(await b.stop(), 0);
    const listed = async () => (await a.req('GET', '/nodes')).json.nodes.find((n) => n.id === bid);
    assert.equal((await listed())?.status, 'offline', 'a clean stop: offline at once');
    const gone = await waitFor(async () => !(await listed()) && Date.now(), { timeout: 20000, interval: 500, what: 'the stopped node leaves /nodes' });
    assert.ok(gone);
    assert.equal((await a.req('GET', '/nodes')).json.nodes.length, 1, 'only the live node');
});

test('targeted delivery across nodes and a restart: lists and publisher travel with the message', async () => {
    const key = makeKeys().hs;
    const all = ['subscribe', 'publish', 'history'];
    const auth = {
        roles: {
            user: [{ match: '*', allow: all }],
            admin: { permissions: [{ match: '*', allow: [...all, 'manage'] }], disclose_publisher: true },
        },
        jwt: { keys: [{ alg: 'HS256', secret: key.secret }] },
    };
    const { r, nodes: [n1, n2] } = await cluster(2, { auth });
    const bearer = (sub, role) => ({ Authorization: `Bearer ${mint(key, { sub, role }, { expIn: 3600 })}` });
    const alice = bearer('alice', 'user'), bob = bearer('bob', 'user'), carol = bearer('carol', 'admin');
    const svc = bearer('svc', 'user');
    const name = uniq('tgx');
    const post = async (b, body) => {
        const res = await b.req('POST', evPath(name), { body, headers: svc });
        assert.equal(res.status, 201, res.text);
        return res.json.id;
    };
    // Subscribers and a connection of bob's on node 2; published on node 1.
    const sa = await n2.stream(evPath(name), { headers: alice });
    const sb = await n2.stream(evPath(name), { headers: bob });
    await sa.waitOpen();
    await sb.waitOpen();
    const cr = await n2.req('POST', `${chPath(name)}/connections`, { headers: bob });
    assert.equal(cr.status, 201, cr.text);
    await waitFor(async () => (await n1.req('GET', connPath(name, cr.json.id), { headers: carol })).status === 200,
        { what: 'the connection on node 1' });
    await post(n1, { data: 'to-alice', eligible_authid: ['alice'] });
    await post(n1, { data: 'not-bob', exclude_authid: ['bob'] });
    await post(n1, { data: 'to-users', eligible_authrole: ['user'] });
    await post(n1, { data: 'end' });
    const data = (s) => s.events.filter((e) => e.event !== 'session').map((e) => e.data);
    await sa.waitUntil(() => data(sa).includes('end'));
    await sb.waitUntil(() => data(sb).includes('end'));
    assert.deepEqual(data(sa), ['to-alice', 'not-bob', 'to-users', 'end'], 'alice on node 2');
    assert.deepEqual(data(sb), ['to-users', 'end'], 'bob on node 2');
    sa.close();
    sb.close();
    // Bob's connection, attached on node 1, matched by its owner (and role).
    const att = await n1.stream(`${connPath(name, cr.json.id)}/events`, { headers: bob });
    await att.waitUntil(() => data(att).includes('end'));
    assert.deepEqual(data(att), ['to-users', 'end'], 'bob\'s connection on node 1');
    att.close();
    // A new node on the same store (a restart): history from the store,
    // filtered per reader, the publisher shown to the admin only.
    assert.equal(await n1.stop(), 0);
    const n3 = await startBroker({ config: { store: { type: 'redis', url: r.url }, auth } });
    cleanups.push(async () => { if (n3.alive()) assert.equal(await n3.stop(), 0); });
    const hist = async (h) => (await n3.req('GET', evPath(name), { headers: h })).json.events;
    assert.deepEqual((await hist(bob)).map((e) => e.data), ['to-users', 'end'], 'bob after the restart');
    const ce = await hist(carol);
    assert.deepEqual(ce.map((e) => e.data), ['not-bob', 'end'], 'carol after the restart');
    assert.deepEqual(ce.map((e) => e.publisher_authid), ['svc', 'svc'], 'disclosed to the admin');
    const ae = await hist(alice);
    assert.deepEqual(ae.map((e) => e.data), ['to-alice', 'not-bob', 'to-users', 'end']);
    assert.ok(ae.every((e) => !('publisher_authid' in e) && !('publication' in e)), 'nothing disclosed to alice');
});

test('sessions: a stream on one node is in /sessions on the other, and its join reaches sys.sessions there', async () => {
    const { nodes } = await cluster(2);
    const [n1, n2] = nodes;
    const mon = await n2.stream(evPath('sys.sessions'));
    await mon.waitUntil(() => mon.session, 5000, 'the monitor\'s session event');
    // Node 1 hears that node 2 created sys.sessions before it publishes there.
    await waitFor(async () => (await n1.req('GET', chPath('sys.sessions'))).status === 200,
        { what: 'sys.sessions known on node 1' });
    const name = uniq('sess');
    const s = await n1.stream(evPath(name));
    await s.waitUntil(() => s.session, 5000, 'the session event');
    const node1 = (await n1.req('GET', '/status')).json.node.id;
    const rec = await waitFor(async () => {
        const r = await n2.req('GET', `/sessions/${s.session}`);
        return r.status === 200 && r.json;
    }, { what: 'the session visible on node 2' });
    assert.equal(rec.node, node1);
    assert.equal(rec.channel, name);
    assert.equal(rec.left_at, null);
    const listed = await n2.req('GET', `/sessions?channel=${name}`);
    assert.deepEqual(listed.json.sessions.map((x) => x.id), [s.session]);
    s.close();
    await waitFor(async () => (await n2.req('GET', `/sessions/${s.session}`)).json.left_at !== null,
        { what: 'its end visible on node 2' });
    const evs = await mon.waitUntil(() => {
        const mine = mon.events.filter((e) => JSON.parse(e.data).id === s.session);
        return mine.length >= 2 && mine;
    }, 5000, 'joined and left from node 1');
    assert.deepEqual(evs.map((e) => e.event), ['joined', 'left']);
    assert.equal(JSON.parse(evs[0].data).node, node1);
    mon.close();
});

test('sessions: the streams of a node killed with kill -9 are marked ended by the others', async () => {
    const { nodes } = await cluster(2);
    const [n1, n2] = nodes;
    const name = uniq('orphan');
    const s = await n1.stream(evPath(name));
    await s.waitUntil(() => s.session, 5000, 'the session event');
    const rec = await waitFor(async () => {
        const r = await n2.req('GET', `/sessions/${s.session}`);
        return r.status === 200 && r.json;
    }, { what: 'the session visible on node 2' });
    assert.equal(rec.left_at, null);
    process.kill(n1.pid, 'SIGKILL');
    await n1.exited;
    // Offline after the heartbeat TTL (6 s), then ended by node 2's next
    // look at the archive (at most 10 s later).
    const ended = await waitFor(async () => {
        const r = await n2.req('GET', `/sessions/${s.session}`);
        return r.json.left_at !== null && r.json;
    }, { what: 'the session of the dead node ended', timeout: 40000, interval: 200 });
    assert.ok(ended.left_at > ended.joined_at);
    assert.equal((await n2.req('GET', `/sessions?channel=${name}&active=true`)).json.sessions.length, 0);
});
