#!/usr/bin/env node
// history_query.mjs - issue 15's query target: a `timeseries` query for 100
// events out of a channel holding 100,000, on the memory store and on Redis.
//
//   node bench/history_query.mjs [--bin PATH] [--events N] [--queries Q] [--store S]
//
// For each store (memory and redis, or only --store S): a fresh broker
// (build/ssebroker unless --bin), one channel with history N, N events
// (default 100,000, 100 bytes of data each, event type "sample", published
// in batches of 1,000, source_timestamp = their index), then Q (default 200)
// rounds of four queries of 100 events each, timed at the client (loopback
// HTTP included): by server time (from/to, asc), by source time
// (source_from/source_to, order_by=source_timestamp), the latest 100
// (order=desc) and one cursor page (after=). Prints the median and p90 in ms
// of each; and what the load cost per message retained: as the broker counts
// it (/health memory.used: messages alive, the store's data in this process,
// the eviction notes; real bytes, allocator included) and in RSS, with the
// RSS before and after and Redis' used_memory. --queries 0 measures memory
// only. Loopback only; every process is stopped by PID (the test helpers do
// it); the run is bounded in count.
import fs from 'node:fs';
import os from 'node:os';

const argv = process.argv.slice(2);
const opt = (name, def) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : def;
};
if (opt('--bin')) process.env.SSEBROKER_BIN = opt('--bin');
// Imported once SSEBROKER_BIN is set: the helpers read it as they load.
const { startBroker, req } = await import('../tests/lib/broker.mjs');
const { startRedis } = await import('../tests/lib/redis.mjs');
const N = Number(opt('--events', 100000));
const Q = Number(opt('--queries', 200));
const STORES = opt('--store') ? [opt('--store')] : ['memory', 'redis'];
if (!(N >= 200 && N <= 1000000) || !(Q >= 0 && Q <= 100000)) throw new Error('--events 200..1000000, --queries 0..100000');
const BATCH = 1000;

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const p90 = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length * 0.9)];

async function get(b, path) {
    const r = await req(b, 'GET', path);
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${r.text}`);
    return r.json;
}

async function run(storeName) {
    let redis = null;
    const config = { limits: { max_memory: 4 * 1024 * 1024 * 1024, max_query_results: 1000 } };
    if (storeName === 'redis') {
        redis = await startRedis();
        config.store = { type: 'redis', url: redis.url, prefix: 'hq:' };
    }
    const b = await startBroker({ config });
    try {
        const ch = 'bench.series';
        const put = await req(b, 'PUT', `/channels/${ch}`, { body: JSON.stringify({ history: N }) });
        if (put.status !== 201) throw new Error(`PUT: ${put.status} ${put.text}`);
        const used0 = (await get(b, '/health')).memory.used;
        const rss0 = rssKiB(b.pid);
        const data = 'x'.repeat(100);
        const t0 = Date.now();
        for (let i = 0; i < N; i += BATCH) {
            const batch = [];
            for (let k = i; k < Math.min(N, i + BATCH); k++) batch.push({ event: 'sample', data, source_timestamp: k });
            const r = await req(b, 'POST', `/channels/${ch}/events`, {
                body: JSON.stringify(batch), headers: { 'Content-Type': 'application/json' }, timeout: 60000,
            });
            if (r.status !== 201) throw new Error(`publish: ${r.status} ${r.text}`);
        }
        const loadS = (Date.now() - t0) / 1000;
        const held = (await get(b, `/channels/${ch}`)).messages;
        if (held !== N) throw new Error(`the channel holds ${held} of ${N}`);
        const used1 = (await get(b, '/health')).memory.used;
        const rss1 = rssKiB(b.pid);
        const mid = Math.floor(N / 2);
        const at = async (i) => (await get(b, `/history?channel=${ch}&order_by=source_timestamp&source_from=${i}&source_to=${i}`)).events[0].timestamp;
        const [from, to] = [await at(mid), await at(mid + 99)];
        const first = await get(b, `/history?channel=${ch}&from=${from}&limit=100`);
        const queries = {
            'timestamp range (from/to)': `/history?channel=${ch}&from=${from}&to=${to}&limit=100`,
            'source range (order_by=source_timestamp)':
                `/history?channel=${ch}&order_by=source_timestamp&source_from=${mid}&source_to=${mid + 99}&limit=100`,
            'latest 100 (order=desc)': `/history?channel=${ch}&order=desc&limit=100`,
            'next page (after=cursor)': `/history?channel=${ch}&from=${from}&limit=100&after=${first.next}`,
        };
        const times = {};
        for (const k of Object.keys(queries)) times[k] = [];
        for (let r = 0; r < Q; r++) {
            for (const [k, path] of Object.entries(queries)) {
                const s = process.hrtime.bigint();
                const j = await get(b, path);
                const ms = Number(process.hrtime.bigint() - s) / 1e6;
                if (j.events.length !== 100) throw new Error(`${k}: ${j.events.length} events`);
                times[k].push(ms);
            }
        }
        let redisMem = null;
        if (redis) redisMem = /used_memory:(\d+)/.exec(await redis.cmd('INFO', 'memory'))[1];
        return { storeName, held, loadS, used0, used1, rss0, rss1, redisMem, times };
    } finally {
        await b.stop({ timeout: 30000 });
        if (redis) await redis.stop();
    }
}

const results = [];
for (const s of STORES) results.push(await run(s));
console.log(`\nhistory_query: ${N} events of 100 bytes in one channel, ${Q} rounds, ` +
    `${os.cpus().length} x ${os.cpus()[0].model}, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
if (Q > 0) {
    console.log('\n| query (100 events) | ' + results.map((r) => `${r.storeName} median / p90 ms`).join(' | ') + ' |');
    console.log('|---|' + results.map(() => '---|').join(''));
    for (const k of Object.keys(results[0].times))
        console.log(`| ${k} | ` + results.map((r) => `${median(r.times[k]).toFixed(2)} / ${p90(r.times[k]).toFixed(2)}`).join(' | ') + ' |');
}
console.log('\n| store | retained | load (s) | counted (memory.used) B/msg | broker RSS B/msg | broker RSS before / after (MiB) | Redis used_memory (MiB) |');
console.log('|---|---|---|---|---|---|---|');
for (const r of results)
    console.log(`| ${r.storeName} | ${r.held} | ${r.loadS.toFixed(1)} | ${((r.used1 - r.used0) / r.held).toFixed(0)} | ` +
        `${((r.rss1 - r.rss0) * 1024 / r.held).toFixed(0)} | ${(r.rss0 / 1024).toFixed(1)} / ${(r.rss1 / 1024).toFixed(1)} | ` +
        `${r.redisMem ? (r.redisMem / 1048576).toFixed(1) : '-'} |`);
