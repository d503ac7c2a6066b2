// it_stream.mjs - the SSE stream: headers, exact framing, multi-line data,
// heartbeats, resume by Last-Event-ID / ?lastEventId=, history bounds, many
// subscribers, and the npm `eventsource` client reconnecting after the stream ends.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { startBroker, uniq, chPath, evPath, waitFor } from './lib/broker.mjs';

let b;
const open = new Set(); // streams and EventSources to close in after()

before(async () => {
    b = await startBroker({ config: { heartbeat_s: 1 } });
});

after(async () => {
    for (const s of open) s.close();
    if (b) assert.equal(await b.stop(), 0, 'broker exit code after SIGTERM');
});

const put = (name, body) => b.req('PUT', chPath(name), body === undefined ? {} : { body });
const publish = async (name, body, opts = {}) => {
    const r = await b.req('POST', evPath(name, opts.query || ''), { body, headers: opts.headers });
    assert.equal(r.status, 201, `publish to ${name}: ${r.status} ${r.text}`);
    return r.json;
};
async function subscribe(name, { query = '', headers } = {}) {
    const s = await b.stream(evPath(name, query), { headers });
    open.add(s);
    assert.equal(s.status, 200, `subscribe ${name}: ${s.status} ${s.body}`);
    await s.waitOpen();
    return s;
}
/** Publish m1..mN one by one; returns the ids. */
async function publishN(name, n, from = 1) {
    const ids = [];
    for (let i = from; i < from + n; i++) ids.push((await publish(name, { data: `m${i}` })).id);
    return ids;
}

