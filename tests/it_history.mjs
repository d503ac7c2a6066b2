// it_history.mjs - issue 15, the history side: source_timestamp on publish,
// the envelope's "was JSON" flag, order=desc on a channel's JSON history,
// history queries across channels (GET /history: every parameter alone and
// combined, paging with more_follows while others publish; GET
// /history/latest), access control on queries, retention by count, age and
// size (per channel and from the config's "retention" rules, also across a
// restart on Redis), and bad input (400, nothing changed). Runs on both stores.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, uniq, chPath, evPath, checkError, waitFor, STORE } from './lib/broker.mjs';
import { startRedis } from './lib/redis.mjs';
import { readerWriterAuth } from './lib/access.mjs';

let b;
before(async () => {
    b = await startBroker({
        config: {
            retention: [
                { match: 'ret.short.*', history_age_s: 2 },
                { match: 'ret.small.?', history: 50, history_bytes: 12 },
            ],
            limits: { max_query_results: 100 },
        },
    });
});
after(async () => {
    if (b) assert.equal(await b.stop(), 0, 'broker exit code after SIGTERM');
});

async function publish(br, ch, body, { query = '', status = 201, headers = {} } = {}) {
    const json = typeof body !== 'string';
    const r = await br.req('POST', evPath(ch, query), {
        body: json ? JSON.stringify(body) : body,
        headers: { 'Content-Type': json ? 'application/json' : 'text/plain', ...headers },
    });
    assert.equal(r.status, status, `publish to ${ch}: ${r.status} ${r.text}`);
    return r;
}

const q = (params) => new URLSearchParams(params).toString();
async function history(br, params, status = 200, path = '/history') {
    const r = await br.req('GET', `${path}?${q(params)}`);
    assert.equal(r.status, status, `${path}?${q(params)}: ${r.status} ${r.text}`);
    return r.json;
}

/** pattern.h's rules, for the expected answers. */
function matches(pattern, name) {
    const p = pattern.split('.'), n = name.split('.');
    for (let i = 0; i < p.length; i++) {
        if (p[i] === '*' && i === p.length - 1) return true;
        if (i >= n.length || (p[i] !== '?' && p[i] !== n[i])) return false;
    }
    return p.length === n.length;
}

describe('source_timestamp and the JSON flag', () => {
    test('a source timestamp is stored and returned by history, queries and the envelope', async () => {
        const name = uniq('src');
        const s = await b.stream(evPath(name, '?envelope=1'));
        await s.waitOpen();
        const r1 = await publish(b, name, 'raw', { query: '?source_timestamp=1700000000000001' });
        const r2 = await publish(b, name, { data: 'j', source_timestamp: 5 });
        const r3 = await publish(b, name, { data: 'none' });
        const r4 = await publish(b, name, [{ data: 'a', source_timestamp: 0 }, { data: 'b' }],
            { query: '?source_timestamp=9007199254740991' });
        const h = (await b.req('GET', evPath(name))).json.events;
        assert.deepEqual(h.map((e) => e.source_timestamp),
            [1700000000000001, 5, undefined, 0, 9007199254740991], 'the JSON field wins over the query');
        assert.equal(h[0].timestamp, r1.json.timestamp);
        const ev = await s.waitEvents(5);
        assert.deepEqual(ev.map((e) => JSON.parse(e.data).source_timestamp),
            [1700000000000001, 5, undefined, 0, 9007199254740991]);
        const all = await history(b, { channel: name });
        assert.deepEqual(all.events.map((e) => [e.id, e.source_timestamp]), [
            [r1.json.id, 1700000000000001], [r2.json.id, 5], [r3.json.id, null],
            [r4.json.ids[0], 0], [r4.json.ids[1], 9007199254740991]]);
        s.close();
    });

    test('a bad source timestamp is a 400 and publishes nothing', async () => {
        const name = uniq('srcbad');
        await publish(b, name, 'first');
        for (const v of ['-1', 'x', '1.5', '9007199254740992', '', '1e3']) {
            const r = await b.req('POST', evPath(name, `?source_timestamp=${encodeURIComponent(v)}`), { body: 'x' });
            checkError(assert, r, 400, 'invalid_source_timestamp', v);
        }
        for (const v of [-1, '5', 1.5, 9007199254740992, null]) {
            const r = await b.req('POST', evPath(name), { body: JSON.stringify({ data: 1, source_timestamp: v }),
                headers: { 'Content-Type': 'application/json' } });
            checkError(assert, r, 400, 'invalid_source_timestamp', String(v));
        }
        assert.equal((await b.req('GET', chPath(name))).json.messages, 1, 'nothing was published');
    });

    test('the envelope gives data as a JSON value only when it was published as one', async () => {
        const name = uniq('flag');
        const s = await b.stream(evPath(name, '?envelope=1'));
        await s.waitOpen();
        await publish(b, name, '42');
        await publish(b, name, '{"a":1}');
        await publish(b, name, { data: 42 });
        await publish(b, name, { data: '42' });
        await publish(b, name, { data: { a: [1, null] } });
        const want = ['42', '{"a":1}', 42, '42', { a: [1, null] }];
        const ev = await s.waitEvents(5);
        assert.deepEqual(ev.map((e) => JSON.parse(e.data).data), want);
        // The same in a query, and after the flag went through the store.
        assert.deepEqual((await history(b, { channel: name })).events.map((e) => e.data), want);
        const topic = await b.stream(`/events?channel=${name}`, { headers: { 'Last-Event-ID': '0' } });
        assert.deepEqual((await topic.waitEvents(5)).map((e) => JSON.parse(e.data).data), want);
        topic.close();
        s.close();
    });
});

