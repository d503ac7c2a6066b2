// it_topics.mjs - issue 15, the stream side: the gap event (sys.gap) a
// resuming subscriber gets when its Last-Event-ID is no longer retained (also
// in a browser), reserved "sys." event types (400, nothing published), the
// envelope (?envelope=1), and one stream for many channels
// (GET /events?channel=...: exact names and patterns, id order, resume, later
// channels, access control, bad input). Runs on both stores.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from './lib/browser.mjs';
import { startBroker, uniq, chPath, evPath, checkError, sleep, STORE } from './lib/broker.mjs';
import { startRedis } from './lib/redis.mjs';
import { readerWriterAuth } from './lib/access.mjs';

let b;
const open = new Set();
before(async () => {
    b = await startBroker();
});
after(async () => {
    for (const s of open) s.close();
    if (b) assert.equal(await b.stop(), 0, 'broker exit code after SIGTERM');
});

async function stream(br, p, opts) {
    const s = await br.stream(p, opts);
    open.add(s);
    return s;
}

async function publish(br, ch, body, { query = '', status = 201 } = {}) {
    const json = typeof body !== 'string';
    const r = await br.req('POST', evPath(ch, query), {
        body: json ? JSON.stringify(body) : body,
        headers: { 'Content-Type': json ? 'application/json' : 'text/plain' },
    });
    assert.equal(r.status, status, `publish to ${ch}: ${r.status} ${r.text}`);
    return r;
}

/** Publish n messages "m1".."mn" (from 'from') one by one; their ids. */
async function publishN(br, ch, n, from = 1) {
    const ids = [];
    for (let i = from; i < from + n; i++) ids.push((await publish(br, ch, `m${i}`)).json.id);
    return ids;
}

