// it_targeting.mjs - targeted delivery (issue 14): a publish names who may
// receive it (exclude / eligible session ids, authids, authroles); live
// streams, Last-Event-ID replay, the JSON history and durable connections
// deliver it only to those; bad lists are 400 with nothing published; the
// lists and the publisher are never shown to subscribers, except the
// publisher's authid to a role with disclose_publisher, in the history.
// Without access control every reader is anonymous with no role.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, uniq, chPath, evPath, checkError, sleep } from './lib/broker.mjs';
import { makeKeys, mint } from './lib/jwt.mjs';

const key = makeKeys().hs;
const all = ['subscribe', 'publish', 'history'];
const CONFIG = {
    auth: {
        anonymous_role: 'anon',
        roles: {
            user: [{ match: '*', allow: all }],
            anon: [{ match: '*', allow: all }],
            admin: { permissions: [{ match: '*', allow: [...all, 'manage'] }], disclose_publisher: true },
        },
        jwt: { keys: [{ alg: 'HS256', secret: key.secret }] },
    },
};

let b;
const open = new Set();
before(async () => {
    b = await startBroker({ config: CONFIG });
});
after(async () => {
    for (const s of open) s.close();
    if (b) assert.equal(await b.stop(), 0, 'broker exit code after SIGTERM');
});

const token = (sub, role) => mint(key, { sub, role }, { expIn: 3600 });
// The receivers: three identified by tokens, one anonymous.
const WHO = {
    alice: { authid: 'alice', authrole: 'user', tok: token('alice', 'user') },
    bob: { authid: 'bob', authrole: 'user', tok: token('bob', 'user') },
    carol: { authid: 'carol', authrole: 'admin', tok: token('carol', 'admin') },
    anon: { authid: null, authrole: 'anon', tok: null },
};
const PUBLISHER = token('svc', 'user');
const hdr = (tok) => (tok ? { Authorization: `Bearer ${tok}` } : {});
const LISTS = ['exclude', 'eligible', 'exclude_authid', 'eligible_authid', 'exclude_authrole', 'eligible_authrole'];

/** What the broker promises: eligible for every eligible* given, in no exclude* given. */
function allows(lists, r) {
    const val = { '': r.session || null, _authid: r.authid, _authrole: r.authrole };
    for (const [suffix, v] of Object.entries(val)) {
        const ex = lists[`exclude${suffix}`], el = lists[`eligible${suffix}`];
        if (ex && v !== null && ex.includes(v)) return false;
        if (el && (v === null || !el.includes(v))) return false;
    }
    return true;
}

async function publish(ch, body, { tok = PUBLISHER, q = '', headers = {} } = {}) {
    const r = await b.req('POST', evPath(ch, q), { body, headers: { ...hdr(tok), ...headers } });
    assert.equal(r.status, 201, `publish ${JSON.stringify(body)}${q}: ${r.status} ${r.text}`);
    return r.json;
}

/** The stream's session id, from its first 'event: session' (which the test
 * library may keep apart, as s.session), or null. */
function sessionOf(s) {
    if (s.session) return s.session;
    const ev = s.events.find((e) => e.event === 'session');
    return ev ? JSON.parse(ev.data).id : null;
}

/** A stream as 'who'; s.sid is its session id, or null without the session event. */
async function subscribe(ch, who, headers = {}, path = evPath(ch)) {
    const s = await b.stream(path, { headers: { ...hdr(who.tok), ...headers } });
    open.add(s);
    assert.equal(s.status, 200, `stream as ${who.authid}: ${s.status} ${s.body}`);
    await s.waitOpen();
    const deadline = Date.now() + 300;
    while (Date.now() < deadline && !sessionOf(s)) await sleep(10);
    s.sid = sessionOf(s);
    s.got = () => s.events.filter((e) => e.event !== 'session');
    return s;
}

/** Wait until the stream got the message with data 'mark'; its data in order. */
async function until(s, mark) {
    await s.waitUntil(() => s.got().some((e) => e.data === mark), 5000, `'${mark}'`);
    return s.got().map((e) => e.data);
}

