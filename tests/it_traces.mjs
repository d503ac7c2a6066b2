// it_traces.mjs - traces (POST/GET /traces, /traces/{id}, .../stop,
// .../data): each message delivered on a matching channel, to all or to one
// connection, is recorded with its channel, id, type, size, publisher, that
// connection and the streams and connections it reached on each node; pages go on with 'after'; a trace keeps its 'limit'
// newest records, ends at its time or when stopped, and is gone once deleted;
// bad input is a 400 that changes nothing; only 'manage' may use them; on
// Redis, every node sharing the store records, a node started later included.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { startBroker, uniq, evPath, chPath, waitFor, checkError, STORE } from './lib/broker.mjs';
import { startRedis } from './lib/redis.mjs';
import { manageAuth, checkManageOnly } from './lib/access.mjs';

const cleanups = [];
after(async () => {
    for (const f of cleanups.reverse()) await f();
});

async function broker(config = {}) {
    const b = await startBroker({ config });
    cleanups.push(async () => { if (b.alive()) assert.equal(await b.stop(), 0); });
    return b;
}

const trPath = (id = '', tail = '') => `/traces${id ? `/${encodeURIComponent(id)}` : ''}${tail}`;

async function startTrace(b, body, headers = {}) {
    const res = await b.req('POST', trPath(), { body, headers });
    assert.equal(res.status, 201, res.text);
    return res.json;
}

async function publish(b, name, data, { event, headers = {} } = {}) {
    const body = event ? { event, data } : data;
    const hdrs = event ? headers : { 'Content-Type': 'text/plain', ...headers };
    const res = await b.req('POST', evPath(name), { body, headers: hdrs });
    assert.equal(res.status, 201, `publish on ${name}: ${res.text}`);
    return res.json.id;
}

/** Every record of trace 'id', page by page ('limit' a page). */
async function allRecords(b, id, { limit = 1000, headers = {} } = {}) {
    const out = [];
    let next = null;
    for (let page = 0; page < 100; page++) {
        const res = await b.req('GET', trPath(id, `/data?limit=${limit}${next ? `&after=${next}` : ''}`), { headers });
        assert.equal(res.status, 200, res.text);
        assert.ok(res.json.records.length <= limit, 'a page holds at most limit');
        out.push(...res.json.records);
        if (res.json.next === undefined) return out;
        assert.equal(res.json.next, res.json.records.at(-1).seq, 'next is the last seq of the page');
        next = res.json.next;
    }
    throw new Error('more than 100 pages');
}

async function waitRecords(b, id, n, what, opts) {
    let recs = [];
    await waitFor(async () => (recs = await allRecords(b, id, opts)).length >= n,
        { timeout: 5000, what: `${n} record(s) of ${id}: ${what}` });
    return recs;
}

async function getTrace(b, id, headers = {}) {
    const res = await b.req('GET', trPath(id), { headers });
    assert.equal(res.status, 200, res.text);
    return res.json;
}