describe('the gap event', () => {
    test('an expired Last-Event-ID: sys.gap first (no id), then the replay', async () => {
        const name = uniq('gap');
        assert.equal((await b.req('PUT', chPath(name), { body: '{"history": 3}' })).status, 201);
        const ids = await publishN(b, name, 5);
        const s = await stream(b, evPath(name), { headers: { 'Last-Event-ID': ids[0] } });
        const ev = await s.waitEvents(3);
        assert.deepEqual(s.gaps, [{ last_event_id: ids[0], first_retained: ids[2] }]);
        assert.deepEqual(ev.map((e) => e.id), ids.slice(2), 'everything retained replays');
        // On the wire: the session event, the gap without an id, the replay.
        assert.match(s.raw, /event: session\ndata: [^\n]*\n\nevent: sys\.gap\ndata: \{[^\n]*\}\n\nid: /);
        await publishN(b, name, 1, 6);
        assert.deepEqual((await s.waitEvents(4)).map((e) => e.data), ['m3', 'm4', 'm5', 'm6']);
        assert.equal(s.gaps.length, 1, 'one gap event only');
        s.close();
    });

    test('a current Last-Event-ID (and a fresh subscriber): no gap', async () => {
        const name = uniq('nogap');
        assert.equal((await b.req('PUT', chPath(name), { body: '{"history": 3}' })).status, 201);
        const ids = await publishN(b, name, 5);
        const s = await stream(b, evPath(name), { headers: { 'Last-Event-ID': ids[2] } });
        const fresh = await stream(b, evPath(name));
        const newest = await stream(b, evPath(name), { headers: { 'Last-Event-ID': ids[4] } });
        assert.deepEqual((await s.waitEvents(2)).map((e) => e.id), ids.slice(3));
        await publishN(b, name, 1, 6);
        await fresh.waitEvents(1);
        await newest.waitEvents(1);
        await s.waitEvents(3);
        for (const x of [s, fresh, newest]) assert.deepEqual(x.gaps, [], 'no gap event');
        assert.deepEqual(newest.events.map((e) => e.data), ['m6']);
        for (const x of [s, fresh, newest]) x.close();
    });

    test('unknown ids: sys.gap, then everything retained; an emptied channel says first_retained null', async () => {
        const name = uniq('unknown');
        const ids = await publishN(b, name, 2);
        for (const last of ['not-an-id', '999999999999', '0']) {
            const s = await stream(b, evPath(name), { headers: { 'Last-Event-ID': last } });
            assert.deepEqual((await s.waitEvents(2)).map((e) => e.id), ids, last);
            // '0' is older than everything, but the channel never lost a
            // message: nothing was missed, no gap.
            const want = last === '0' ? [] : [{ last_event_id: last, first_retained: ids[0] }];
            assert.deepEqual(s.gaps, want, last);
            s.close();
        }
        // history 0: nothing retained; an id older than the newest message missed it.
        const empty = uniq('empty');
        assert.equal((await b.req('PUT', chPath(empty), { body: '{"history": 0}' })).status, 201);
        const e = await publishN(b, empty, 2);
        const s1 = await stream(b, evPath(empty), { headers: { 'Last-Event-ID': e[0] } });
        const s2 = await stream(b, evPath(empty), { headers: { 'Last-Event-ID': e[1] } });
        await s1.waitUntil((x) => x.gaps.length === 1, 5000, 'the gap');
        assert.deepEqual(s1.gaps, [{ last_event_id: e[0], first_retained: null }]);
        await publishN(b, empty, 1, 3);
        await s2.waitEvents(1);
        assert.deepEqual(s2.gaps, [], 'the newest id of an emptied channel: nothing missed');
        s1.close();
        s2.close();
    });

    test('a page sees the gap through addEventListener("sys.gap")', async () => {
        const name = uniq('browsergap');
        assert.equal((await b.req('PUT', chPath(name), { body: '{"history": 2}' })).status, 201);
        const ids = await publishN(b, name, 4);
        const browser = await launchChromium();
        try {
            const page = await browser.newPage();
            await page.goto(`${b.url}/health`, { timeout: 10000 });
            const got = await page.evaluate(({ url, n }) => new Promise((resolve, reject) => {
                const seen = [];
                const es = new EventSource(url);
                es.addEventListener('sys.gap', (e) => seen.push(['gap', JSON.parse(e.data), e.lastEventId]));
                es.onmessage = (e) => {
                    seen.push(['message', e.data, e.lastEventId]);
                    if (seen.length === n) {
                        es.close();
                        resolve(seen);
                    }
                };
                setTimeout(() => reject(new Error(`timeout: ${JSON.stringify(seen)}`)), 8000);
            }), { url: `${evPath(name)}?lastEventId=${ids[0]}`, n: 3 });
            assert.deepEqual(got, [
                ['gap', { last_event_id: ids[0], first_retained: ids[2] }, ''],
                ['message', 'm3', ids[2]],
                ['message', 'm4', ids[3]],
            ]);
        } finally {
            await browser.close();
        }
    });
});

describe('reserved event types', () => {
    test('an event type starting with "sys." is a 400 and publishes nothing', async () => {
        const name = uniq('reserved');
        await publishN(b, name, 1);
        const cases = [
            ['JSON', { event: 'sys.gap', data: 'x' }],
            ['JSON batch', [{ data: 'ok' }, { event: 'sys.mine', data: 'x' }]],
        ];
        for (const [what, body] of cases) {
            const r = await publish(b, name, body, { status: 400 });
            checkError(assert, r, 400, 'reserved_event_type', what);
        }
        const raw = await publish(b, name, 'x', { query: '?event=sys.gap', status: 400 });
        checkError(assert, raw, 400, 'reserved_event_type', 'raw body, ?event=');
        const h = await b.req('GET', evPath(name));
        assert.deepEqual(h.json.events.map((e) => e.data), ['m1'], 'nothing was published');
        // "sys" alone, or "system", are ordinary types.
        await publish(b, name, { event: 'sys', data: 'a' });
        await publish(b, name, { event: 'system.x', data: 'b' });
    });
});

