// it_sessions.mjs - every live stream is a session: its client is told its id
// first, GET /sessions and /sessions/{id} show it (with its identity when
// access control is on), it ends with left_at, joins and leaves are published
// on sys.sessions, clients cannot write sys.* channels, and the archive is
// bounded by sessions.retention_s and sessions.max; what a stream keeps of
// its session, compacted for memory, reads back whole. Runs on both stores.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { startBroker, uniq, chPath, evPath, waitFor, checkError } from './lib/broker.mjs';
import { manageAuth, checkManageOnly } from './lib/access.mjs';
import { hsKey, mint } from './lib/jwt.mjs';

const brokers = [];
after(async () => {
    for (const b of brokers) if (b.alive()) assert.equal(await b.stop(), 0);
});

async function broker(config = {}) {
    const b = await startBroker({ config });
    brokers.push(b);
    return b;
}

const sessPath = (q = '') => `/sessions${q}`;

/** Every session of the archive matching query 'q', read page by page. */
async function allSessions(b, q = '', { limit = 1000, headers = {} } = {}) {
    const out = [];
    let after = null;
    for (let page = 0; page < 1000; page++) {
        const sep = q ? '&' : '';
        const path = sessPath(`?${q}${sep}limit=${limit}${after ? `&after=${after}` : ''}`);
        const res = await b.req('GET', path, { headers });
        assert.equal(res.status, 200, `${path}: ${res.text}`);
        assert.ok(res.json.sessions.length <= limit, 'a page holds at most limit');
        out.push(...res.json.sessions);
        if (!res.json.next) return out;
        assert.equal(res.json.next, res.json.sessions.at(-1).id, 'next is the last id of the page');
        after = res.json.next;
    }
    throw new Error('more than 1000 pages');
}

async function getSession(b, id, headers = {}) {
    const res = await b.req('GET', sessPath(`/${id}`), { headers });
    assert.equal(res.status, 200, res.text);
    return res.json;
}

/** Open a stream and wait for its session id. */
async function open(b, path, opts = {}) {
    const s = await b.stream(path, opts);
    assert.equal(s.status, 200, s.body);
    await s.waitUntil(() => s.session, 5000, 'the session event');
    return s;
}

test('the session event comes first, without an id, and names the session /sessions shows', async () => {
    const b = await broker();
    const name = uniq('first');
    const pub = await b.req('POST', evPath(name), { body: 'm1', headers: { 'Content-Type': 'text/plain' } });
    assert.equal(pub.status, 201);
    const s = await open(b, evPath(name), { headers: { 'Last-Event-ID': '0', 'User-Agent': 'it-sessions/1.0 (test)' } });
    await s.waitEvents(1);
    // On the wire: the opening block, then the session event, then the replay.
    const m = /^retry: \d+\n: ok\n\nevent: session\ndata: (\{[^\n]*\})\n\n/.exec(s.raw);
    assert.ok(m, `stream starts with the session event: ${JSON.stringify(s.raw)}`);
    assert.deepEqual(JSON.parse(m[1]), { id: s.session });
    assert.match(s.session, /^[0-9a-f]{16}$/);
    assert.equal(s.events[0].data, 'm1', 'the replay follows it; Last-Event-ID unaffected');
    assert.equal(s.events[0].id, pub.json.id);

    const rec = await getSession(b, s.session);
    const status = await b.req('GET', '/status');
    assert.equal(rec.id, s.session);
    assert.equal(rec.channel, name);
    assert.equal(rec.authid, null);
    assert.equal(rec.authrole, null);
    assert.equal(rec.authmethod, 'anonymous');
    assert.equal(rec.connection, null);
    assert.equal(rec.node, status.json.node.id);
    assert.match(rec.remote, /^127\.0\.0\.1:\d+$/);
    assert.equal(rec.user_agent, 'it-sessions/1.0 (test)');
    assert.ok(Math.abs(rec.joined_at - Date.now() * 1000) < 60e6, `joined_at in µs: ${rec.joined_at}`);
    assert.equal(rec.left_at, null);

    s.close();
    const ended = await waitFor(async () => {
        const r = await getSession(b, s.session);
        return r.left_at !== null && r;
    }, { what: 'left_at set' });
    assert.ok(ended.left_at > ended.joined_at, 'left after it joined');
    assert.equal(ended.joined_at, rec.joined_at);
});