test('a trace records each message on matching channels: what, who, how many streams; pages; stop; delete', async () => {
    const b = await broker();
    const p = uniq('tr');
    const node = (await b.req('GET', '/status')).json.node.id;
    const t = await startTrace(b, { id: `${p}-1`, match: [`${p}.*`], limit: 100, duration_s: 600 });
    assert.equal(t.id, `${p}-1`);
    assert.deepEqual(t.match, [`${p}.*`]);
    assert.equal(t.limit, 100);
    assert.equal(t.duration_s, 600);
    assert.equal(t.state, 'running');
    assert.equal(t.records, 0);
    assert.equal(t.stopped_at, null);
    assert.equal(t.ends_at, t.started_at + 600e6);

    // Two streams on the traced channel, one on a channel it does not match.
    const s1 = await b.stream(evPath(`${p}.a`));
    const s2 = await b.stream(evPath(`${p}.a`));
    await s1.waitOpen();
    await s2.waitOpen();
    const ids = [];
    ids.push(await publish(b, `${p}.a`, 'hello'));
    ids.push(await publish(b, `${p}.a`, 'typed data', { event: 'tick' }));
    await publish(b, `other.${p}`, 'not traced');
    ids.push(await publish(b, `${p}.b.c`, 'nobody listens'));
    await s1.waitEvents(2);
    await s2.waitEvents(2);

    const recs = await waitRecords(b, t.id, 3, 'three traced messages');
    assert.equal(recs.length, 3, JSON.stringify(recs));
    assert.deepEqual(recs.map((r) => r.id), ids, 'in order, the untraced channel left out');
    assert.deepEqual(recs.map((r) => r.channel), [`${p}.a`, `${p}.a`, `${p}.b.c`]);
    assert.deepEqual(recs.map((r) => r.event), [null, 'tick', null]);
    assert.deepEqual(recs.map((r) => r.size), [5, 10, 14]);
    assert.deepEqual(recs.map((r) => r.streams), [2, 2, 0], 'the streams it was written to');
    assert.deepEqual(recs.map((r) => r.connections), [0, 0, 0]);
    assert.deepEqual(recs.map((r) => r.connection), [null, null, null], 'published to the channel');
    for (const r of recs) {
        assert.equal(r.node, node);
        assert.equal(r.authid, null, 'anonymous publisher');
        assert.equal(r.authrole, null);
        assert.equal(typeof r.timestamp, 'number');
        assert.ok(r.time >= r.timestamp, 'recorded once published');
    }
    assert.deepEqual(recs.map((r) => r.seq), [1, 2, 3], 'numbered from 1');

    // Pages of two.
    const page1 = await b.req('GET', trPath(t.id, '/data?limit=2'));
    assert.equal(page1.json.records.length, 2);
    assert.equal(page1.json.next, 2);
    const page2 = await b.req('GET', trPath(t.id, '/data?limit=2&after=2'));
    assert.deepEqual(page2.json.records.map((r) => r.seq), [3]);
    assert.equal(page2.json.next, undefined, 'the last page has no next');
    assert.equal((await allRecords(b, t.id, { limit: 1 })).length, 3, 'pages of one');

    // A durable connection attached here counts as a connection; a message
    // published to it alone is traced too, with its id.
    const conn = await b.req('POST', `${chPath(`${p}.a`)}/connections`);
    assert.equal(conn.status, 201, conn.text);
    const cp = `${chPath(`${p}.a`)}/connections/${conn.json.id}`;
    const cs = await b.stream(`${cp}/events`);
    await cs.waitOpen();
    const toConn = async (data) => {
        const res = await b.req('POST', `${cp}/events`, { body: data, headers: { 'Content-Type': 'text/plain' } });
        assert.equal(res.status, 201, res.text);
        return res.json.id;
    };
    // Once the first message to the connection alone has arrived, the
    // attach's catch-up read is over and what follows is delivered live: a
    // message the catch-up read brings is not a live delivery, not counted.
    ids.push(await toConn('to the connection'));
    await cs.waitEvents(1);
    ids.push(await publish(b, `${p}.a`, 'to all'));
    await cs.waitEvents(2);
    ids.push(await toConn('to it again'));
    await cs.waitEvents(3);
    const [r4, r5, r6] = (await waitRecords(b, t.id, 6, 'the fourth to the sixth')).slice(3);
    assert.deepEqual([r4.id, r5.id, r6.id], ids.slice(3));
    assert.deepEqual([r4.connection, r5.connection, r6.connection], [conn.json.id, null, conn.json.id]);
    assert.deepEqual([r4.channel, r5.channel, r6.channel], [`${p}.a`, `${p}.a`, `${p}.a`]);
    assert.deepEqual([r4.size, r6.size], [17, 11]);
    assert.deepEqual([r4.streams, r5.streams, r6.streams], [0, 2, 0], 'a plain stream gets none of its own');
    assert.ok(r4.connections <= 1, 'counted if the catch-up read was over');
    assert.deepEqual([r5.connections, r6.connections], [1, 1]);

    const listed = (await b.req('GET', trPath())).json.traces.find((x) => x.id === t.id);
    assert.equal(listed.records, 6);
    assert.equal(listed.state, 'running');

    // Stopped: it records no more. A second trace shows when the next message
    // was recorded.
    const stopped = await b.req('POST', trPath(t.id, '/stop'));
    assert.equal(stopped.status, 200, stopped.text);
    assert.equal(stopped.json.state, 'stopped');
    assert.ok(stopped.json.stopped_at >= t.started_at);
    assert.equal(stopped.json.ends_at, stopped.json.stopped_at);
    const t2 = await startTrace(b, { id: `${p}-2`, match: [`${p}.a`] });
    assert.equal(t2.limit, 1000, 'the default limit');
    assert.equal(t2.duration_s, 60, 'the default duration');
    const after = await publish(b, `${p}.a`, 'after the stop');
    assert.equal((await waitRecords(b, t2.id, 1, 'the marker'))[0].id, after);
    assert.equal((await allRecords(b, t.id)).length, 6, 'nothing recorded once stopped');
    assert.equal((await getTrace(b, t.id)).state, 'stopped');
    const again = await b.req('POST', trPath(t.id, '/stop'));
    assert.equal(again.status, 200, 'stopping a stopped trace changes nothing');
    assert.equal(again.json.stopped_at, stopped.json.stopped_at);

    // Deleted: gone with its records.
    const del = await b.req('DELETE', trPath(t.id));
    assert.equal(del.status, 204, del.text);
    checkError(assert, await b.req('GET', trPath(t.id)), 404, 'trace_not_found');
    checkError(assert, await b.req('GET', trPath(t.id, '/data')), 404, 'trace_not_found');
    checkError(assert, await b.req('POST', trPath(t.id, '/stop')), 404, 'trace_not_found');
    checkError(assert, await b.req('DELETE', trPath(t.id)), 404, 'trace_not_found');
    assert.deepEqual((await b.req('GET', trPath())).json.traces.map((x) => x.id), [t2.id]);
    // Its id can be used again, from no records.
    const t3 = await startTrace(b, { id: t.id, match: ['nothing.here'] });
    assert.equal(t3.records, 0);
    assert.deepEqual(await allRecords(b, t.id), []);
    s1.close();
    s2.close();
    cs.close();
});