describe('the envelope', () => {
    test('?envelope=1: data is {channel, data, timestamp}, event stays the type, id the id', async () => {
        const name = uniq('env');
        const s = await stream(b, evPath(name, '?envelope=1'), { headers: { 'Last-Event-ID': '0' } });
        const plain = await stream(b, evPath(name));
        await s.waitOpen();
        const r1 = await publish(b, name, 'raw text');
        const r2 = await publish(b, name, { event: 'greet', data: { hello: ['world', 1] } });
        const r3 = await publish(b, name, { data: 'a "string"\nof two lines' });
        const r4 = await publish(b, name, { event: 'n', data: 42 });
        const ev = await s.waitEvents(4);
        const want = [
            [r1, null, 'raw text'],
            [r2, 'greet', { hello: ['world', 1] }],
            [r3, null, 'a "string"\nof two lines'],
            [r4, 'n', 42],
        ];
        for (let i = 0; i < want.length; i++) {
            const [r, type, data] = want[i];
            assert.equal(ev[i].id, r.json.id);
            assert.equal(ev[i].event, type);
            assert.equal(ev[i].dataLines.length, 1, 'the envelope is one line');
            assert.deepEqual(JSON.parse(ev[i].data), { channel: name, data, timestamp: r.json.timestamp });
        }
        // The plain stream is unchanged beside it (the two encodings coexist).
        const pe = await plain.waitEvents(4);
        assert.deepEqual(pe.map((e) => e.data), ['raw text', '{"hello":["world",1]}', 'a "string"\nof two lines', '42']);
        s.close();
        plain.close();
    });

    test('the replay is enveloped too; a bad envelope value is 400', async () => {
        const name = uniq('envreplay');
        const ids = await publishN(b, name, 2);
        const s = await stream(b, evPath(name, '?envelope=1'), { headers: { 'Last-Event-ID': ids[0] } });
        const [e] = await s.waitEvents(1);
        assert.equal(e.id, ids[1]);
        assert.equal(JSON.parse(e.data).data, 'm2');
        assert.equal(JSON.parse(e.data).channel, name);
        s.close();
        const bad = await b.req('GET', evPath(name, '?envelope=yes'), { headers: { Accept: 'text/event-stream' } });
        checkError(assert, bad, 400, 'invalid_envelope');
    });
});

/** The envelopes of a topic stream's events: [id, event, channel, data]. */
const unwrap = (events) => events.map((e) => {
    const env = JSON.parse(e.data);
    return [e.id, e.event, env.channel, env.data];
});
const topicPath = (chans, q = '') => `/events?${chans.map((c) => `channel=${encodeURIComponent(c)}`).join('&')}${q}`;