describe('the broker\'s own events', () => {
    test('sys.sessions events carry no source timestamp, and their data is an object in the envelope', async () => {
        const mon = await b.stream('/channels/sys.sessions/events?envelope=1');
        await mon.waitOpen();
        const s = await b.stream(evPath(uniq('watched')));
        await s.waitOpen();
        const [e] = await mon.waitEvents(1);
        const env = JSON.parse(e.data);
        assert.equal(typeof env.data, 'object');
        assert.equal(env.source_timestamp, undefined);
        const h = (await b.req('GET', evPath('sys.sessions'))).json.events;
        assert.ok(h.length >= 1 && h.every((x) => x.source_timestamp === undefined));
        s.close();
        mon.close();
    });
});

describe('order=desc on a channel history', () => {
    test('the latest N in one request, and pages going back', async () => {
        const name = uniq('desc');
        const ids = [];
        for (let i = 1; i <= 7; i++) ids.push((await publish(b, name, `m${i}`)).json.id);
        const r = await b.req('GET', evPath(name, '?order=desc&limit=3'));
        assert.equal(r.status, 200);
        assert.deepEqual(r.json.events.map((e) => e.id), ids.slice(4).reverse());
        assert.equal(r.json.next, ids[4]);
        assert.match(r.headers.link, /order=desc/);
        const r2 = (await b.req('GET', evPath(name, `?order=desc&limit=3&after=${r.json.next}`))).json;
        assert.deepEqual(r2.events.map((e) => e.id), ids.slice(1, 4).reverse());
        const r3 = (await b.req('GET', evPath(name, `?order=desc&limit=3&after=${r2.next}`))).json;
        assert.deepEqual(r3.events.map((e) => e.id), [ids[0]]);
        assert.equal(r3.next, undefined, 'the last page');
        const asc = (await b.req('GET', evPath(name, '?order=asc&limit=2'))).json;
        assert.deepEqual(asc.events.map((e) => e.id), ids.slice(0, 2));
        checkError(assert, await b.req('GET', evPath(name, '?order=down')), 400, 'invalid_query');
    });
});