test('a stream attached to a durable connection names it', async () => {
    const b = await broker();
    const name = uniq('conn');
    const c = await b.req('POST', `${chPath(name)}/connections`);
    assert.equal(c.status, 201, c.text);
    const s = await open(b, `${chPath(name)}/connections/${c.json.id}/events`);
    const rec = await getSession(b, s.session);
    assert.equal(rec.connection, c.json.id);
    assert.equal(rec.channel, name);
    s.close();
});

test('filters: active, channel; paging returns every session exactly once', async () => {
    const b = await broker();
    const a = uniq('fa'), other = uniq('fb');
    const ended = [], live = [];
    for (let i = 0; i < 7; i++) {
        const s = await open(b, evPath(a));
        s.close();
        ended.push(s.session);
    }
    for (let i = 0; i < 2; i++) live.push(await open(b, evPath(a)));
    const elsewhere = await open(b, evPath(other));
    // Every ended one is archived as ended.
    await waitFor(async () => (await allSessions(b, `channel=${a}&active=false`)).length === 7,
        { what: 'seven ended sessions' });

    for (const limit of [1, 2, 3, 100]) {
        const got = await allSessions(b, `channel=${a}`, { limit });
        const ids = got.map((x) => x.id);
        assert.equal(new Set(ids).size, ids.length, `limit ${limit}: no session twice`);
        assert.deepEqual([...ids].sort(), [...ended, ...live.map((s) => s.session)].sort(),
            `limit ${limit}: every session of the channel once`);
        assert.deepEqual(ids, [...ids].sort(), 'pages are sorted by id');
        assert.ok(got.every((x) => x.channel === a));
    }
    const act = await allSessions(b, `channel=${a}&active=true`);
    assert.deepEqual(act.map((x) => x.id).sort(), live.map((s) => s.session).sort());
    assert.ok(act.every((x) => x.left_at === null));
    const done = await allSessions(b, `channel=${a}&active=false`, { limit: 3 });
    assert.deepEqual(done.map((x) => x.id).sort(), [...ended].sort());
    assert.ok(done.every((x) => x.left_at !== null));
    const oth = await allSessions(b, `channel=${other}`);
    assert.deepEqual(oth.map((x) => x.id), [elsewhere.session]);
    // Without a filter, both channels' sessions are there.
    const every = (await allSessions(b, '', { limit: 4 })).map((x) => x.id);
    for (const id of [...ended, elsewhere.session]) assert.ok(every.includes(id), id);
    // A page says where the next starts, and the next starts there.
    const p1 = await b.req('GET', sessPath(`?channel=${a}&limit=4`));
    assert.equal(p1.json.sessions.length, 4);
    assert.equal(p1.json.next, p1.json.sessions[3].id);
    const p2 = await b.req('GET', sessPath(`?channel=${a}&limit=4&after=${p1.json.next}`));
    assert.ok(p2.json.sessions.every((x) => x.id > p1.json.next));
    for (const s of [...live, elsewhere]) s.close();
});

test('bad queries are 400 with a JSON error; unknown ids 404', async () => {
    const b = await broker();
    for (const q of ['active=yes', 'active=', 'limit=0', 'limit=1001', 'limit=abc', 'limit=-1',
        'channel=a%20b', 'channel=', `channel=${'x'.repeat(201)}`, 'authid=', `after=${'f'.repeat(65)}`]) {
        checkError(assert, await b.req('GET', sessPath(`?${q}`)), 400, 'invalid_query', q);
    }
    checkError(assert, await b.req('GET', sessPath('/0123456789abcdef')), 404, 'session_not_found');
    checkError(assert, await b.req('GET', sessPath('/not-an-id')), 404, 'session_not_found');
    checkError(assert, await b.req('GET', sessPath('/0123456789abcde%00')), 404, 'session_not_found');
    const res = await b.req('POST', sessPath());
    assert.equal(res.status, 405);
    b.assertAlive();
});