test('a trace keeps its limit newest records, counts them all, and ends at its time', async () => {
    const b = await broker();
    const p = uniq('lim');
    const t = await startTrace(b, { id: `${p}-lim`, match: [p], limit: 5, duration_s: 600 });
    const ids = [];
    for (let i = 0; i < 12; i++) ids.push(await publish(b, p, `m${i}`));
    await waitFor(async () => (await getTrace(b, t.id)).records === 12, { what: '12 records taken' });
    const recs = await allRecords(b, t.id);
    assert.deepEqual(recs.map((r) => r.id), ids.slice(7), 'the limit newest, in order');
    assert.deepEqual(recs.map((r) => r.seq), [8, 9, 10, 11, 12]);

    // One second long: it stops by itself.
    const short = await startTrace(b, { id: `${p}-short`, match: [p], duration_s: 1 });
    await publish(b, p, 'within');
    await waitRecords(b, short.id, 1, 'the message within its time');
    await waitFor(async () => (await getTrace(b, short.id)).state === 'stopped',
        { timeout: 5000, what: 'the trace over at its time' });
    const marker = await startTrace(b, { id: `${p}-marker`, match: [p] });
    const late = await publish(b, p, 'too late');
    assert.equal((await waitRecords(b, marker.id, 1, 'the marker'))[0].id, late);
    assert.equal((await allRecords(b, short.id)).length, 1, 'nothing recorded after its time');
});