// Every list alone and combined, on the authid and authrole kinds.
const CASES = [
    {},
    { eligible_authid: ['alice'] },
    { exclude_authid: ['alice'] },
    { eligible_authrole: ['user'] },
    { exclude_authrole: ['user'] },
    { eligible_authrole: ['anon'] },
    { eligible_authid: [] },
    { exclude_authid: [] },
    { eligible_authid: ['nobody'] },
    { eligible_authrole: ['user'], exclude_authid: ['bob'] },
    { eligible_authid: ['alice', 'carol'], eligible_authrole: ['admin'] },
    { exclude_authid: ['alice'], exclude_authrole: ['admin'] },
    { eligible_authid: ['alice', 'bob', 'carol'], exclude_authrole: ['user'], exclude_authid: ['alice'] },
];
const label = (lists) => `t:${JSON.stringify(lists)}`;

describe('targeted delivery', () => {
    const ch = uniq('tg');
    const subs = {};
    let startId;
    const sent = []; // [data, lists] in publish order

    test('live streams: each list alone and combined, JSON and raw bodies, batches', async () => {
        startId = (await publish(ch, { data: 'start' })).id;
        for (const [name, who] of Object.entries(WHO)) subs[name] = await subscribe(ch, who);
        for (const lists of CASES) {
            await publish(ch, { data: label(lists), ...lists });
            sent.push([label(lists), lists]);
        }
        // A batch: each event its own lists.
        const batch = [{ data: 'b1', eligible_authid: ['bob'] }, { data: 'b2', exclude_authid: ['bob'] }];
        await publish(ch, batch);
        sent.push(['b1', { eligible_authid: ['bob'] }], ['b2', { exclude_authid: ['bob'] }]);
        // Raw bodies: repeatable query parameters.
        await publish(ch, 'raw1', { q: '?eligible_authid=alice&eligible_authid=carol&exclude_authrole=admin', headers: { 'Content-Type': 'text/plain' } });
        sent.push(['raw1', { eligible_authid: ['alice', 'carol'], exclude_authrole: ['admin'] }]);
        await publish(ch, 'raw2', { q: '?event=x&exclude_authrole=anon', headers: { 'Content-Type': 'text/plain' } });
        sent.push(['raw2', { exclude_authrole: ['anon'] }]);
        await publish(ch, { data: 'end' });
        for (const [name, who] of Object.entries(WHO)) {
            const got = await until(subs[name], 'end');
            const want = sent.filter(([, l]) => allows(l, { ...who, session: subs[name].sid })).map(([d]) => d);
            assert.deepEqual(got, [...want, 'end'], `what ${name} received`);
        }
        // Nothing of the targeting reaches a subscriber's frames: the fields
        // are what they always were, the data is what was published.
        for (const s of Object.values(subs)) {
            for (const blk of s.blocks)
                for (const [f] of blk.fields) assert.ok(['id', 'event', 'data', 'retry'].includes(f), `field ${f}`);
            assert.doesNotMatch(s.raw, /svc|publisher/, 'no publisher in the stream');
            s.close();
        }
    });

    test('session-id lists: exclude and eligible (needs the session event)', async (t) => {
        const c2 = uniq('tgs');
        const a = await subscribe(c2, WHO.alice);
        const a2 = await subscribe(c2, WHO.alice);
        const n = await subscribe(c2, WHO.anon);
        if (!a.sid || !a2.sid || !n.sid) {
            t.skip('needs the session event');
            return;
        }
        assert.notEqual(a.sid, a2.sid, 'two streams, two sessions');
        const rows = [
            { eligible: [a.sid] },
            { exclude: [a.sid] },
            { eligible: [a.sid, n.sid], exclude_authrole: ['anon'] },
            { eligible: [n.sid], eligible_authid: ['alice'] },
            { exclude: [a2.sid, n.sid] },
            { eligible: ['0000000000000000'] },
        ];
        for (const l of rows) await publish(c2, { data: label(l), ...l });
        await publish(c2, { data: 'end' });
        for (const s of [a, a2, n]) {
            const who = s === n ? WHO.anon : WHO.alice;
            const want = rows.filter((l) => allows(l, { ...who, session: s.sid })).map(label);
            assert.deepEqual(await until(s, 'end'), [...want, 'end'], `session ${s.sid}`);
            s.close();
        }
    });

    test('Last-Event-ID replay gives each reader only what it was eligible for', async () => {
        for (const [name, who] of Object.entries(WHO)) {
            const s = await subscribe(ch, who, { 'Last-Event-ID': startId });
            const got = await until(s, 'end');
            const want = sent.filter(([, l]) => allows(l, { ...who, session: s.sid })).map(([d]) => d);
            assert.deepEqual(got, [...want, 'end'], `replay to ${name}`);
            s.close();
        }
    });

    test('JSON history: filtered per reader; publisher disclosed only to disclose_publisher roles', async () => {
        for (const [name, who] of Object.entries(WHO)) {
            const r = await b.req('GET', evPath(ch), { headers: hdr(who.tok) });
            assert.equal(r.status, 200, r.text);
            const got = r.json.events.map((e) => e.data);
            // A history reader has no session: in no session list.
            const want = sent.filter(([, l]) => allows(l, { ...who, session: null })).map(([d]) => d);
            assert.deepEqual(got, ['start', ...want, 'end'], `history of ${name}`);
            for (const e of r.json.events) {
                for (const l of [...LISTS, 'publisher_authrole', 'publication'])
                    assert.ok(!(l in e), `${name}: no '${l}' in ${JSON.stringify(e)}`);
                if (who.authrole === 'admin') assert.equal(e.publisher_authid, 'svc', `disclosed to ${name}`);
                else assert.ok(!('publisher_authid' in e), `not disclosed to ${name}`);
            }
            // Paging skips what the reader may not see and still ends.
            const page = await b.req('GET', evPath(ch, `?after=${startId}&limit=2`), { headers: hdr(who.tok) });
            assert.deepEqual(page.json.events.map((e) => e.data), [...want, 'end'].slice(0, 2), `page of ${name}`);
        }
        // An anonymous publisher discloses nothing, even to admin.
        const c3 = uniq('tga');
        await publish(c3, { data: 'x' }, { tok: null });
        const r = await b.req('GET', evPath(c3), { headers: hdr(WHO.carol.tok) });
        assert.deepEqual(r.json.events.map((e) => [e.data, 'publisher_authid' in e]), [['x', false]]);
    });

    test('durable connections: matched by their owner, whoever attaches', async () => {
        const c4 = uniq('tgc');
        const mk = async (who) => {
            const r = await b.req('POST', `${chPath(c4)}/connections`, { headers: hdr(who.tok) });
            assert.equal(r.status, 201, r.text);
            return r.json.id;
        };
        const conns = { alice: await mk(WHO.alice), carol: await mk(WHO.carol), anon: await mk(WHO.anon) };
        // Queued while detached.
        const rows = [
            { eligible_authid: ['alice'] },
            { exclude_authid: ['alice'] },
            { eligible_authrole: ['admin'] },
            { exclude_authrole: ['anon'] },
            { eligible_authrole: ['user', 'anon'], exclude_authid: ['nobody'] },
        ];
        for (const l of rows) await publish(c4, { data: label(l), ...l });
        for (const [name, id] of Object.entries(conns)) {
            // carol (manage) attaches alice's connection: alice's identity counts.
            const as = name === 'alice' ? WHO.carol : WHO[name];
            const s = await subscribe(c4, as, {}, `${chPath(c4)}/connections/${id}/events`);
            await publish(c4, { data: `end-${name}` });
            const got = await until(s, `end-${name}`);
            const owner = WHO[name];
            const want = rows.filter((l) => allows(l, { ...owner, session: s.sid })).map(label);
            assert.deepEqual(got.filter((d) => d.startsWith('t:')), want, `connection of ${name}`);
            // And live, once attached.
            await publish(c4, { data: 'live', eligible_authid: [owner.authid || 'x'] });
            await publish(c4, { data: `end2-${name}` });
            const got2 = await until(s, `end2-${name}`);
            assert.equal(got2.includes('live'), owner.authid !== null, `live to the connection of ${name}`);
            s.close();
        }
    });

    test('bad targeting lists: 400 invalid_target, nothing published', async () => {
        const c5 = uniq('tgbad');
        const long = 'x'.repeat(257);
        const many = Array.from({ length: 101 }, (_, i) => `u${i}`);
        const rows = [
            [{ data: 'x', eligible: 'abc' }, 'invalid_target'],
            [{ data: 'x', exclude: [1] }, 'invalid_target'],
            [{ data: 'x', exclude_authid: [''] }, 'invalid_target'],
            [{ data: 'x', eligible_authid: [long] }, 'invalid_target'],
            [{ data: 'x', eligible_authrole: many }, 'invalid_target'],
            [{ data: 'x', exclude_authrole: null }, 'invalid_target'],
            [{ data: 'x', eligible: { a: 1 } }, 'invalid_target'],
            [{ data: 'x', eligible: [['a']] }, 'invalid_target'],
            [{ data: 'x', exclude: ['a\u0000b'] }, 'invalid_target'],
            [{ data: 'x', eligible_session: ['a'] }, 'unknown_field'],
            [[{ data: 'ok' }, { data: 'x', eligible_authid: 7 }], 'invalid_target'],
        ];
        for (const [body, code] of rows) {
            const r = await b.req('POST', evPath(c5), { body, headers: hdr(PUBLISHER) });
            checkError(assert, r, 400, code, JSON.stringify(body).slice(0, 80));
        }
        const raw = { 'Content-Type': 'text/plain', ...hdr(PUBLISHER) };
        const qrows = [
            `?eligible_authid=${long}`,
            `?${many.map((u) => `exclude=${u}`).join('&')}`,
            '?eligible=',
            '?exclude_authrole=%FF',
        ];
        for (const q of qrows) {
            const r = await b.req('POST', evPath(c5, q), { body: 'x', headers: raw });
            checkError(assert, r, 400, 'invalid_target', q.slice(0, 60));
        }
        // Query lists with a JSON body: refused, not ignored.
        const r = await b.req('POST', evPath(c5, '?eligible_authid=alice'), { body: { data: 'x' }, headers: hdr(PUBLISHER) });
        checkError(assert, r, 400, 'invalid_target', 'query lists with a JSON body');
        const h = await b.req('GET', evPath(c5), { headers: hdr(WHO.carol.tok) });
        assert.ok(h.status === 404 || (h.status === 200 && h.json.events.length === 0), `nothing published: ${h.text}`);
    });
});