test('sys.sessions: joins and leaves as events; its own subscribers are not announced', async () => {
    const b = await broker();
    const mon = await open(b, evPath('sys.sessions'));
    const name = uniq('watched');
    const s = await open(b, evPath(name), { headers: { 'User-Agent': 'watched-agent' } });
    s.close();
    const evs = await mon.waitUntil(() => mon.events.filter((e) => e.data.includes(s.session)).length >= 2 &&
        mon.events.filter((e) => e.data.includes(s.session)), 5000, 'joined and left');
    assert.deepEqual(evs.map((e) => e.event), ['joined', 'left']);
    const joined = JSON.parse(evs[0].data), left = JSON.parse(evs[1].data);
    assert.equal(joined.id, s.session);
    assert.equal(joined.channel, name);
    assert.equal(joined.user_agent, 'watched-agent');
    assert.equal(joined.left_at, null);
    assert.equal(left.id, s.session);
    assert.ok(left.left_at >= joined.joined_at);
    assert.ok(evs.every((e) => /^\d+$/.test(e.id)), 'stored messages with ids (resumable)');
    // The monitor's own join was archived but not published.
    assert.ok(!mon.events.some((e) => e.data.includes(mon.session)), 'no event about the monitor itself');
    assert.equal((await getSession(b, mon.session)).channel, 'sys.sessions');
    // They are history like any channel's: a late monitor replays them.
    const hist = await b.req('GET', evPath('sys.sessions'));
    assert.equal(hist.status, 200);
    assert.ok(hist.json.events.some((e) => e.event === 'left' && e.data.includes(s.session)));
    mon.close();
});

test('clients cannot publish to, create or delete sys.* channels', async () => {
    const b = await broker();
    const mon = await open(b, evPath('sys.sessions')); // it exists once someone joined
    const text = { 'Content-Type': 'text/plain' };
    checkError(assert, await b.req('POST', evPath('sys.sessions'), { body: 'x', headers: text }), 403, 'reserved_channel');
    checkError(assert, await b.req('POST', evPath('sys.sessions'), { body: { event: 'joined', data: {} } }), 403, 'reserved_channel');
    checkError(assert, await b.req('POST', evPath('sys.other'), { body: 'x', headers: text }), 403, 'reserved_channel');
    checkError(assert, await b.req('PUT', chPath('sys.new')), 403, 'reserved_channel');
    checkError(assert, await b.req('PUT', chPath('sys.sessions'), { body: { history: 5 } }), 403, 'reserved_channel');
    checkError(assert, await b.req('DELETE', chPath('sys.sessions')), 403, 'reserved_channel');
    checkError(assert, await b.req('GET', chPath('sys.other')), 404, 'channel_not_found', 'nothing was created');
    // Nor does subscribing (or a connection) create another sys.* channel.
    const other = await b.stream(evPath('sys.other'));
    assert.equal(other.status, 404);
    checkError(assert, await b.req('POST', `${chPath('sys.other')}/connections`), 404, 'channel_not_found');
    // A durable connection may read it, but nobody may publish to it there.
    const c = await b.req('POST', `${chPath('sys.sessions')}/connections`);
    assert.equal(c.status, 201, c.text);
    checkError(assert, await b.req('POST', `${chPath('sys.sessions')}/connections/${c.json.id}/events`,
        { body: 'x', headers: text }), 403, 'reserved_channel');
    // "sys" alone or "system.x" are ordinary names.
    assert.equal((await b.req('POST', evPath(uniq('system.x')), { body: 'x', headers: text })).status, 201);
    assert.equal((await b.req('GET', chPath('sys.sessions'))).status, 200, 'still there');
    mon.close();
});