describe('GET /history', () => {
    let base, all;
    before(async () => {
        // 3 channels, 2 event types and none, source times out of order.
        base = uniq('hq');
        all = [];
        const chans = [`${base}.a.x`, `${base}.a.y`, `${base}.b`];
        for (let i = 0; i < 24; i++) {
            const channel = chans[i % 3];
            const event = ['t.one', 't.two', null][i % 4 === 3 ? 2 : i % 2];
            const src = i % 5 === 4 ? undefined : 1000 + ((i * 7) % 24);
            const body = { data: `d${i}`, ...(event ? { event } : {}), ...(src !== undefined ? { source_timestamp: src } : {}) };
            const r = await publish(b, channel, body);
            all.push({ id: r.json.id, channel, event, data: `d${i}`, timestamp: r.json.timestamp,
                source_timestamp: src === undefined ? null : src });
        }
    });

    function expected(p) {
        const list = (v) => (v === undefined ? [] : [].concat(v));
        const chans = list(p.channel), events = list(p.event);
        const bySrc = p.order_by === 'source_timestamp';
        let v = all.filter((e) => chans.some((c) => matches(c, e.channel)) &&
            (!events.length || events.some((t) => matches(t, e.event || 'message'))) &&
            (p.from === undefined || e.timestamp >= p.from) && (p.to === undefined || e.timestamp <= p.to) &&
            ((p.source_from === undefined && p.source_to === undefined && !bySrc) ||
                (e.source_timestamp !== null &&
                    (p.source_from === undefined || e.source_timestamp >= p.source_from) &&
                    (p.source_to === undefined || e.source_timestamp <= p.source_to))));
        const key = (e) => (bySrc ? e.source_timestamp : e.timestamp);
        v.sort((x, y) => key(x) - key(y) || Number(x.id) - Number(y.id));
        if (p.order === 'desc') v.reverse();
        return v;
    }

    /** Every page of a query, following next. */
    async function pages(params) {
        const got = [];
        let after;
        for (let n = 0; n < 100; n++) {
            const r = await history(b, after ? [...Object.entries(params).flatMap(([k, v]) =>
                [].concat(v).map((x) => [k, x])), ['after', after]] : Object.entries(params).flatMap(([k, v]) =>
                [].concat(v).map((x) => [k, x])));
            got.push(...r.events);
            if (!r.more_follows) return got;
            assert.ok(r.next, 'a next cursor while more follow');
            after = r.next;
        }
        throw new Error('too many pages');
    }

    const cases = () => {
        const t = all.map((e) => e.timestamp);
        return [
            { channel: `${base}.a.x` },
            { channel: `${base}.*` },
            { channel: `${base}.a.?` },
            { channel: `${base}.?` },
            { channel: [`${base}.b`, `${base}.a.*`, `${base}.b`] },
            { channel: `${base}.*`, event: 't.one' },
            { channel: `${base}.*`, event: 't.?' },
            { channel: `${base}.*`, event: ['message', 't.two'] },
            { channel: `${base}.*`, from: t[5] },
            { channel: `${base}.*`, to: t[9] },
            { channel: `${base}.*`, from: t[3], to: t[3] },
            { channel: `${base}.*`, source_from: 1010 },
            { channel: `${base}.*`, source_to: 1005 },
            { channel: `${base}.*`, order: 'desc' },
            { channel: `${base}.*`, order_by: 'source_timestamp' },
            { channel: `${base}.*`, order_by: 'source_timestamp', order: 'desc' },
            { channel: `${base}.*`, limit: 5 },
            { channel: [`${base}.a.*`], event: 't.*', from: t[2], to: t[20], source_from: 1003,
                source_to: 1020, order: 'desc', order_by: 'source_timestamp', limit: 2 },
            { channel: `${base}.*`, event: 't.two', order: 'desc', limit: 3, from: t[1] },
        ];
    };

    test('every parameter alone and combined: one page', async () => {
        for (const p of cases()) {
            const want = expected(p);
            const limit = p.limit || 100;
            const r = await history(b, Object.entries(p).flatMap(([k, v]) => [].concat(v).map((x) => [k, x])));
            assert.deepEqual(r.events, want.slice(0, limit), JSON.stringify(p));
            assert.equal(r.more_follows, want.length > limit, `more_follows ${JSON.stringify(p)}`);
        }
    });

    test('every parameter alone and combined: all pages, each event once', async () => {
        for (const p of cases()) {
            const got = await pages({ ...p, limit: p.limit || 4 });
            assert.deepEqual(got, expected(p), JSON.stringify(p));
        }
    });

    test('paging while others publish: no duplicate, no gap', async () => {
        const chan = uniq('live');
        const published = [];
        for (let i = 0; i < 20; i++) published.push((await publish(b, chan, `p${i}`)).json.id);
        for (const order of ['asc', 'desc']) {
            const before = [...published];
            const got = [];
            let after, more = true, pagesRead = 0;
            while (more && pagesRead++ < 200) {
                const params = [['channel', chan], ['limit', '3'], ['order', order]];
                if (after) params.push(['after', after]);
                // Publish between pages, and during the request itself.
                const [r] = await Promise.all([history(b, params), publish(b, chan, `n${published.length}`)
                    .then((x) => published.push(x.json.id))]);
                got.push(...r.events.map((e) => e.id));
                more = r.more_follows;
                after = r.next;
            }
            assert.equal(new Set(got).size, got.length, `${order}: no duplicate`);
            const sorted = [...got].sort((x, y) => Number(x) - Number(y));
            assert.deepEqual(got, order === 'asc' ? sorted : sorted.reverse(), `${order}: in order`);
            for (const id of before) assert.ok(got.includes(id), `${order}: ${id} was there when paging started`);
            if (order === 'asc') {
                // Ascending, what was published while paging came too, up to the end.
                const all = published.filter((id) => Number(id) <= Number(got[got.length - 1]));
                assert.deepEqual(got, all.filter((id) => Number(id) >= Number(got[0])), 'asc: no gap');
            }
        }
    });

    test('source times in order (searched) and out of order (read whole) answer alike', async () => {
        const chan = uniq('srcorder');
        const evs = [];
        const pub = async (src) => {
            const r = await publish(b, chan, { data: `s${src}`, source_timestamp: src });
            evs.push({ id: r.json.id, src });
        };
        for (let i = 0; i < 30; i++) await pub(i * 10);
        const check = async (what) => {
            for (const order of ['asc', 'desc']) {
                const want = evs.filter((e) => e.src >= 50 && e.src <= 240)
                    .sort((x, y) => x.src - y.src || Number(x.id) - Number(y.id));
                if (order === 'desc') want.reverse();
                const got = [];
                let after;
                for (let n = 0; n < 50; n++) {
                    const p = [['channel', chan], ['order_by', 'source_timestamp'], ['source_from', '50'],
                        ['source_to', '240'], ['order', order], ['limit', '4']];
                    if (after) p.push(['after', after]);
                    const r = await history(b, p);
                    got.push(...r.events.map((e) => e.id));
                    if (!r.more_follows) break;
                    after = r.next;
                }
                assert.deepEqual(got, want.map((e) => e.id), `${what}, ${order}`);
            }
        };
        await check('in order');
        await pub(55); // an earlier source time than the one before: read whole from now on
        await pub(240);
        await check('out of order');
    });

    test('the cursor belongs to its query', async () => {
        const r = await history(b, { channel: `${base}.*`, limit: 2 });
        assert.ok(r.more_follows && r.next);
        const other = await b.req('GET', `/history?${q({ channel: `${base}.a.*`, limit: 2, after: r.next })}`);
        checkError(assert, other, 400, 'invalid_cursor');
        const desc = await b.req('GET', `/history?${q({ channel: `${base}.*`, order: 'desc', after: r.next })}`);
        checkError(assert, desc, 400, 'invalid_cursor');
        const limit = await history(b, { channel: `${base}.*`, limit: 3, after: r.next });
        assert.deepEqual(limit.events.map((e) => e.id), expected({ channel: `${base}.*` }).slice(2, 5).map((e) => e.id),
            'another limit takes it');
        const empty = await history(b, { channel: `${base}.none` });
        assert.deepEqual(empty, { events: [], more_follows: false, next: null });
    });

    test('bad input is a 400', async () => {
        const c = `${base}.*`;
        const bad = [
            [{}, 'missing_channel'],
            [{ event: 't' }, 'missing_channel'],
            [{ channel: 'a..b' }, 'invalid_pattern'],
            [{ channel: 'a.*.b' }, 'invalid_pattern'],
            [{ channel: 'a b' }, 'invalid_pattern'],
            [{ channel: c, event: '*.x' }, 'invalid_pattern'],
            [[...Array.from({ length: 65 }, (_, i) => ['channel', `c${i}`])], 'too_many_patterns'],
            [{ channel: c, from: 'yesterday' }, 'invalid_time'],
            [{ channel: c, from: '-5' }, 'invalid_time'],
            [{ channel: c, to: '1.5' }, 'invalid_time'],
            [{ channel: c, source_from: '' }, 'invalid_time'],
            [{ channel: c, source_to: '99999999999999999999' }, 'invalid_time'],
            [{ channel: c, from: '10', to: '9' }, 'invalid_time'],
            [[['channel', c], ['from', '1'], ['from', '2']], 'duplicate_parameter'],
            [{ channel: c, order: 'random' }, 'invalid_order'],
            [{ channel: c, order_by: 'id' }, 'invalid_order'],
            [{ channel: c, limit: '0' }, 'invalid_limit'],
            [{ channel: c, limit: '101' }, 'invalid_limit'],
            [{ channel: c, limit: '-1' }, 'invalid_limit'],
            [{ channel: c, limit: 'ten' }, 'invalid_limit'],
            [{ channel: c, after: 'x' }, 'invalid_cursor'],
            [{ channel: c, after: '0'.repeat(48) }, 'invalid_cursor'],
            [{ channel: c, after: 'F'.repeat(48) }, 'invalid_cursor'],
            [{ channel: c, after: '1234' }, 'invalid_cursor'],
            [{ channel: c, since: '1' }, 'unknown_parameter'],
        ];
        const before = (await b.req('GET', '/channels?limit=1000')).json;
        for (const [p, code] of bad) {
            const r = await b.req('GET', `/history?${q(p)}`);
            checkError(assert, r, 400, code, q(p));
        }
        checkError(assert, await b.req('GET', `/history/latest?${q({ channel: c, limit: 3 })}`), 400, 'unknown_parameter');
        checkError(assert, await b.req('GET', '/history/latest'), 400, 'missing_channel');
        assert.deepEqual((await b.req('GET', '/channels?limit=1000')).json, before, 'nothing changed');
    });
});