describe('one stream for many channels', () => {
    test('exact names and patterns: each matching event once, in id order, channels created later too', async () => {
        const base = uniq('t');
        const s = await stream(b, topicPath([`${base}.x`, `${base}.dev.?`, `${base}.dev.*`, `${base}.x`]));
        await s.waitOpen();
        const want = [];
        const pub = async (ch, body, match) => {
            const r = await publish(b, ch, body);
            if (match) want.push([r.json.id, body.event ?? null, ch, body.data]);
        };
        // Every channel below is created by its first publish, after the stream opened.
        await pub(`${base}.x`, { data: 'x1' }, true);
        await pub(`${base}.dev.1`, { event: 'temp', data: { c: 21.5 } }, true);
        await pub(`${base}.other`, { data: 'no' }, false);
        await pub(`${base}.dev`, { data: 'zero segments' }, true);
        await pub(`${base}.dev.2.z`, { data: 'deep' }, true);
        await pub(`${base}.xx`, { data: 'no' }, false);
        await pub(`${base}.dev.1`, { data: 'again' }, true);
        await pub(`${base}.x`, { event: 'e', data: [1, 2] }, true);
        const ev = await s.waitEvents(want.length);
        await sleep(100);
        assert.deepEqual(unwrap(s.events), want, 'each matching event once, in id order');
        const ids = s.events.map((e) => BigInt(e.id));
        assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), 'ids increase');
        assert.equal(ev.length, want.length);
        s.close();
    });

    test('a pattern does not match the broker\'s own sys.* channels unless it names them', async () => {
        const base = uniq('all');
        const s = await stream(b, topicPath(['*']));
        await s.waitOpen();
        await stream(b, evPath(`${base}.other`)); // a join on sys.sessions, if anyone listened
        const r = await publish(b, `${base}.a`, { data: 'mine' });
        await s.waitUntil((x) => x.events.some((e) => e.id === r.json.id), 5000, 'the message');
        assert.ok(s.events.every((e) => !JSON.parse(e.data).channel.startsWith('sys.')), JSON.stringify(s.events));
        s.close();
    });

    test('one Last-Event-ID resumes the whole stream: no gap, no duplicate', async () => {
        const base = uniq('resume');
        const chans = [`${base}.a`, `${base}.b.?`];
        const s1 = await stream(b, topicPath(chans));
        await s1.waitOpen();
        const first = [];
        for (const ch of [`${base}.a`, `${base}.b.1`, `${base}.a`, `${base}.b.2`]) first.push((await publish(b, ch, { data: ch })).json.id);
        await s1.waitEvents(4);
        s1.close();
        const missed = [];
        for (const ch of [`${base}.b.2`, `${base}.a`, `${base}.b.3`, `${base}.zzz`]) {
            const r = await publish(b, ch, { data: ch });
            if (!ch.endsWith('zzz')) missed.push(r.json.id);
        }
        const s2 = await stream(b, topicPath(chans), { headers: { 'Last-Event-ID': first[1] } });
        const ev = await s2.waitEvents(2 + missed.length);
        assert.deepEqual(ev.map((e) => e.id), [first[2], first[3], ...missed]);
        assert.deepEqual(s2.gaps, [], 'nothing was lost');
        const live = await publish(b, `${base}.b.9`, { data: 'live' });
        await s2.waitEvents(3 + missed.length);
        assert.equal(s2.events.at(-1).id, live.json.id);
        assert.equal(new Set(s2.events.map((e) => e.id)).size, s2.events.length, 'no duplicate');
        s2.close();
    });

    test('a topic stream resuming after what a channel lost gets one sys.gap', async () => {
        const base = uniq('tgap');
        assert.equal((await b.req('PUT', chPath(`${base}.small`), { body: '{"history": 1}' })).status, 201);
        const a = await publishN(b, `${base}.small`, 3);
        const s = await stream(b, topicPath([`${base}.*`]), { headers: { 'Last-Event-ID': a[0] } });
        const [e] = await s.waitEvents(1);
        assert.equal(e.id, a[2]);
        assert.deepEqual(s.gaps, [{ last_event_id: a[0], first_retained: a[2] }]);
        s.close();
    });

    test('after a broker restart on Redis, one Last-Event-ID resumes', { skip: STORE !== 'redis' && 'Redis only' }, async () => {
        const r = await startRedis();
        const store = { type: 'redis', url: r.url, prefix: `${uniq('topics')}:` };
        try {
            const base = uniq('restart');
            const chans = [`${base}.*`];
            let b1 = await startBroker({ config: { store } });
            const s1 = await b1.stream(topicPath(chans));
            await s1.waitOpen();
            const ids = [];
            for (const ch of ['a', 'b', 'a']) ids.push((await publish(b1, `${base}.${ch}`, { data: ch })).json.id);
            await s1.waitEvents(3);
            s1.close();
            for (const ch of ['b', 'c']) ids.push((await publish(b1, `${base}.${ch}`, { data: ch })).json.id);
            assert.equal(await b1.stop(), 0);
            const b2 = await startBroker({ config: { store } });
            try {
                const s2 = await b2.stream(topicPath(chans), { headers: { 'Last-Event-ID': ids[2] } });
                const ev = await s2.waitEvents(2);
                assert.deepEqual(ev.map((e) => e.id), ids.slice(3));
                assert.deepEqual(unwrap(ev).map((e) => e[2]), [`${base}.b`, `${base}.c`]);
                assert.deepEqual(s2.gaps, []);
                s2.close();
            } finally {
                assert.equal(await b2.stop(), 0);
            }
        } finally {
            await r.stop();
        }
    });

    test('bad input is a 400 and opens nothing', async () => {
        const tooMany = Array.from({ length: 65 }, (_, i) => `c${i}`);
        const cases = [
            ['* not last', topicPath(['a.*.b']), 'invalid_pattern'],
            ['* inside a segment', topicPath(['a.b*']), 'invalid_pattern'],
            ['an empty segment', topicPath(['a..b']), 'invalid_pattern'],
            ['a leading dot', topicPath(['.a']), 'invalid_pattern'],
            ['a trailing dot', topicPath(['a.']), 'invalid_pattern'],
            ['{sub}', topicPath(['user.{sub}.*']), 'invalid_pattern'],
            ['an empty pattern', topicPath(['']), 'invalid_pattern'],
            ['bad characters', topicPath(['a b']), 'invalid_pattern'],
            ['too many patterns', topicPath(tooMany), 'too_many_patterns'],
            ['no channel', '/events', 'missing_channel'],
        ];
        const before = (await b.req('GET', '/status')).json;
        for (const [what, p, code] of cases) {
            const r = await b.req('GET', p, { headers: { Accept: 'text/event-stream' } });
            checkError(assert, r, 400, code, what);
        }
        const r = await b.req('GET', topicPath(['a']));
        checkError(assert, r, 406, 'not_acceptable', 'without Accept: text/event-stream');
        const after = (await b.req('GET', '/status')).json;
        assert.equal(after.channels, before.channels, 'no channel created');
        // 64 is fine.
        const ok = await stream(b, topicPath(tooMany.slice(0, 64)));
        assert.equal(ok.status, 200);
        ok.close();
    });
});

