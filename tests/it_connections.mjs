// it_connections.mjs - persistent connections: queueing while detached, the
// queue_limit bound, attach/drain, stop/start, targeted events, takeover, delete.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, uniq, chPath, evPath, checkError, waitFor } from './lib/broker.mjs';

let b;
const open = new Set();

before(async () => {
    b = await startBroker();
});

after(async () => {
    for (const s of open) s.close();
    if (b) assert.equal(await b.stop(), 0, 'broker exit code after SIGTERM');
});

const connsPath = (ch) => `${chPath(ch)}/connections`;
const connPath = (ch, id) => `${connsPath(ch)}/${encodeURIComponent(id)}`;

async function publish(ch, body) {
    const r = await b.req('POST', evPath(ch), { body });
    assert.equal(r.status, 201, `publish to ${ch}: ${r.status} ${r.text}`);
    return r.json;
}
async function publishN(ch, n, from = 1) {
    const ids = [];
    for (let i = from; i < from + n; i++) ids.push((await publish(ch, { data: `m${i}` })).id);
    return ids;
}
async function createConn(ch) {
    const r = await b.req('POST', connsPath(ch));
    assert.equal(r.status, 201, `POST connections: ${r.status} ${r.text}`);
    return r.json;
}
async function getConn(ch, id) {
    const r = await b.req('GET', connPath(ch, id));
    assert.equal(r.status, 200, `GET connection: ${r.status} ${r.text}`);
    return r.json;
}
/** Poll the connection until pred(conn) holds; returns it. */
const waitConn = (ch, id, pred, what) =>
    waitFor(async () => { const c = await getConn(ch, id); return pred(c) && c; }, { what: `connection ${what}` });

async function attach(ch, id, opts) {
    const s = await b.stream(`${connPath(ch, id)}/events`, opts);
    open.add(s);
    assert.equal(s.status, 200, `attach: ${s.status} ${s.body}`);
    await s.waitOpen();
    return s;
}