describe('targeted delivery without access control', () => {
    let nb;
    before(async () => {
        nb = await startBroker();
    });
    after(async () => {
        if (nb) assert.equal(await nb.stop(), 0, 'broker exit code after SIGTERM');
    });

    test('every reader is anonymous with no role: in no authid or authrole list', async () => {
        const c = uniq('tgn');
        const s = await nb.stream(evPath(c));
        open.add(s);
        await s.waitOpen();
        const rows = [
            { data: 'a', eligible_authid: ['alice'] },
            { data: 'b', exclude_authid: ['alice'] },
            { data: 'c', eligible_authrole: ['user'] },
            { data: 'd', exclude_authrole: ['user'] },
            { data: 'e', eligible: [] },
            { data: 'f', exclude: ['0000000000000000'] },
            { data: 'end' },
        ];
        for (const body of rows) assert.equal((await nb.req('POST', evPath(c), { body })).status, 201);
        const data = () => s.events.filter((e) => e.event !== 'session').map((e) => e.data);
        await s.waitUntil(() => data().includes('end'));
        assert.deepEqual(data(), ['b', 'd', 'f', 'end'], 'live');
        const h = await nb.req('GET', evPath(c));
        assert.deepEqual(h.json.events.map((e) => e.data), ['b', 'd', 'f', 'end'], 'history');
        assert.ok(h.json.events.every((e) => Object.keys(e).every((k) => ['id', 'event', 'data', 'timestamp'].includes(k))));
        s.close();
    });
});