describe('GET /history/latest', () => {
    test('the newest event of each (channel, event type)', async () => {
        const base = uniq('latest');
        const ids = {};
        const pub = async (ch, event, data) => {
            const r = await publish(b, `${base}.${ch}`, { data, ...(event ? { event } : {}) });
            ids[`${ch}/${event}`] = r.json.id;
        };
        await pub('a', 'x', 1);
        await pub('a', 'y', 2);
        await pub('b', 'x', 3);
        await pub('a', 'x', 4);
        await pub('a', null, 5);
        await pub('b', 'x', 6);
        await pub('a', null, 7);
        const r = await history(b, { channel: `${base}.*` }, 200, '/history/latest');
        assert.equal(r.more_follows, false);
        const got = r.events.map((e) => [e.channel, e.event, e.data, e.id]);
        assert.deepEqual(got.sort(), [
            [`${base}.a`, null, 7, ids['a/null']],
            [`${base}.a`, 'x', 4, ids['a/x']],
            [`${base}.a`, 'y', 2, ids['a/y']],
            [`${base}.b`, 'x', 6, ids['b/x']],
        ].sort());
        const x = await history(b, [['channel', `${base}.*`], ['event', 'x']], 200, '/history/latest');
        assert.deepEqual(x.events.map((e) => [e.channel, e.data]), [[`${base}.a`, 4], [`${base}.b`, 6]]);
        const none = await history(b, [['channel', `${base}.a`], ['event', 'message']], 200, '/history/latest');
        assert.deepEqual(none.events.map((e) => e.data), [7], 'no type is "message"');
    });
});