describe('stream headers and framing', () => {
    test('200 with SSE headers; body opens with "retry:" and a comment', async () => {
        const name = uniq('hdr');
        await put(name, { retry_ms: 1234 });
        const s = await subscribe(name);
        assert.match(String(s.headers['content-type']), /^text\/event-stream/);
        assert.match(String(s.headers['cache-control']), /no-cache/);
        assert.equal(s.headers['x-accel-buffering'], 'no');
        assert.equal(s.headers['access-control-allow-origin'], '*');
        assert.ok(s.raw.startsWith('retry: 1234\n'), `stream starts with retry: ${JSON.stringify(s.raw)}`);
        const first = s.blocks[0];
        assert.deepEqual(first.fields, [['retry', '1234']], 'opening block holds only retry');
        assert.ok(first.comments.length >= 1, 'opening block has a comment');
        assert.match(s.raw, /^retry: 1234\n:[^\n]*\n\n/, 'retry line, comment line, blank line');
        assert.equal(s.events.length, 0, 'no replay without Last-Event-ID');
        s.close();
    });

    test('channel default retry is used when the channel has no own option', async () => {
        const s = await subscribe(uniq('defretry'));
        assert.ok(s.raw.startsWith('retry: 3000\n'), JSON.stringify(s.raw));
        s.close();
    });

    test('id/event/data lines are exact', async () => {
        const name = uniq('frame');
        const s = await subscribe(name);
        const r1 = await publish(name, { event: 'greet', data: 'hello world' });
        const r2 = await publish(name, { data: 'plain' });
        const r3 = await publish(name, 'raw body', { query: '?event=rawtype', headers: { 'Content-Type': 'text/plain' } });
        const r4 = await publish(name, { data: 'with retry', retry: 2500 });
        await s.waitEvents(4);
        const at = s.raw.indexOf(`id: ${r1.id}\n`);
        assert.ok(at > 0, `id line of the first message in ${JSON.stringify(s.raw)}`);
        // Heartbeat comments may sit between messages; strip them to compare the frames.
        const frames = s.raw.slice(at).replace(/^:[^\n]*\n\n/gm, '');
        const three =
            `id: ${r1.id}\nevent: greet\ndata: hello world\n\n` +
            `id: ${r2.id}\ndata: plain\n\n` +
            `id: ${r3.id}\nevent: rawtype\ndata: raw body\n\n`;
        assert.equal(frames.slice(0, three.length), three);
        // The retry field's position within the frame is not fixed by the contract.
        const withId = s.blocks.filter((x) => x.fields.some(([f]) => f === 'id'));
        const b4 = withId[withId.length - 1];
        assert.deepEqual([...b4.fields].sort(), [['data', 'with retry'], ['id', r4.id], ['retry', '2500']]);
        assert.ok(frames.endsWith('data: with retry\n\n') || frames.endsWith('retry: 2500\n\n'), JSON.stringify(frames));
        const e4 = s.events[3];
        assert.equal(e4.id, r4.id);
        assert.equal(e4.retry, '2500', 'the publish retry is sent as a retry: field');
        assert.equal(e4.data, 'with retry');
        assert.deepEqual(e4.dataLines, ['with retry']);
        assert.deepEqual(withId.map((x) => x.id), [r1.id, r2.id, r3.id, r4.id]);
        s.close();
    });

    test('multi-line data: LF, CRLF and CR all split into separate data: lines', async () => {
        const name = uniq('lines');
        const s = await subscribe(name);
        const cases = [
            ['a\nb', ['a', 'b']],
            ['c\r\nd', ['c', 'd']],
            ['e\rf', ['e', 'f']],
            ['g\r\nh\ri\nj', ['g', 'h', 'i', 'j']],
            ['k\n\nl', ['k', '', 'l']],
        ];
        const ids = [];
        for (const [d] of cases) ids.push((await publish(name, { data: d })).id);
        // The same through a raw body.
        ids.push((await publish(name, 'r1\r\nr2\rr3\nr4', { headers: { 'Content-Type': 'text/plain' } })).id);
        cases.push(['r1\r\nr2\rr3\nr4', ['r1', 'r2', 'r3', 'r4']]);
        const ev = await s.waitEvents(cases.length);
        for (let i = 0; i < cases.length; i++) {
            assert.equal(ev[i].id, ids[i]);
            assert.deepEqual(ev[i].dataLines, cases[i][1], `data ${JSON.stringify(cases[i][0])}`);
        }
        assert.ok(!s.raw.includes('\r'), 'no CR anywhere in the stream');
        assert.ok(s.raw.includes(`id: ${ids[0]}\ndata: a\ndata: b\n\n`), 'exact LF framing');
        assert.ok(s.raw.includes(`id: ${ids[1]}\ndata: c\ndata: d\n\n`), 'exact CRLF framing');
        assert.ok(s.raw.includes(`id: ${ids[2]}\ndata: e\ndata: f\n\n`), 'exact CR framing');
        assert.ok(s.raw.includes(`id: ${ids[5]}\ndata: r1\ndata: r2\ndata: r3\ndata: r4\n\n`), 'exact raw framing');
        s.close();
    });

    test('heartbeat comment ": hb" arrives every heartbeat_s (1 s here)', async () => {
        const s = await subscribe(uniq('hb'));
        const t0 = Date.now();
        await s.waitUntil(() => s.blocks.length >= 3, 4000, 'two heartbeat blocks');
        const elapsed = Date.now() - t0;
        const hbs = s.blocks.slice(1);
        for (const h of hbs) {
            assert.deepEqual(h.fields, [], 'heartbeat block has no fields');
            assert.deepEqual(h.comments, ['hb']);
        }
        assert.ok(s.raw.includes('\n: hb\n\n') || s.raw.includes('\n:hb\n\n'), JSON.stringify(s.raw));
        assert.ok(elapsed >= 900, `two heartbeats took ${elapsed} ms, expected about 1-2 s`);
        s.close();
    });
});