describe('one stream for many channels, with access control', () => {
    let ba;
    const { auth, W } = readerWriterAuth();
    before(async () => {
        ba = await startBroker({
            config: {
                auth,
                limits: { max_pattern_streams: 3 },
            },
        });
    });
    after(async () => {
        if (ba) assert.equal(await ba.stop(), 0);
    });
    const pubW = async (ch, data) => {
        const r = await ba.req('POST', evPath(ch), { body: JSON.stringify({ data }), headers: { ...W, 'Content-Type': 'application/json' } });
        assert.equal(r.status, 201, r.text);
        return r.json.id;
    };

    test('only channels the reader may subscribe to are delivered; the replay only those with history', async () => {
        const old = [await pubW('open.a', 'o1'), await pubW('closed.a', 'c1'), await pubW('live.a', 'l1')];
        const s = await stream(ba, topicPath(['*']), { headers: { 'Last-Event-ID': '0' } });
        await s.waitEvents(1);
        const ids = [await pubW('closed.b', 'c2'), await pubW('open.b', 'o2'), await pubW('live.b', 'l2')];
        await s.waitEvents(3);
        await sleep(100);
        assert.deepEqual(unwrap(s.events).map((e) => [e[0], e[2]]),
            [[old[0], 'open.a'], [ids[1], 'open.b'], [ids[2], 'live.b']]);
        s.close();
        // An exact name the reader may not subscribe to: refused.
        const r = await ba.req('GET', topicPath(['open.a', 'closed.a']), { headers: { Accept: 'text/event-stream' } });
        assert.equal(r.status, 401, r.text);
    });

    test('max_pattern_streams: one more pattern stream is sent away to retry; exact names still open', async () => {
        const held = [];
        for (let i = 0; i < 3; i++) held.push(await stream(ba, topicPath([`open.p${i}.*`])));
        for (const h of held) await h.waitOpen();
        const more = await stream(ba, topicPath(['open.*']));
        await more.waitEnd();
        assert.equal(more.status, 200);
        assert.ok(more.retries.length > 0, 'a retry');
        const exact = await stream(ba, topicPath(['open.a']));
        await exact.waitOpen();
        for (const h of [...held, exact]) h.close();
    });
});