describe('connections', () => {
    test('POST creates a connection: 201 with its fields; GET one and list', async () => {
        const ch = uniq('conn');
        const c = await createConn(ch);
        assert.match(String((await b.req('POST', connsPath(uniq('hdr')))).headers['content-type']), /^application\/json/);
        assert.equal(typeof c.id, 'string');
        assert.ok(c.id.length > 0);
        assert.match(c.id, /^[A-Za-z0-9_.:-]+$/, 'id is safe in a URL path');
        assert.deepEqual(c, { id: c.id, channel: ch, listener: 'running', attached: false, queue_length: 0, dropped: 0 });
        const c2 = await createConn(ch);
        assert.notEqual(c2.id, c.id);
        assert.deepEqual(await getConn(ch, c.id), c);
        const list = await b.req('GET', connsPath(ch));
        assert.equal(list.status, 200);
        assert.match(String(list.headers['content-type']), /^application\/json/);
        assert.deepEqual(list.json.connections.map((x) => x.id).sort(), [c.id, c2.id].sort());
        for (const x of list.json.connections) assert.equal(x.channel, ch);
        const chan = await b.req('GET', chPath(ch));
        assert.equal(chan.json.connections, 2);
        assert.equal(chan.json.subscribers, 0);
        // An empty list on a channel without connections.
        const other = uniq('noconn');
        await b.req('PUT', chPath(other));
        assert.deepEqual((await b.req('GET', connsPath(other))).json, { connections: [] });
    });

    test('publishing while detached fills the queue; attaching drains it in order, then live', async () => {
        const ch = uniq('queue');
        const c = await createConn(ch);
        const ids = await publishN(ch, 3);
        const q = await waitConn(ch, c.id, (x) => x.queue_length === 3, 'queue_length 3');
        assert.equal(q.dropped, 0);
        assert.equal(q.attached, false);

        const s = await attach(ch, c.id);
        assert.match(String(s.headers['content-type']), /^text\/event-stream/);
        assert.match(String(s.headers['cache-control']), /no-cache/);
        assert.equal(s.headers['x-accel-buffering'], 'no');
        assert.equal(s.headers['access-control-allow-origin'], '*');
        assert.match(s.raw, /^retry: \d+\n/);
        const ev = await s.waitEvents(3);
        assert.deepEqual(ev.map((e) => [e.id, e.data]), [[ids[0], 'm1'], [ids[1], 'm2'], [ids[2], 'm3']]);
        const a = await waitConn(ch, c.id, (x) => x.attached === true && x.queue_length === 0, 'attached, queue drained');
        assert.equal(a.listener, 'running');
        assert.equal((await b.req('GET', chPath(ch))).json.subscribers, 1, 'attached stream counts as subscriber');

        const [id4] = await publishN(ch, 1, 4);
        const ev2 = await s.waitEvents(4);
        assert.deepEqual(ev2.map((e) => e.data), ['m1', 'm2', 'm3', 'm4']);
        assert.equal(ev2[3].id, id4);
        assert.equal((await getConn(ch, c.id)).queue_length, 0, 'live messages are not queued');

        // Closing the stream detaches; messages queue again.
        s.close();
        await waitConn(ch, c.id, (x) => x.attached === false, 'detached after the client closed');
        await publishN(ch, 2, 5);
        await waitConn(ch, c.id, (x) => x.queue_length === 2, 'queue_length 2 after detach');
        const s2 = await attach(ch, c.id);
        assert.deepEqual((await s2.waitEvents(2)).map((e) => e.data), ['m5', 'm6']);
        s2.close();
    });

    test('the queue holds at most queue_limit messages: oldest dropped and counted', async () => {
        const ch = uniq('limit');
        assert.equal((await b.req('PUT', chPath(ch), { body: { queue_limit: 3 } })).status, 201);
        const c = await createConn(ch);
        const ids = await publishN(ch, 5);
        const q = await waitConn(ch, c.id, (x) => x.queue_length === 3 && x.dropped === 2, 'queue 3, dropped 2');
        assert.equal(q.queue_length, 3);
        const s = await attach(ch, c.id);
        const ev = await s.waitEvents(3);
        assert.deepEqual(ev.map((e) => e.id), ids.slice(2), 'the oldest two were dropped');
        const [id6] = await publishN(ch, 1, 6);
        assert.equal((await s.waitEvents(4))[3].id, id6);
        assert.equal((await getConn(ch, c.id)).dropped, 2, 'dropped is a running count');
        s.close();
    });

    test('stop: messages wait in the queue; start: they drain into the stream', async () => {
        const ch = uniq('stopstart');
        const c = await createConn(ch);
        const s = await attach(ch, c.id);
        const [id1] = await publishN(ch, 1);
        assert.equal((await s.waitEvents(1))[0].id, id1);

        const st = await b.req('POST', `${connPath(ch, c.id)}/stop`);
        assert.equal(st.status, 200, st.text);
        assert.match(String(st.headers['content-type']), /^application\/json/);
        assert.equal(st.json.listener, 'stopped');
        assert.equal(st.json.id, c.id);
        const ids = await publishN(ch, 3, 2);
        const q = await waitConn(ch, c.id, (x) => x.queue_length === 3, 'queue_length 3 while stopped');
        assert.equal(q.listener, 'stopped');
        assert.equal(q.attached, true, 'still attached while stopped');
        assert.equal(s.events.length, 1, `nothing sent while stopped: ${JSON.stringify(s.events)}`);
        // Stopping twice is harmless.
        assert.equal((await b.req('POST', `${connPath(ch, c.id)}/stop`)).status, 200);

        const go = await b.req('POST', `${connPath(ch, c.id)}/start`);
        assert.equal(go.status, 200, go.text);
        assert.equal(go.json.listener, 'running');
        const ev = await s.waitEvents(4);
        assert.deepEqual(ev.slice(1).map((e) => e.id), ids);
        await waitConn(ch, c.id, (x) => x.queue_length === 0, 'queue drained after start');
        const [id5] = await publishN(ch, 1, 5);
        const ev2 = await s.waitEvents(5);
        assert.equal(ev2[4].id, id5);
        assert.equal(ev2.length, 5);
        s.close();
    });

    test('stop while detached, attach: nothing is sent until start', async () => {
        const ch = uniq('stopdetached');
        const c = await createConn(ch);
        assert.equal((await b.req('POST', `${connPath(ch, c.id)}/stop`)).status, 200);
        const ids = await publishN(ch, 2);
        const s = await attach(ch, c.id);
        await waitConn(ch, c.id, (x) => x.attached && x.queue_length === 2, 'attached with 2 queued');
        assert.equal(s.events.length, 0, 'no drain while stopped');
        assert.equal((await b.req('POST', `${connPath(ch, c.id)}/start`)).status, 200);
        assert.deepEqual((await s.waitEvents(2)).map((e) => e.id), ids);
        s.close();
    });

    test('targeted events go to that connection only, not to the channel history or subscribers', async () => {
        const ch = uniq('target');
        const c1 = await createConn(ch);
        const c2 = await createConn(ch);
        const plain = await b.stream(evPath(ch));
        open.add(plain);
        await plain.waitOpen();
        const before = await b.req('GET', evPath(ch));

        // Detached: the targeted message lands in c1's queue.
        const t1 = await b.req('POST', `${connPath(ch, c1.id)}/events`, { body: { event: 'private', data: 'for c1' } });
        assert.equal(t1.status, 201, t1.text);
        assert.match(String(t1.json.id), /^[0-9]+$/);
        await waitConn(ch, c1.id, (x) => x.queue_length === 1, 'targeted message queued');
        assert.equal((await getConn(ch, c2.id)).queue_length, 0, 'the other connection got nothing');

        // Attached: the next one (raw body) goes straight to the stream.
        const s1 = await attach(ch, c1.id);
        const ev = await s1.waitEvents(1);
        assert.deepEqual([ev[0].id, ev[0].event, ev[0].data], [t1.json.id, 'private', 'for c1']);
        const t2 = await b.req('POST', `${connPath(ch, c1.id)}/events?event=raw`, {
            body: 'raw for c1', headers: { 'Content-Type': 'text/plain' },
        });
        assert.equal(t2.status, 201, t2.text);
        const ev2 = await s1.waitEvents(2);
        assert.deepEqual([ev2[1].id, ev2[1].event, ev2[1].data], [t2.json.id, 'raw', 'raw for c1']);
        // Batch works too.
        const t3 = await b.req('POST', `${connPath(ch, c1.id)}/events`, { body: [{ data: 'b1' }, { data: 'b2' }] });
        assert.equal(t3.status, 201, t3.text);
        assert.equal(t3.json.ids.length, 2);
        assert.deepEqual((await s1.waitEvents(4)).slice(2).map((e) => e.data), ['b1', 'b2']);

        // A channel-wide message after them: the plain subscriber's first event must be this one.
        const pub = await publish(ch, { data: 'for everyone' });
        const pe = await plain.waitEvents(1);
        assert.deepEqual(pe.map((e) => e.data), ['for everyone'], 'plain subscriber saw no targeted message');
        const after = await b.req('GET', evPath(ch));
        assert.deepEqual(after.json.events.map((e) => e.id), [...before.json.events.map((e) => e.id), pub.id],
            'history holds only the channel-wide message');
        await waitConn(ch, c2.id, (x) => x.queue_length === 1, 'c2 got only the channel-wide message');
        assert.equal((await s1.waitEvents(5))[4].data, 'for everyone');
        s1.close();
        plain.close();
    });

    test('channel and targeted messages queue together, in publish order, bounded together', async () => {
        const ch = uniq('interleave');
        assert.equal((await b.req('PUT', chPath(ch), { body: { queue_limit: 4 } })).status, 201);
        const c = await createConn(ch);
        const order = [];
        for (let i = 1; i <= 3; i++) {
            order.push((await publish(ch, { data: `ch${i}` })).id);
            const t = await b.req('POST', `${connPath(ch, c.id)}/events`, { body: { data: `t${i}` } });
            assert.equal(t.status, 201, t.text);
            order.push(t.json.id);
        }
        const q = await waitConn(ch, c.id, (x) => x.queue_length === 4, 'queue full at 4');
        assert.equal(q.dropped, 2);
        const s = await attach(ch, c.id);
        const ev = await s.waitEvents(4);
        assert.deepEqual(ev.map((e) => e.id), order.slice(2));
        assert.deepEqual(ev.map((e) => e.data), ['ch2', 't2', 'ch3', 't3']);
        s.close();
    });

    test('takeover: a second stream on the same connection ends the first', async () => {
        const ch = uniq('takeover');
        const c = await createConn(ch);
        const s1 = await attach(ch, c.id);
        const s2 = await b.stream(`${connPath(ch, c.id)}/events`);
        open.add(s2);
        assert.equal(s2.status, 200);
        await s2.waitOpen();
        await s1.waitEnd();
        assert.equal(s2.ended, false);
        const [id] = await publishN(ch, 1);
        assert.equal((await s2.waitEvents(1))[0].id, id);
        assert.equal(s1.events.length, 0, 'the old stream got nothing after the takeover');
        const x = await getConn(ch, c.id);
        assert.equal(x.attached, true);
        assert.equal(x.queue_length, 0);
        await waitFor(async () => (await b.req('GET', chPath(ch))).json.subscribers === 1, { what: 'one subscriber' });
        s2.close();
        await waitConn(ch, c.id, (y) => y.attached === false, 'detached');
    });

    test('DELETE answers 204, ends its stream, then 404', async () => {
        const ch = uniq('cdel');
        const c = await createConn(ch);
        const keep = await createConn(ch);
        const s = await attach(ch, c.id);
        const d = await b.req('DELETE', connPath(ch, c.id));
        assert.equal(d.status, 204, d.text);
        assert.equal(d.text, '');
        await s.waitEnd();
        checkError(assert, await b.req('GET', connPath(ch, c.id)), 404, 'connection_not_found', 'GET deleted');
        checkError(assert, await b.req('DELETE', connPath(ch, c.id)), 404, 'connection_not_found', 'DELETE again');
        const list = await b.req('GET', connsPath(ch));
        assert.deepEqual(list.json.connections.map((x) => x.id), [keep.id]);
        assert.equal((await b.req('GET', chPath(ch))).json.connections, 1);
        // Publishing still works and reaches the remaining connection.
        await publishN(ch, 1);
        await waitConn(ch, keep.id, (x) => x.queue_length === 1, 'remaining connection queued');
    });

    test('unknown connection → 404 connection_not_found on every connection route', async () => {
        const ch = uniq('unknownconn');
        await b.req('PUT', chPath(ch));
        const bad = connPath(ch, 'no-such-connection');
        checkError(assert, await b.req('GET', bad), 404, 'connection_not_found', 'GET');
        checkError(assert, await b.req('DELETE', bad), 404, 'connection_not_found', 'DELETE');
        checkError(assert, await b.req('POST', `${bad}/stop`), 404, 'connection_not_found', 'stop');
        checkError(assert, await b.req('POST', `${bad}/start`), 404, 'connection_not_found', 'start');
        checkError(assert, await b.req('POST', `${bad}/events`, { body: { data: 'x' } }), 404, 'connection_not_found',
            'targeted publish');
        const s = await b.stream(`${bad}/events`);
        assert.equal(s.status, 404, 'SSE attach to an unknown connection');
        assert.match(String(s.headers['content-type']), /^application\/json/);
        await s.waitEnd();
        assert.equal(JSON.parse(s.body).error.code, 'connection_not_found');
        // A connection id of one channel is unknown on another.
        const c = await createConn(ch);
        const other = uniq('otherch');
        await b.req('PUT', chPath(other));
        checkError(assert, await b.req('GET', connPath(other, c.id)), 404, 'connection_not_found', 'wrong channel');
        // Nothing was published by the failed targeted publish.
        assert.deepEqual((await b.req('GET', evPath(ch))).json.events, []);
    });

    test('connections on a missing channel: POST autocreates, GET list is 404', async () => {
        const ch = uniq('autoc');
        checkError(assert, await b.req('GET', connsPath(ch)), 404, 'channel_not_found', 'list on missing channel');
        const c = await createConn(ch);
        assert.equal(c.channel, ch);
        assert.equal((await b.req('GET', chPath(ch))).status, 200);
    });

    test('deleting the channel ends attached connection streams', async () => {
        const ch = uniq('chdel');
        const c = await createConn(ch);
        const s = await attach(ch, c.id);
        assert.equal((await b.req('DELETE', chPath(ch))).status, 204);
        await s.waitEnd();
        checkError(assert, await b.req('GET', connPath(ch, c.id)), 404, undefined, 'connection of a deleted channel');
    });

    test('1,000 connections on one channel: each gets every message once, in order', async () => {
        const ch = uniq('thousand');
        const N = 1000;
        assert.equal((await b.req('PUT', chPath(ch), { body: { queue_limit: 100 } })).status, 201);
        const ids = [];
        for (let k = 0; k < N; k += 50)
            ids.push(...(await Promise.all(Array.from({ length: 50 }, () => createConn(ch)))).map((c) => c.id));
        const queued = await publishN(ch, 10);
        const streams = [];
        for (let k = 0; k < N; k += 100)
            streams.push(...await Promise.all(ids.slice(k, k + 100).map((id) => attach(ch, id))));
        const live = await publishN(ch, 10, 11);
        const want = [...queued, ...live];
        for (const s of streams) {
            await s.waitEvents(20, 10000);
            assert.deepEqual(s.events.map((e) => e.id), want, 'all 20, once each, in order');
        }
        for (const s of streams) s.close();
        const some = await getConn(ch, ids[N - 1]);
        assert.equal(some.dropped, 0);
    });
});