describe('resume', () => {
    for (const how of ['header', 'query']) {
        test(`Last-Event-ID by ${how}: retained messages after the id, then live, no gap, no duplicate`, async () => {
            const name = uniq(`resume-${how}`);
            const ids = await publishN(name, 5);
            const opts = how === 'header'
                ? { headers: { 'Last-Event-ID': ids[1] } }
                : { query: `?lastEventId=${encodeURIComponent(ids[1])}` };
            const s = await subscribe(name, opts);
            const ev = await s.waitEvents(3);
            assert.deepEqual(ev.map((e) => [e.id, e.data]), [[ids[2], 'm3'], [ids[3], 'm4'], [ids[4], 'm5']]);
            const [id6] = await publishN(name, 1, 6);
            const ev2 = await s.waitEvents(4);
            assert.deepEqual(ev2.map((e) => e.data), ['m3', 'm4', 'm5', 'm6'], 'no duplicate before the live one');
            assert.equal(ev2[3].id, id6);
            s.close();
        });
    }

    test('Last-Event-ID of the newest message replays nothing, then live', async () => {
        const name = uniq('resume-last');
        const ids = await publishN(name, 3);
        const s = await subscribe(name, { headers: { 'Last-Event-ID': ids[2] } });
        await publishN(name, 1, 4);
        const ev = await s.waitEvents(1);
        assert.deepEqual(ev.map((e) => e.data), ['m4']);
        s.close();
    });

    test('without Last-Event-ID only live messages are sent', async () => {
        const name = uniq('live');
        await publishN(name, 3);
        const s = await subscribe(name);
        await publishN(name, 1, 4);
        const ev = await s.waitEvents(1);
        assert.deepEqual(ev.map((e) => e.data), ['m4']);
        s.close();
    });

    for (const unknown of ['999999999999', 'not-an-id', '0']) {
        test(`unknown Last-Event-ID ${JSON.stringify(unknown)} replays every retained message`, async () => {
            const name = uniq('unknown');
            const ids = await publishN(name, 4);
            const s = await subscribe(name, { headers: { 'Last-Event-ID': unknown } });
            const ev = await s.waitEvents(4);
            assert.deepEqual(ev.map((e) => e.id), ids);
            await publishN(name, 1, 5);
            const ev2 = await s.waitEvents(5);
            assert.deepEqual(ev2.map((e) => e.data), ['m1', 'm2', 'm3', 'm4', 'm5']);
            s.close();
        });
    }

    test('history bound: only the last N are retained and replayed; an expired id replays them all', async () => {
        const name = uniq('bounded');
        await put(name, { history: 3 });
        const ids = await publishN(name, 5);
        const g = await b.req('GET', chPath(name));
        assert.equal(g.json.messages, 3);
        const s1 = await subscribe(name, { headers: { 'Last-Event-ID': 'unknown' } });
        assert.deepEqual((await s1.waitEvents(3)).map((e) => e.id), ids.slice(2));
        // ids[0] was dropped from the history: expired → replay all retained.
        const s2 = await subscribe(name, { headers: { 'Last-Event-ID': ids[0] } });
        assert.deepEqual((await s2.waitEvents(3)).map((e) => e.id), ids.slice(2));
        // ids[2] is retained: replay after it.
        const s3 = await subscribe(name, { headers: { 'Last-Event-ID': ids[2] } });
        assert.deepEqual((await s3.waitEvents(2)).map((e) => e.id), ids.slice(3));
        const [id6] = await publishN(name, 1, 6);
        for (const [s, n] of [[s1, 4], [s2, 4], [s3, 3]]) {
            const ev = await s.waitEvents(n);
            assert.equal(ev.length, n, 'no duplicates');
            assert.equal(ev[n - 1].id, id6);
        }
        for (const s of [s1, s2, s3]) s.close();
    });
});

describe('fan-out', () => {
    test('every subscriber on a channel gets every message, in order', async () => {
        const name = uniq('fanout');
        const N = 12;
        const subs = [];
        for (let i = 0; i < N; i++) subs.push(await subscribe(name));
        await waitFor(async () => (await b.req('GET', chPath(name))).json.subscribers === N,
            { what: `${N} subscribers` });
        const single = await publishN(name, 5);
        const batch = await publish(name, Array.from({ length: 15 }, (_, i) => ({ event: 'bulk', data: `b${i}` })));
        const expectIds = [...single, ...batch.ids];
        for (const s of subs) {
            const ev = await s.waitEvents(expectIds.length);
            assert.deepEqual(ev.map((e) => e.id), expectIds);
            assert.deepEqual(ev.slice(5).map((e) => e.event), Array(15).fill('bulk'));
        }
        // A subscriber on another channel got nothing of it.
        const quiet = uniq('quiet');
        const other = await subscribe(quiet);
        await publish(name, { data: 'not for quiet' });
        await publish(quiet, { data: 'marker' });
        assert.deepEqual((await other.waitEvents(1)).map((e) => e.data), ['marker']);
        for (const s of subs) s.close();
        other.close();
        await waitFor(async () => (await b.req('GET', chPath(name))).json.subscribers === 0,
            { what: 'subscribers back to 0' });
    });

    test('a large message (200 KB) arrives intact', async () => {
        const name = uniq('large');
        const s = await subscribe(name);
        const big = 'x'.repeat(200 * 1024);
        const r = await publish(name, { data: big });
        const ev = await s.waitEvents(1, 10000);
        assert.equal(ev[0].id, r.id);
        assert.equal(ev[0].data.length, big.length);
        assert.equal(ev[0].data, big);
        s.close();
    });
});