test('with access control: identity from the JWT, /sessions needs manage, filter by authid', async () => {
    const { auth, bearer } = manageAuth([{ match: 'room.*', allow: ['subscribe', 'publish'] }]);
    const b = await broker({ auth });
    const admin = bearer('root', 'admin');
    const room = `room.${uniq('r')}`;
    const alice = await open(b, evPath(room), { headers: bearer('alice', 'user') });
    const bob = await open(b, evPath(room), { headers: bearer('bob', 'user') });

    // Who may read the archive.
    await checkManageOnly(assert, b, [['GET', sessPath()], ['GET', sessPath(`/${alice.session}`)]],
        bearer('alice', 'user'));

    const rec = await getSession(b, alice.session, admin);
    assert.equal(rec.authid, 'alice');
    assert.equal(rec.authrole, 'user');
    assert.equal(rec.authmethod, 'jwt');
    assert.equal(rec.channel, room);
    const mine = await allSessions(b, 'authid=alice', { headers: admin });
    assert.deepEqual(mine.map((x) => x.id), [alice.session]);
    const both = await allSessions(b, `channel=${room}&active=true`, { headers: admin });
    assert.deepEqual(both.map((x) => x.authid).sort(), ['alice', 'bob']);
    assert.deepEqual(await allSessions(b, 'authid=nobody', { headers: admin }), []);

    // sys.sessions needs subscribe on it like any channel; nobody publishes there.
    const denied = await b.stream(evPath('sys.sessions'), { headers: bearer('alice', 'user') });
    assert.equal(denied.status, 403);
    const mon = await open(b, evPath('sys.sessions'), { headers: admin });
    bob.close();
    await mon.waitUntil(() => mon.events.some((e) => e.event === 'left' && JSON.parse(e.data).authid === 'bob'),
        5000, "bob's leave");
    checkError(assert, await b.req('POST', evPath('sys.sessions'), { body: 'x', headers: { ...admin, 'Content-Type': 'text/plain' } }),
        403, 'reserved_channel', 'not even with manage');
    alice.close();
    mon.close();
});

test('sessions.max: the oldest ended go first, active sessions always stay', async () => {
    const b = await broker({ sessions: { max: 3, retention_s: 3600 } });
    const name = uniq('max');
    const live = [];
    for (let i = 0; i < 4; i++) live.push(await open(b, evPath(name)));
    const ended = [];
    for (let i = 0; i < 5; i++) {
        const s = await open(b, evPath(name));
        s.close();
        await waitFor(async () => (await getSession(b, s.session)).left_at !== null, { what: 'ended' });
        ended.push(s.session);
    }
    // Over the bound with four active: every ended one goes, the active stay.
    await waitFor(async () => (await allSessions(b)).length === 4, { what: 'only the active left', timeout: 10000 });
    const kept = await allSessions(b);
    assert.deepEqual(kept.map((x) => x.id).sort(), live.map((s) => s.session).sort());
    assert.ok(kept.every((x) => x.left_at === null));
    // With room again, the ones that ended last are kept.
    for (const s of live) {
        s.close();
        await waitFor(async () => (await getSession(b, s.session)).left_at !== null, { what: 'ended' });
    }
    await waitFor(async () => (await allSessions(b)).length === 3, { what: 'three left', timeout: 10000 });
    const left = await allSessions(b);
    assert.deepEqual(left.map((x) => x.id).sort(), live.slice(1).map((s) => s.session).sort(),
        'the first to end went first');
    assert.ok(left.every((x) => x.left_at !== null));
});

test('sessions.retention_s: ended sessions older than it are dropped, active ones stay', async () => {
    const b = await broker({ sessions: { retention_s: 1 } });
    const name = uniq('ret');
    const keep = await open(b, evPath(name));
    const gone = await open(b, evPath(name));
    gone.close();
    await waitFor(async () => (await getSession(b, gone.session)).left_at !== null, { what: 'ended' });
    await waitFor(async () => (await b.req('GET', sessPath(`/${gone.session}`))).status === 404,
        { what: 'the ended session dropped', timeout: 10000 });
    const rec = await getSession(b, keep.session);
    assert.equal(rec.left_at, null, 'the active one is still there');
    keep.close();
});