test('bad input is a 400 (or 404, 409) that changes nothing', async () => {
    const b = await broker({ traces: { max: 2, max_records: 1000, max_duration_s: 3600 } });
    const p = uniq('bad');
    const bad = async (body, code, what, status = 400) => {
        const res = await b.req('POST', trPath(), typeof body === 'string'
            ? { body, headers: { 'Content-Type': 'application/json' } } : { body });
        checkError(assert, res, status, code, what);
    };
    await bad('{"id":', 'invalid_json', 'broken JSON');
    await bad('', 'invalid_json', 'no body');
    await bad('{"id":"a","id":"b","match":["x"]}', 'invalid_json', 'a duplicate key');
    await bad([1], 'invalid_trace', 'not an object');
    await bad({ match: ['x'] }, 'invalid_trace', 'no id');
    await bad({ id: '', match: ['x'] }, 'invalid_trace', 'empty id');
    await bad({ id: 'a/b', match: ['x'] }, 'invalid_trace', 'a slash in the id');
    await bad({ id: 'x'.repeat(65), match: ['x'] }, 'invalid_trace', 'a 65-byte id');
    await bad({ id: 7, match: ['x'] }, 'invalid_trace', 'a number id');
    await bad({ id: p }, 'invalid_trace', 'no match');
    await bad({ id: p, match: [] }, 'invalid_trace', 'an empty match');
    await bad({ id: p, match: 'x' }, 'invalid_trace', 'match not an array');
    await bad({ id: p, match: [3] }, 'invalid_trace', 'a number pattern');
    await bad({ id: p, match: ['a.*.b'] }, 'invalid_trace', 'a star not last');
    await bad({ id: p, match: ['a..b'] }, 'invalid_trace', 'an empty segment');
    await bad({ id: p, match: ['user.{sub}'] }, 'invalid_trace', '{sub}');
    await bad({ id: p, match: Array(17).fill('x') }, 'invalid_trace', '17 patterns');
    await bad({ id: p, match: ['x'], limit: 0 }, 'invalid_trace', 'limit 0');
    await bad({ id: p, match: ['x'], limit: 1001 }, 'invalid_trace', 'limit over traces.max_records');
    await bad({ id: p, match: ['x'], limit: '5' }, 'invalid_trace', 'limit a string');
    await bad({ id: p, match: ['x'], limit: 1.5 }, 'invalid_trace', 'limit not an integer');
    await bad({ id: p, match: ['x'], duration_s: 0 }, 'invalid_trace', 'duration 0');
    await bad({ id: p, match: ['x'], duration_s: 3601 }, 'invalid_trace', 'duration over the maximum');
    await bad({ id: p, match: ['x'], filter: 1 }, 'invalid_trace', 'an unknown key');
    assert.deepEqual((await b.req('GET', trPath())).json.traces, [], 'nothing was created');

    const t = await startTrace(b, { id: p, match: ['x'] });
    assert.equal(t.limit, 1000, 'the default limit, lowered to the maximum');
    await bad({ id: p, match: ['y'] }, 'trace_exists', 'the same id', 409);
    assert.deepEqual((await getTrace(b, p)).match, ['x'], 'the first one stays');
    await startTrace(b, { id: `${p}-2`, match: ['x'] });
    await bad({ id: `${p}-3`, match: ['x'] }, 'too_many_traces', 'over traces.max', 409);
    assert.equal((await b.req('GET', trPath())).json.traces.length, 2);

    for (const q of ['limit=0', 'limit=1001', 'limit=x', 'after=-1', 'after=abc', 'after=99999999999999999999'])
        checkError(assert, await b.req('GET', trPath(p, `/data?${q}`)), 400, 'invalid_query', q);
    checkError(assert, await b.req('GET', trPath('nope')), 404, 'trace_not_found');
    checkError(assert, await b.req('GET', trPath('x'.repeat(65))), 404, 'trace_not_found');
    checkError(assert, await b.req('GET', '/traces/a%00b'), 404, 'trace_not_found');
    checkError(assert, await b.req('GET', trPath('nope', '/data')), 404, 'trace_not_found');
    checkError(assert, await b.req('PUT', trPath(p)), 405, undefined, 'PUT');
    checkError(assert, await b.req('GET', trPath(p, '/stop')), 405, undefined, 'GET stop');
    b.assertAlive();
});

test('a config with bad trace bounds is refused, naming the field', async () => {
    for (const traces of [{ max: 0 }, { max_records: 0 }, { max_duration_s: 'x' }, { sample: 1 }, 3]) {
        await assert.rejects(startBroker({ config: { traces } }), (e) => /traces/.test(e.message),
            JSON.stringify(traces));
    }
});