describe('npm eventsource client', () => {
    /**
     * An EventSource whose fetch is wrapped: every connection attempt is recorded
     * (with its Last-Event-ID), a reconnect can be held at a gate, and the current
     * response body can be cut from the client side (a simulated network drop).
     */
    function makeClient(url) {
        const attempts = [];
        let gate = null;
        let cut = null;
        const wrapped = async (input, init) => {
            const h = new Headers(init.headers);
            attempts.push({ lastEventId: h.get('last-event-id'), at: Date.now() });
            if (gate) await gate.promise;
            const res = await fetch(input, init);
            if (!res.body) return res;
            const reader = res.body.getReader();
            const body = new ReadableStream({
                start(ctl) {
                    cut = () => {
                        reader.cancel().catch(() => {});
                        try { ctl.close(); } catch { /* already closed */ }
                    };
                },
                async pull(ctl) {
                    try {
                        const { done, value } = await reader.read();
                        if (done) ctl.close();
                        else ctl.enqueue(value);
                    } catch (e) {
                        try { ctl.error(e); } catch { /* closed */ }
                    }
                },
                cancel() { return reader.cancel(); },
            });
            return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
        };
        const es = new EventSource(url, { fetch: wrapped });
        open.add(es);
        const got = [];
        let opens = 0, errors = 0;
        es.addEventListener('open', () => opens++);
        es.addEventListener('error', () => errors++);
        es.addEventListener('message', (e) => got.push({ id: e.lastEventId, type: e.type, data: e.data }));
        es.addEventListener('greet', (e) => got.push({ id: e.lastEventId, type: e.type, data: e.data }));
        return {
            es, got, attempts,
            get opens() { return opens; },
            get errors() { return errors; },
            hold() { let r; gate = { promise: new Promise((res) => (r = res)) }; gate.release = r; },
            release() { const g = gate; gate = null; if (g) g.release(); },
            cut() { if (cut) cut(); },
            waitGot: (n, t = 5000) => waitFor(() => got.length >= n, { timeout: t, what: `${n} messages (got ${JSON.stringify(got)})` }),
        };
    }

    test('receives default and named events with their ids', async () => {
        const name = uniq('es');
        const c = makeClient(`${b.url}${evPath(name)}`);
        await waitFor(() => c.opens === 1, { what: 'EventSource open' });
        await waitFor(async () => (await b.req('GET', chPath(name))).json.subscribers === 1, { what: 'subscriber' });
        const r1 = await publish(name, { data: 'one' });
        const r2 = await publish(name, { event: 'greet', data: 'hi\nthere' });
        const r3 = await publish(name, { data: { n: 3 } });
        await c.waitGot(3);
        assert.deepEqual(c.got, [
            { id: r1.id, type: 'message', data: 'one' },
            { id: r2.id, type: 'greet', data: 'hi\nthere' },
            { id: r3.id, type: 'message', data: '{"n":3}' },
        ]);
        c.es.close();
    });

    test('reconnects after the server ends the stream (DELETE) and gets what it missed', async () => {
        const name = uniq('es-reconnect');
        await put(name, { retry_ms: 200 });
        const c = makeClient(`${b.url}${evPath(name)}`);
        await waitFor(() => c.opens === 1, { what: 'EventSource open' });
        await waitFor(async () => (await b.req('GET', chPath(name))).json.subscribers === 1, { what: 'subscriber' });
        const a = await publish(name, { data: 'before' });
        await c.waitGot(1);

        c.hold(); // the reconnect attempt will wait here until we published
        assert.equal((await b.req('DELETE', chPath(name))).status, 204);
        await waitFor(() => c.attempts.length === 2, { what: 'the reconnect attempt' });
        assert.equal(c.es.readyState, EventSource.CONNECTING);
        assert.equal(c.errors, 1, 'one error event for the ended stream');
        // Published while the client is disconnected (autocreate recreates the channel).
        const missed = await publish(name, [{ data: 'missed 1' }, { event: 'greet', data: 'missed 2' }]);
        c.release();

        await c.waitGot(3);
        assert.equal(c.attempts[1].lastEventId, a.id, 'reconnect carries Last-Event-ID');
        await waitFor(() => c.opens === 2, { what: 'second open' });
        const live = await publish(name, { data: 'live' });
        await c.waitGot(4);
        assert.deepEqual(c.got.map((m) => [m.id, m.data]), [
            [a.id, 'before'], [missed.ids[0], 'missed 1'], [missed.ids[1], 'missed 2'], [live.id, 'live'],
        ]);
        c.es.close();
    });

    test('after a dropped connection it resumes from Last-Event-ID: no gap, no duplicate', async () => {
        const name = uniq('es-resume');
        await put(name, { retry_ms: 100 });
        const c = makeClient(`${b.url}${evPath(name)}`);
        await waitFor(() => c.opens === 1, { what: 'EventSource open' });
        await waitFor(async () => (await b.req('GET', chPath(name))).json.subscribers === 1, { what: 'subscriber' });
        const first = await publishN(name, 3);
        await c.waitGot(3);

        c.hold();
        c.cut(); // the client side drops the connection
        await waitFor(() => c.attempts.length === 2, { what: 'the reconnect attempt' });
        await waitFor(async () => (await b.req('GET', chPath(name))).json.subscribers === 0,
            { what: 'the broker noticing the dropped stream' });
        const missed = await publishN(name, 3, 4);
        c.release();
        await c.waitGot(6);
        assert.equal(c.attempts[1].lastEventId, first[2]);
        const live = await publishN(name, 1, 7);
        await c.waitGot(7);
        assert.deepEqual(c.got.map((m) => m.id), [...first, ...missed, ...live]);
        assert.deepEqual(c.got.map((m) => m.data), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
        c.es.close();
    });
});

describe('fan-out written by several threads', () => {
    // threads: 3 - the event loop and two writer threads share each flush of
    // 16 or more streams; a 100 KB message to 40 sockets is more than one
    // writev may take, so the rest goes out when the sockets ask for it.
    let tb;
    before(async () => { tb = await startBroker({ config: { threads: 3 } }); });
    after(async () => { if (tb) assert.equal(await tb.stop(), 0, 'exit code after SIGTERM'); });

    test('40 subscribers get every message of bursts and a 100 KB message, in order', async () => {
        const name = uniq('threads');
        const N = 40;
        const subs = [];
        for (let i = 0; i < N; i++) {
            const s = await tb.stream(evPath(name));
            open.add(s);
            assert.equal(s.status, 200);
            await s.waitOpen();
            subs.push(s);
        }
        const ids = [];
        for (let round = 0; round < 4; round++) {
            const body = Array.from({ length: 50 }, (_, i) => ({ data: `r${round}-${i}` }));
            const r = await tb.req('POST', evPath(name), { body });
            assert.equal(r.status, 201, r.text);
            ids.push(...r.json.ids);
        }
        const big = 'y'.repeat(100 * 1024);
        const r = await tb.req('POST', evPath(name), { body: { data: big } });
        assert.equal(r.status, 201);
        ids.push(r.json.id);
        for (const s of subs) {
            const ev = await s.waitEvents(ids.length, 15000);
            assert.deepEqual(ev.map((e) => e.id), ids);
            assert.equal(ev[0].data, 'r0-0');
            assert.equal(ev[ids.length - 1].data, big);
            s.close();
        }
        const h = await tb.req('GET', '/health');
        assert.equal(h.status, 200);
    });
});