describe('the tree of patterns', () => {
    test('many pattern streams: each gets its own matches once, whatever the overlap; closed ones leave the tree', async () => {
        const base = uniq('tree');
        const N = 40;
        const per = [];
        for (let i = 0; i < N; i++) per.push(await stream(b, topicPath([`${base}.d${i}.*`])));
        // Three patterns of one stream match base.d3.x: written once.
        const over = await stream(b, topicPath([`${base}.?.x`, `${base}.*`, `${base}.d3.?`]));
        for (const s of [...per, over]) await s.waitOpen();
        const m1 = (await publish(b, `${base}.d7`, { data: 'seven' })).json.id;
        const m2 = (await publish(b, `${base}.d3.x`, { data: 'three' })).json.id;
        const m3 = (await publish(b, `${base}.d30.y.z`, { data: 'thirty' })).json.id;
        await over.waitEvents(3);
        await per[7].waitEvents(1);
        await per[3].waitEvents(1);
        await per[30].waitEvents(1);
        await sleep(100);
        assert.deepEqual(over.events.map((e) => e.id), [m1, m2, m3], 'the overlapping stream: each once');
        for (let i = 0; i < N; i++) {
            const want = i === 7 ? [m1] : i === 3 ? [m2] : i === 30 ? [m3] : [];
            assert.deepEqual(per[i].events.map((e) => e.id), want, `stream ${i}`);
        }
        for (let i = 0; i < N; i += 2) per[i].close();
        over.close();
        const m4 = (await publish(b, `${base}.d7`, { data: 'again' })).json.id;
        const m5 = (await publish(b, `${base}.d8`, { data: 'closed' })).json.id;
        await per[7].waitEvents(2);
        assert.equal(per[7].events[1].id, m4);
        // A stream opened now on a closed one's pattern gets what follows only.
        const again = await stream(b, topicPath([`${base}.d8.*`]));
        await again.waitOpen();
        const m6 = (await publish(b, `${base}.d8`, { data: 'reopened' })).json.id;
        await again.waitEvents(1);
        assert.deepEqual(again.events.map((e) => e.id), [m6]);
        assert.ok(Number(m6) > Number(m5));
        for (let i = 1; i < N; i += 2) per[i].close();
        again.close();
    });

    test('max_pattern_bytes: a stream whose patterns would take the tree over is sent away to retry; room again once one closes', async () => {
        const bb = await startBroker({ config: { limits: { max_pattern_bytes: 65536 } } });
        try {
            // A pattern of 110 segments takes about 40 KB (a node, a segment
            // and a map table each): two distinct ones do not fit in 64 KB.
            const long = (tag) => `${tag}.${'x.'.repeat(110)}*`;
            const first = await stream(bb, topicPath([long(uniq('one'))]));
            await first.waitOpen();
            const second = await stream(bb, topicPath([long(uniq('two'))]));
            await second.waitEnd();
            assert.equal(second.status, 200);
            assert.ok(second.retries.length > 0, 'a retry');
            assert.equal(second.events.length, 0);
            first.close();
            const ch = uniq('three');
            const third = await stream(bb, topicPath([long(ch), `${ch}.?`]));
            await third.waitOpen(); // the closed stream's patterns left the tree
            const id = (await publish(bb, `${ch}.x`, { data: 'matched' })).json.id;
            assert.deepEqual((await third.waitEvents(1)).map((e) => e.id), [id]);
            third.close();
            const bad = await startBroker({ config: { limits: { max_pattern_bytes: 1000 } }, readyTimeout: 5000 }).catch((e) => e);
            assert.ok(bad instanceof Error, 'max_pattern_bytes below 65536 is a config error');
            assert.match(String(bad.message), /max_pattern_bytes/);
        } finally {
            assert.equal(await bb.stop(), 0);
        }
    });
});