describe('access control on queries', () => {
    let ba;
    const { auth, W } = readerWriterAuth();
    before(async () => {
        ba = await startBroker({
            config: {
                auth,
            },
        });
    });
    after(async () => {
        if (ba) assert.equal(await ba.stop(), 0);
    });

    test('a query returns only channels with subscribe and history; targeted messages per reader', async () => {
        const o1 = (await publish(ba, 'open.a', { data: 'o1' }, { headers: W })).json.id;
        await publish(ba, 'live.a', { data: 'l1' }, { headers: W });
        await publish(ba, 'closed.a', { data: 'c1' }, { headers: W });
        await publish(ba, 'open.a', { data: 'only-bob', eligible_authid: ['bob'] }, { headers: W });
        const r = await history(ba, { channel: '*' });
        assert.deepEqual(r.events.map((e) => [e.id, e.channel]), [[o1, 'open.a']]);
        const l = await history(ba, { channel: '*' }, 200, '/history/latest');
        assert.deepEqual(l.events.map((e) => e.data), ['o1']);
        const exact = await ba.req('GET', `/history?${q([['channel', 'open.*'], ['channel', 'live.a']])}`);
        assert.equal(exact.status, 401, exact.text);
    });
});

describe('retention', () => {
    test('by count: a query returns what the history keeps', async () => {
        const name = uniq('count');
        assert.equal((await b.req('PUT', chPath(name), { body: '{"history": 3}' })).status, 201);
        const ids = [];
        for (let i = 0; i < 6; i++) ids.push((await publish(b, name, `m${i}`)).json.id);
        assert.deepEqual((await history(b, { channel: name })).events.map((e) => e.id), ids.slice(3));
    });

    test('by size: the oldest go beyond history_bytes (data and event type bytes)', async () => {
        const name = uniq('bytes');
        const put = await b.req('PUT', chPath(name), { body: '{"history_bytes": 10}' });
        assert.equal(put.status, 201);
        assert.equal(put.json.options.history_bytes, 10);
        const ids = [];
        for (const d of ['aaaa', 'bbbb', 'cccc']) ids.push((await publish(b, name, d)).json.id);
        assert.deepEqual((await history(b, { channel: name })).events.map((e) => e.data), ['bbbb', 'cccc']);
        ids.push((await publish(b, name, { event: 'ev', data: 'dddd' })).json.id); // 6 bytes
        assert.deepEqual((await b.req('GET', evPath(name))).json.events.map((e) => e.data), ['cccc', 'dddd']);
        const big = await publish(b, name, 'x'.repeat(11));
        assert.ok(big.json.id);
        assert.deepEqual((await b.req('GET', evPath(name))).json.events, [], 'one message over the bound is not kept');
        // Lowering the bound applies at once.
        await publish(b, name, '123');
        await publish(b, name, '4567');
        assert.equal((await b.req('PUT', chPath(name), { body: '{"history_bytes": 4}' })).status, 200);
        assert.deepEqual((await b.req('GET', evPath(name))).json.events.map((e) => e.data), ['4567']);
    });

    test('by age: an aged message is neither returned nor replayed, and is freed', async () => {
        const name = uniq('age');
        assert.equal((await b.req('PUT', chPath(name), { body: '{"history_age_s": 2}' })).status, 201);
        const id = (await publish(b, name, 'old')).json.id;
        assert.equal((await history(b, { channel: name })).events.length, 1);
        await waitFor(async () => (await history(b, { channel: name })).events.length === 0,
            { timeout: 6000, interval: 100, what: 'the message to age out of queries' });
        assert.deepEqual((await b.req('GET', evPath(name))).json.events, [], 'nor from the channel history');
        const ch = await waitFor(async () => {
            const r = (await b.req('GET', chPath(name))).json;
            return r.messages === 0 && r;
        }, { timeout: 3000, interval: 100, what: 'the aged message to be freed' });
        assert.equal(ch.last_id, id);
        const s = await b.stream(evPath(name), { headers: { 'Last-Event-ID': '0' } });
        await s.waitOpen();
        await publish(b, name, 'new');
        const [e] = await s.waitEvents(1);
        assert.equal(e.data, 'new', 'the aged one did not replay');
        s.close();
    });

    test('the config\'s retention rules give new channels their defaults, first match', async () => {
        const short = `ret.short.${uniq('r')}`, small = `ret.small.${uniq('r')}`, other = uniq('ret');
        for (const n of [short, small, other]) await publish(b, n, 'x');
        const opts = async (n) => (await b.req('GET', chPath(n))).json.options;
        assert.equal((await opts(short)).history_age_s, 2);
        assert.deepEqual(await opts(small), { history: 50, queue_limit: 1000, retry_ms: 3000, history_bytes: 12 });
        assert.deepEqual(await opts(other), { history: 100, queue_limit: 1000, retry_ms: 3000 });
        // A PUT creating a channel starts from its rule, too.
        const put = await b.req('PUT', chPath(`ret.small.${uniq('p')}`), { body: '{"history": 7}' });
        assert.deepEqual(put.json.options, { history: 7, queue_limit: 1000, retry_ms: 3000, history_bytes: 12 });
        for (const d of ['12345', '67890', 'abcde']) await publish(b, small, d);
        assert.deepEqual((await b.req('GET', evPath(small))).json.events.map((e) => e.data), ['67890', 'abcde']);
    });

    test('across a restart on Redis: age, size and count still hold, in the store too',
        { skip: STORE !== 'redis' && 'Redis only' }, async () => {
            const r = await startRedis();
            const prefix = `${uniq('hist')}:`;
            const store = { type: 'redis', url: r.url, prefix };
            try {
                const aged = uniq('aged'), sized = uniq('sized'), counted = uniq('counted');
                let b1 = await startBroker({ config: { store } });
                assert.equal((await b1.req('PUT', chPath(aged), { body: '{"history_age_s": 2}' })).status, 201);
                assert.equal((await b1.req('PUT', chPath(sized), { body: '{"history_bytes": 8}' })).status, 201);
                assert.equal((await b1.req('PUT', chPath(counted), { body: '{"history": 2}' })).status, 201);
                for (const d of ['a1', 'a2']) await publish(b1, aged, d);
                for (const d of ['s111', 's222', 's333']) await publish(b1, sized, d);
                for (const d of ['c1', 'c2', 'c3']) await publish(b1, counted, d);
                assert.equal(await b1.stop(), 0);
                assert.equal(await r.cmd('XLEN', `${prefix}g/${aged}`), 2, 'the aged ones are stored while no broker runs');
                await waitFor(async () => {
                    const now = (await r.cmd('TIME'))[0] * 1e6;
                    const [last] = await r.cmd('XREVRANGE', `${prefix}g/${aged}`, '+', '-', 'COUNT', '1');
                    const ts = JSON.parse(last[1][3]).timestamp;
                    return now - ts > 2.2e6;
                }, { timeout: 5000, interval: 200, what: 'the messages to age' });
                const b2 = await startBroker({ config: { store } });
                try {
                    assert.deepEqual((await history(b2, { channel: aged })).events, []);
                    assert.deepEqual((await b2.req('GET', evPath(aged))).json.events, []);
                    await waitFor(async () => (await r.cmd('XLEN', `${prefix}g/${aged}`)) === 0,
                        { timeout: 3000, interval: 100, what: 'the aged messages to leave the store' });
                    assert.deepEqual((await history(b2, { channel: sized })).events.map((e) => e.data), ['s222', 's333']);
                    assert.deepEqual((await history(b2, { channel: counted })).events.map((e) => e.data), ['c2', 'c3']);
                    // Options and the JSON flag came back from the store.
                    assert.equal((await b2.req('GET', chPath(aged))).json.options.history_age_s, 2);
                    await publish(b2, counted, { data: { n: 1 }, source_timestamp: 3 });
                } finally {
                    assert.equal(await b2.stop(), 0);
                }
                const b3 = await startBroker({ config: { store } });
                try {
                    const [e] = (await history(b3, { channel: counted, order: 'desc', limit: 1 })).events;
                    assert.deepEqual([e.data, e.source_timestamp], [{ n: 1 }, 3]);
                } finally {
                    assert.equal(await b3.stop(), 0);
                }
            } finally {
                await r.stop();
            }
        });
});