// What a live stream keeps of its session is compacted for memory (issue
// 18: the archived record without its null members, the reader and the peer
// as one string pair each); every member still reads back whole.
const MEMBERS = ['authid', 'authmethod', 'authrole', 'channel', 'connection', 'id', 'joined_at',
    'left_at', 'node', 'remote', 'user_agent'];

test('an anonymous stream without a User-Agent: every member back, the unset ones null', async () => {
    const b = await broker();
    const mon = await open(b, evPath('sys.sessions'));
    const name = uniq('rec');
    const s = await open(b, evPath(name), { headers: { 'User-Agent': '' } });

    const rec = await getSession(b, s.session);
    assert.deepEqual(Object.keys(rec).sort(), MEMBERS, 'the API shows every member');
    assert.equal(rec.authid, null);
    assert.equal(rec.authrole, null);
    assert.equal(rec.authmethod, 'anonymous');
    assert.equal(rec.connection, null);
    assert.equal(rec.user_agent, null);
    assert.equal(rec.left_at, null);
    assert.equal(rec.channel, name);
    assert.match(rec.remote, /^127\.0\.0\.1:\d+$/, 'the address kept without a User-Agent');

    // The joined event on sys.sessions is the full object, nulls included.
    const joined = await mon.waitUntil(() => mon.events.find((e) => e.event === 'joined' &&
        e.data.includes(s.session)), 5000, 'joined');
    const ev = JSON.parse(joined.data);
    assert.deepEqual(Object.keys(ev).sort(), MEMBERS, 'the event names every member');
    for (const k of ['authid', 'authrole', 'connection', 'user_agent', 'left_at']) assert.equal(ev[k], null, k);
    assert.equal(ev.authmethod, 'anonymous');
    assert.equal(ev.remote, rec.remote);

    s.close();
    const ended = await waitFor(async () => {
        const r = await getSession(b, s.session);
        return r.left_at !== null && r;
    }, { what: 'left_at set' });
    assert.deepEqual(Object.keys(ended).sort(), MEMBERS);
    assert.equal(ended.remote, rec.remote, 'the address is kept to the end');
    assert.equal(ended.joined_at, rec.joined_at);
    mon.close();
});

test('a JWT without a role: authid kept, authrole null, in the archive and for targeting', async () => {
    const key = hsKey();
    const b = await broker({
        auth: {
            jwt: { keys: [{ alg: 'HS256', secret: key.secret }] },
            roles: { admin: [{ match: '*', allow: ['subscribe', 'publish', 'history', 'manage'] }] },
        },
    });
    const admin = { Authorization: `Bearer ${mint(key, { sub: 'root', role: 'admin' }, { expIn: 600 })}` };
    const room = uniq('room');
    const carolTok = mint(key, { sub: 'carol', ssebroker: { subscribe: [room] } }, { expIn: 600 });
    const ua = 'record-agent/2 (' + 'x'.repeat(100) + ')';
    const carol = await open(b, evPath(room), { headers: { Authorization: `Bearer ${carolTok}`, 'User-Agent': ua } });

    const rec = await getSession(b, carol.session, admin);
    assert.deepEqual(Object.keys(rec).sort(), MEMBERS);
    assert.equal(rec.authid, 'carol');
    assert.equal(rec.authrole, null);
    assert.equal(rec.authmethod, 'jwt');
    assert.equal(rec.user_agent, ua, 'a long User-Agent kept whole beside the address');
    assert.match(rec.remote, /^127\.0\.0\.1:\d+$/);

    // Targeting reads the same identity: by authid she is eligible, by a
    // role she has none of she is not.
    const pub = async (body) => {
        const r = await b.req('POST', evPath(room), { body, headers: admin });
        assert.equal(r.status, 201, r.text);
    };
    await pub({ data: 'not-for-admins', eligible_authrole: ['admin'] });
    await pub({ data: 'for-carol', eligible_authid: ['carol'] });
    await carol.waitUntil(() => carol.events.some((e) => e.data === 'for-carol'), 5000, 'for-carol');
    assert.deepEqual(carol.events.filter((e) => e.event !== 'session').map((e) => e.data), ['for-carol']);
    carol.close();
});