test('with access control: only manage uses traces; the publisher is recorded', async () => {
    // manage on some channels is not manage on the broker
    const { auth, bearer } = manageAuth([{ match: 'room.*', allow: ['subscribe', 'publish', 'manage'] }]);
    const b = await broker({ auth });
    const admin = bearer('root', 'admin');
    const user = bearer('alice', 'user');
    const room = `room.${uniq('r')}`;
    const body = { id: 'acl', match: ['room.*'] };
    await checkManageOnly(assert, b, [['POST', trPath(), body], ['GET', trPath()], ['GET', trPath('acl')],
        ['GET', trPath('acl', '/data')], ['POST', trPath('acl', '/stop')], ['DELETE', trPath('acl')]], user);
    assert.deepEqual((await b.req('GET', trPath(), { headers: admin })).json.traces, [], 'nothing was created');

    await startTrace(b, body, admin);
    const id = await publish(b, room, 'from alice', { headers: user });
    const [r] = await waitRecords(b, 'acl', 1, 'alice\'s message', { headers: admin });
    assert.equal(r.id, id);
    assert.equal(r.authid, 'alice');
    assert.equal(r.authrole, 'user');
    assert.equal((await b.req('POST', trPath('acl', '/stop'), { headers: admin })).status, 200);
    assert.equal((await b.req('DELETE', trPath('acl'), { headers: admin })).status, 204);
});

test('two nodes on one Redis: every node records what it delivers; a node started later too',
    { skip: STORE !== 'redis' && 'two nodes share a store only on Redis' }, async () => {
        const r = await startRedis();
        cleanups.push(() => r.stop());
        const store = { type: 'redis', url: r.url, prefix: `tr${process.pid}:` };
        const a = await broker({ store });
        const b = await broker({ store });
        const nodeA = (await a.req('GET', '/status')).json.node.id;
        const nodeB = (await b.req('GET', '/status')).json.node.id;
        const p = uniq('cl');
        const ch = `${p}.x`;
        assert.equal((await a.req('PUT', chPath(ch))).status, 201);
        await waitFor(async () => (await b.req('GET', chPath(ch))).status === 200, { what: 'the channel on b' });

        const t = await startTrace(a, { id: p, match: [`${p}.*`] });
        // b hears of it: it answers for it, and records.
        assert.equal((await getTrace(b, p)).state, 'running');
        const sa = await a.stream(evPath(ch));
        const sb1 = await b.stream(evPath(ch));
        const sb2 = await b.stream(evPath(ch));
        for (const s of [sa, sb1, sb2]) await s.waitOpen();
        const id1 = await publish(a, ch, 'one');
        for (const s of [sa, sb1, sb2]) await s.waitEvents(1);
        let recs = await waitRecords(a, t.id, 2, 'one record per node');
        assert.equal(recs.length, 2, JSON.stringify(recs));
        const byNode = Object.fromEntries(recs.map((x) => [x.node, x]));
        assert.equal(byNode[nodeA].id, id1);
        assert.equal(byNode[nodeB].id, id1);
        assert.equal(byNode[nodeA].streams, 1);
        assert.equal(byNode[nodeB].streams, 2);
        assert.deepEqual(await allRecords(b, t.id), recs, 'both nodes read the same records');

        // A node started now reads the running trace from the store.
        const c = await broker({ store });
        const nodeC = (await c.req('GET', '/status')).json.node.id;
        const sc = await c.stream(evPath(ch));
        await sc.waitOpen();
        const id2 = await publish(b, ch, 'two');
        await sc.waitEvents(1);
        recs = await waitRecords(a, t.id, 5, 'three nodes record the second message');
        const second = recs.filter((x) => x.id === id2);
        assert.deepEqual(second.map((x) => x.node).sort(), [nodeA, nodeB, nodeC].sort());
        assert.equal(second.find((x) => x.node === nodeC).streams, 1);

        // Stopped on c: no node records any more.
        assert.equal((await c.req('POST', trPath(t.id, '/stop'))).json.state, 'stopped');
        await waitFor(async () => (await getTrace(a, t.id)).state === 'stopped', { what: 'stopped everywhere' });
        const marker = await startTrace(b, { id: `${p}-m`, match: [ch] });
        await waitFor(async () => (await getTrace(c, marker.id)).state === 'running', { what: 'marker known' });
        const id3 = await publish(c, ch, 'three');
        await waitRecords(b, marker.id, 3, 'the marker on three nodes');
        const after = await allRecords(a, t.id);
        assert.equal(after.length, 5, 'no node recorded after the stop');
        assert.ok(!after.some((x) => x.id === id3));
        // Deleted on b: gone for a.
        assert.equal((await b.req('DELETE', trPath(t.id))).status, 204);
        checkError(assert, await a.req('GET', trPath(t.id)), 404, 'trace_not_found');
        for (const s of [sa, sb1, sb2, sc]) s.close();
    });
