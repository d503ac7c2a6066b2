// it_backpressure.mjs - limits.max_delivery_lag_ms: while the broker's
// delivery is behind (stream output marked and not yet written for longer
// than the limit), a publish is refused with 503 "overloaded" and a
// Retry-After, counted in /metrics as result "overloaded"; nothing that was
// acknowledged is lost, nothing refused is delivered, publishing works again
// once delivery has caught up; 0 turns it off. Both stores.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { brokerPool, uniq, evPath, checkError, waitFor, HOST } from './lib/broker.mjs';

const broker = brokerPool(after);

const SUBS = 1000;     // streams that read and drop what they get
const PARSED = 2;      // streams whose events are checked one by one
const CONC = 32;       // publishes in flight
const MAX_REQS = 3000; // the burst's bound
const SIZE = 1024;     // bytes of each message

/** A stream that reads and drops its bytes (cheap for the test). */
function rawStream(b, p) {
    return new Promise((resolve, reject) => {
        const r = http.get({ host: HOST, port: b.port, path: p, agent: false,
                             headers: { Accept: 'text/event-stream' } });
        r.on('error', reject);
        r.on('response', (res) => {
            res.on('data', () => {});
            res.on('error', () => {});
            resolve(r);
        });
    });
}

/**
 * Publish as fast as CONC requests in flight allow, until 'stopAfter503'
 * refusals were seen or 'max' were sent. Returns {ok: [seq...], refused:
 * [{seq, res}...]}; each body is "m<seq> " padded to SIZE.
 */
async function burst(b, ch, stopAfter503, max = MAX_REQS) {
    const ok = [], refused = [];
    let next = 0;
    const body = (seq) => `m${seq} `.padEnd(SIZE, 'x');
    async function worker() {
        while (next < max && refused.length < stopAfter503) {
            const seq = next++;
            const res = await b.req('POST', evPath(ch), { body: body(seq) });
            if (res.status === 201) ok.push(seq);
            else refused.push({ seq, res });
        }
    }
    await Promise.all(Array.from({ length: CONC }, worker));
    return { ok, refused };
}

async function metric(b, result) {
    const res = await b.req('GET', '/metrics');
    assert.equal(res.status, 200, res.text);
    const m = new RegExp(`^ssebroker_publishes_total\\{[^}]*result="${result}"[^}]*\\} (\\d+)$`, 'm').exec(res.text);
    assert.ok(m, `a publishes_total sample for ${result}:\n${res.text}`);
    return Number(m[1]);
}

test('a publish while delivery is behind is refused with 503 and Retry-After; nothing acknowledged is lost', async () => {
    const b = await broker({ limits: { max_delivery_lag_ms: 1, max_streams: 5000,
                                       max_streams_per_channel: 5000 } });
    const ch = uniq('bp');
    const raws = [];
    for (let i = 0; i < SUBS; i += 100)
        raws.push(...await Promise.all(Array.from({ length: Math.min(100, SUBS - i) },
            () => rawStream(b, evPath(ch)))));
    const parsed = [];
    for (let i = 0; i < PARSED; i++) {
        const s = await b.stream(evPath(ch));
        await s.waitOpen();
        parsed.push(s);
    }
    try {
        const { ok, refused } = await burst(b, ch, 20);
        console.log(`# ${ok.length} acknowledged, ${refused.length} refused`);
        assert.ok(refused.length > 0,
            `no publish refused in ${ok.length} while ${SUBS} streams were written`);
        for (const { res } of refused) {
            checkError(assert, res, 503, 'overloaded', 'a publish while delivery is behind');
            assert.match(String(res.headers['retry-after']), /^[1-9][0-9]*$/, 'Retry-After in seconds');
            assert.match(res.json.error.message, /max_delivery_lag_ms/);
        }
        // Every acknowledged message reaches every checked stream once, in
        // order; none that was refused does.
        const want = ok.slice().sort((x, y) => x - y);
        for (const s of parsed) {
            const got = await s.waitUntil(() => s.events.length >= want.length && s.events, 60000,
                `${want.length} events`);
            const seqs = got.map((e) => Number(/^m(\d+) /.exec(e.data)[1]));
            assert.deepEqual(seqs.slice().sort((x, y) => x - y), want, 'the acknowledged messages, once each');
            const ids = got.map((e) => BigInt(e.id));
            for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], 'ids in order');
        }
        assert.equal(await metric(b, 'overloaded'), refused.length, 'refusals counted');
        assert.equal(await metric(b, 'ok'), ok.length, 'acknowledged publishes counted');
        // Caught up: publishing is accepted again.
        await waitFor(async () => (await b.req('POST', evPath(ch), { body: 'after' })).status === 201,
            { timeout: 30000, what: 'a publish accepted once delivery caught up' });
    } finally {
        for (const r of raws) r.destroy();
        for (const s of parsed) s.close();
    }
    b.assertAlive();
});

test('max_delivery_lag_ms 0: the same burst is never refused', async () => {
    const b = await broker({ limits: { max_delivery_lag_ms: 0, max_streams: 5000,
                                       max_streams_per_channel: 5000 } });
    const ch = uniq('bp0');
    const raws = await Promise.all(Array.from({ length: 300 }, () => rawStream(b, evPath(ch))));
    try {
        const { ok, refused } = await burst(b, ch, 1, 600);
        assert.equal(refused.length, 0, refused.length ? refused[0].res.text : '');
        assert.equal(ok.length, 600);
        assert.equal(await metric(b, 'overloaded'), 0);
    } finally {
        for (const r of raws) r.destroy();
    }
    b.assertAlive();
});

test('limits.max_delivery_lag_ms out of range stops start-up naming the field', async () => {
    await assert.rejects(broker({ limits: { max_delivery_lag_ms: -1 } }), /max_delivery_lag_ms/);
});
