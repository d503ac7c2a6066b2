/* kv_redis_script.c - the Redis store's Lua script, and the RESP of the calls that
 * append through it (kv_redis_script.h).
 *
 * The script does every write of kv_append() (and of kv_log_mark(),
 * kv_del_if(), kv_set_if()) inside Redis, in one atomic step; kv_redis.c loads
 * it at every connection, batches the operations and calls it by its SHA1.
 * What the script does and how its arguments are laid out is said once, here,
 * above its text; the encoders below write those arguments.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv.h"
#include "kv/kv_private.h"
#include "kv/kv_redis_script.h"
#include "src/base/util.h"

/* The store's one script, loaded at every connection and called by its SHA1
 * with EVALSHA inside the MULTI like any write. ARGV[1] picks what it does;
 * each is one atomic step of Redis:
 *
 * 'append' - kv_append(), for m appends in one call: kv_redis.c joins the
 * appends that follow each other in a batch (at most KV_REDIS_GROUP_MAX) into
 * one EVALSHA, because the call itself (its KEYS and ARGV tables, the Lua
 * frame) costs Redis more than the commands one append runs. ARGV[2] is m;
 * then each append's record, and its keys one after the other in KEYS: the
 * counter's hash, its n lists, then, with a log, the log's stream and its end,
 * and, with readers, their hash. A record: the number of its keys, the
 * counter's field, the floor, head, tail, the channel to PUBLISH on ('' for
 * none), n, per list its LTRIM start ('-max', '0' for no bound), then with a
 * log its bound ('0' for none) and the text put between the id and the
 * position ('' for none: the value is head id tail, else head id mid pos
 * tail), and, with readers, the bound while their hash does not exist
 * (trimmed exactly, MAXLEN =). Returns one reply per append, in order: "id
 * pos" (one string: a reply of one object is what hiredis parses fastest), or
 * the error that append met.
 *
 * Each append is atomic on its own and fails alone (it runs under pcall, so
 * one that fails leaves the others be): types are checked before anything is
 * written, and HINCRBY fails, writing nothing, on a counter that is no integer
 * (or, at maxmemory, on OOM while the script has written nothing yet). One
 * HINCRBY takes the first id of a counter in the call; the following appends
 * count on in Lua and one HSET writes the counter back at the end (an HSET
 * also when the floor lifts it). A log is a Redis Stream: entry id "<id>-0"
 * (ids increase, as XADD wants), fields p (position) and v (value), trimmed
 * once per call after its appends (MAXLEN ~, whole nodes at a time, so it
 * keeps at least the bound; MAXLEN = while the readers' hash is gone). A
 * stream rather than a list because readers ask for "the entries after id X"
 * (XRANGE with an exclusive start) and "the newest N" (XREVRANGE ... COUNT),
 * both O(log n + N) by id, which is what connection cursors and history queries
 * need; a list could only be indexed by offset. A log's end ("id pos" of its
 * newest entry ever) is a string key beside its stream, the stream's name with
 * '~' after it: it outlives trimming, even to nothing, and a DEL of both keys
 * removes the log (kv_del). The call reads a type, a log's end and whether
 * readers exist once per key and writes each end once, at the end: nothing else
 * writes them meanwhile (a script runs alone), so a batch of appends to one
 * channel costs an XADD each and a few commands per call. The values to PUBLISH
 * are not published one by one: those of appends that follow each other on one
 * channel go out as one PUBLISH at the end of the call, framed (kv_private.h:
 * length-prefixed, at most KV_REDIS_PUB_MAX bytes a PUBLISH), and a node's
 * subscription splits them back. A channel other than the last one's starts a
 * new PUBLISH, so the notifications of all channels still follow the order of
 * the ids. So a batch of appends to one channel costs one PUBLISH per call, not
 * one each; a PUBLISH itself is cheap, but each one is a message every
 * subscribed node reads and parses.
 *
 * 'mark' - kv_log_mark(): KEYS[1]: the log's end, KEYS[2]: the target's
 * table hash; ARGV[2]: the target's field. Writes the log's end there.
 *
 * 'delif' - kv_del_if(): KEYS[1]: the hash; ARGV[2]: the field, ARGV[3]: the
 * value it must hold. Returns 1 if it removed it.
 *
 * 'setif' - kv_set_if(): KEYS[1]: the hash; ARGV[2]: the field, ARGV[3]: the
 * value it must hold ("" for none), ARGV[4]: the new one. Returns 1 if set.
 *
 * Lua numbers are doubles: ids are exact up to 2^53 (9e15: 285 years at a
 * million messages a second); past that every id is taken with HINCRBY. */
const char kv_redis_script[] =
    "local mode = ARGV[1]\n"
    "if mode == 'mark' then\n"
    "  local e = redis.call('GET', KEYS[1]) or '0 0'\n"
    "  redis.call('HSET', KEYS[2], ARGV[2], e)\n"
    "  return e\n"
    "end\n"
    "if mode == 'setif' then\n"
    "  if (redis.call('HGET', KEYS[1], ARGV[2]) or '') == ARGV[3] then\n"
    "    redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])\n"
    "    return 1\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "if mode == 'delif' then\n"
    "  if redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[3] then\n"
    "    return redis.call('HDEL', KEYS[1], ARGV[2])\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "local lists, logs, ctrs, ends, readers, trims, last_of = {}, {}, {}, {}, {}, {}, "
    "{}\n"
    "local function typed(seen, key, want, what)\n"
    "  if not seen[key] then\n"
    "    local t = redis.call('TYPE', key).ok\n"
    "    if t ~= 'none' and t ~= want then\n"
    "      return redis.error_reply('WRONGTYPE ' .. key .. ' holds no ' .. what)\n"
    "    end\n"
    "    seen[key] = true\n"
    "  end\n"
    "end\n"
    "local function append(j, k, a)\n"
    "  local nk, n = tonumber(ARGV[a]), tonumber(ARGV[a + 6])\n"
    "  local log, s, e = nk > 1 + n, KEYS[k + 1 + n], KEYS[k + 2 + n]\n"
    "  for i = k + 1, k + n do\n"
    "    local err = typed(lists, KEYS[i], 'list', 'list')\n"
    "    if err then return err end\n"
    "  end\n"
    "  if log then\n"
    "    local err = typed(logs, s, 'stream', 'log')\n"
    "    if err then return err end\n"
    "  end\n"
    "  local h, f, floor = KEYS[k], ARGV[a + 1], tonumber(ARGV[a + 2])\n"
    "  ctrs[h] = ctrs[h] or {}\n"
    "  local c, id = ctrs[h][f]\n"
    "  if c and c.v < 9007199254740992 then\n"
    "    id = c.v + 1\n"
    "    c.dirty = true\n"
    "  else\n"
    "    if c and c.dirty then redis.call('HSET', h, f, string.format('%.0f', c.v)) "
    "end\n"
    "    id = redis.call('HINCRBY', h, f, 1)\n"
    "    c = {}\n"
    "    ctrs[h][f] = c\n"
    "  end\n"
    "  if id <= floor then\n"
    "    id = floor + 1\n"
    "    c.dirty = true\n"
    "  end\n"
    "  c.v = id\n"
    "  id = string.format('%.0f', id)\n"
    "  local pos, last = '0', 0\n"
    "  if log then\n"
    "    if ends[e] then\n"
    "      last = ends[e].pos\n"
    "    else\n"
    "      local t = redis.call('GET', e)\n"
    "      last = t and tonumber(string.match(t, ' (%d+)$')) or 0\n"
    "    end\n"
    "    pos = string.format('%.0f', last + 1)\n"
    "  end\n"
    "  local v\n"
    "  if log and ARGV[a + 8 + n] ~= '' then\n"
    "    v = ARGV[a + 3] .. id .. ARGV[a + 8 + n] .. pos .. ARGV[a + 4]\n"
    "  else\n"
    "    v = ARGV[a + 3] .. id .. ARGV[a + 4]\n"
    "  end\n"
    "  for i = 1, n do\n"
    "    redis.call('RPUSH', KEYS[k + i], v)\n"
    "    if ARGV[a + 6 + i] ~= '0' then redis.call('LTRIM', KEYS[k + i], ARGV[a + 6 + "
    "i], -1) end\n"
    "  end\n"
    "  if log then\n"
    "    local t = ARGV[a + 7 + n] ~= '0' and {'MAXLEN', '~', ARGV[a + 7 + n]} or nil\n"
    "    if nk > 3 + n then\n"
    "      local r = KEYS[k + 3 + n]\n"
    "      if readers[r] == nil then readers[r] = redis.call('EXISTS', r) == 1 end\n"
    "      if not readers[r] then t = {'MAXLEN', '=', ARGV[a + 9 + n]} end\n"
    "    end\n"
    "    if t and last_of[s] == j then\n"
    "      redis.call('XADD', s, t[1], t[2], t[3], id .. '-0', 'p', pos, 'v', v)\n"
    "      trims[s] = nil\n"
    "    else\n"
    "      redis.call('XADD', s, id .. '-0', 'p', pos, 'v', v)\n"
    "      trims[s] = t\n"
    "    end\n"
    "    ends[e] = {pos = last + 1, v = id .. ' ' .. pos}\n"
    "  end\n"
    "  return id .. ' ' .. pos, ARGV[a + 5], v\n"
    "end\n"
    "local pch, pbuf, psz = '', {}, 0\n"
    "local function publish()\n"
    "  if pch ~= '' then redis.call('PUBLISH', pch, table.concat(pbuf)) end\n"
    "  pch, pbuf, psz = '', {}, 0\n"
    "end\n"
    "local m, out, k, a = tonumber(ARGV[2]), {}, 1, 3\n"
    "for j = 1, m do\n"
    "  local nk, n = tonumber(ARGV[a]), tonumber(ARGV[a + 6])\n"
    "  if nk > 1 + n then last_of[KEYS[k + 1 + n]] = j end\n"
    "  k, a = k + nk, a + 6 + nk\n"
    "end\n"
    "k, a = 1, 3\n"
    "for j = 1, m do\n"
    "  local ok, r, ch, v = pcall(append, j, k, a)\n"
    "  if not ok and type(r) ~= 'table' then r = redis.error_reply(tostring(r)) end\n"
    "  if ok and ch and ch ~= '' then\n"
    "    local f = #v .. ':'\n"
    "    if ch ~= pch or psz + #f + #v > " KV_REDIS_PUB_MAX_STR " then publish() end\n"
    "    pch, psz = ch, psz + #f + #v\n"
    "    pbuf[#pbuf + 1] = f\n"
    "    pbuf[#pbuf + 1] = v\n"
    "  end\n"
    "  out[j] = r\n"
    "  local nk = tonumber(ARGV[a])\n"
    "  k, a = k + nk, a + 6 + nk\n"
    "end\n"
    "for h, fs in pairs(ctrs) do\n"
    "  for f, c in pairs(fs) do\n"
    "    if c.dirty then redis.call('HSET', h, f, string.format('%.0f', c.v)) end\n"
    "  end\n"
    "end\n"
    "for e, x in pairs(ends) do redis.call('SET', e, x.v) end\n"
    "for s, t in pairs(trims) do redis.call('XTRIM', s, t[1], t[2], t[3]) end\n"
    "publish()\n"
    "return out\n";

static int valid_name(const char *s)
{
    return s && *s;
}

/* An append's arguments as RESP bulk strings, written straight into its
 * operation's buffer (no argv arrays, no formatting of whole commands:
 * kv_redis_script_call() only copies them after its header). Each string is 'a' then
 * 'b' (the store's prefix and a name, or one of them empty). */
typedef struct resp_w {
    char *p;
    size_t len;
} resp_w;

static void bulk3(resp_w *w, const char *a, size_t alen, const char *b, size_t blen,
                  const char *c, size_t clen)
{
    char num[24];
    int n = 0;
    size_t v = alen + blen + clen;
    do
        num[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    w->p[w->len++] = '$';
    while (n)
        w->p[w->len++] = num[--n];
    memcpy(w->p + w->len, "\r\n", 2);
    w->len += 2;
    if (alen)
        memcpy(w->p + w->len, a, alen);
    if (blen)
        memcpy(w->p + w->len + alen, b, blen);
    if (clen)
        memcpy(w->p + w->len + alen + blen, c, clen);
    w->len += alen + blen + clen;
    memcpy(w->p + w->len, "\r\n", 2);
    w->len += 2;
}

static void bulk(resp_w *w, const char *a, size_t alen, const char *b, size_t blen)
{
    bulk3(w, a, alen, b, blen, NULL, 0);
}

/* A number, in decimal, after 'sign' ("" or "-"), with fmt_u64, not snprintf():
 * an append writes 4 or more, and printf's machinery was half of the time
 * an append took to encode (perf). */
static void bulk_num(resp_w *w, const char *sign, unsigned long long v)
{
    char t[24], *p = t;
    if (*sign)
        *p++ = '-';
    p = fmt_u64(p, v);
    bulk(w, t, (size_t)(p - t), NULL, 0);
}

int kv_redis_script_append(const char *prefix, const kv_append_args *a, kv_redis_rec *rec)
{
    const char *slash = a && a->counter ? strrchr(a->counter, '/') : NULL;
    size_t n, nk, plen = strlen(prefix), cap, hlen;
    resp_w w = {0};

    if (!a || (!a->head && a->head_len) || (!a->tail && a->tail_len) ||
        (!a->mid && a->mid_len) || (a->nlists && !a->lists) ||
        (a->topic && !valid_name(a->topic)) || (a->log && !valid_name(a->log)) ||
        a->floor == LLONG_MAX ||
        (a->log_readers && (!a->log || !kv_valid_table(a->log_readers))) || !a->counter ||
        !*a->counter || !slash || !slash[1] || a->nlists > INT_MAX / 4)
        return KV_EINVAL;
    n = a->nlists;
    hlen = (size_t)(slash - a->counter) + 1; /* the counter's hash: P"table/" */
    /* Its keys: hash lists... [stream end [readers]]; its record (the script):
     * nkeys field floor head tail channel n trims... [max mid [idle]], 6 +
     * nkeys in all. Room: every string, and per argument its framing
     * ("$<len>\r\n...\r\n": at most 25 bytes), the prefix or a number (at
     * most 21 bytes) and a '~'. */
    nk = 1 + n + (a->log ? 2 + (a->log_readers ? 1 : 0) : 0);
    cap = (nk + 6 + nk) * (48 + plen) + hlen + strlen(slash + 1) + a->head_len +
          a->tail_len + a->mid_len + (a->topic ? strlen(a->topic) : 0) +
          (a->log ? 2 * strlen(a->log) : 0) +
          (a->log_readers ? strlen(a->log_readers) : 0);
    for (size_t i = 0; i < n; i++) {
        if (!valid_name(a->lists[i]))
            return KV_EINVAL;
        cap += strlen(a->lists[i]);
    }
    if (!(w.p = malloc(cap)))
        return KV_ENOMEM;
    bulk(&w, prefix, plen, a->counter, hlen);
    for (size_t i = 0; i < n; i++)
        bulk(&w, prefix, plen, a->lists[i], strlen(a->lists[i]));
    if (a->log) {
        bulk(&w, prefix, plen, a->log, strlen(a->log));
        bulk3(&w, prefix, plen, a->log, strlen(a->log), "~", 1); /* its end */
    }
    if (a->log_readers)
        bulk(&w, prefix, plen, a->log_readers, strlen(a->log_readers));
    rec->split = w.len;
    bulk_num(&w, "", nk);
    bulk(&w, slash + 1, strlen(slash + 1), NULL, 0);
    bulk_num(&w, a->floor < 0 ? "-" : "",
             a->floor < 0 ? 0ULL - (unsigned long long)a->floor
                          : (unsigned long long)a->floor);
    bulk(&w, a->head, a->head_len, NULL, 0); /* may hold NULs */
    bulk(&w, a->tail, a->tail_len, NULL, 0);
    bulk(&w, a->topic ? prefix : NULL, a->topic ? plen : 0, a->topic,
         a->topic ? strlen(a->topic) : 0);
    bulk_num(&w, "", n);
    for (size_t i = 0; i < n; i++) { /* the LTRIM start: -max, 0 for none */
        size_t max = a->max ? a->max[i] : 0;
        bulk_num(&w, max ? "-" : "", max);
    }
    if (a->log) {
        bulk_num(&w, "", a->log_max);
        bulk(&w, a->mid, a->mid_len, NULL, 0);
    }
    if (a->log_readers)
        bulk_num(&w, "", a->log_idle);
    rec->p = w.p;
    rec->len = w.len;
    rec->nkeys = (int)nk;
    return 0;
}

char *kv_redis_script_call(const char *sha, const kv_redis_rec *recs, int m, size_t *len)
{
    size_t nkeys = 0, args = 0, total = 0, at;
    char head[96], mid[48], *cmd;

    for (int i = 0; i < m; i++) {
        total += recs[i].len;
        nkeys += (size_t)recs[i].nkeys;
        args += 6 + (size_t)recs[i].nkeys; /* a record: 6 + its keys */
    }
    int hl = snprintf(head, sizeof(head),
                      "*%zu\r\n$7\r\nEVALSHA\r\n$%d\r\n%s\r\n$%d\r\n%zu\r\n",
                      3 + nkeys + 2 + args, KV_REDIS_SHA_LEN, sha,
                      snprintf(NULL, 0, "%zu", nkeys), nkeys);
    int ml = snprintf(mid, sizeof(mid), "$6\r\nappend\r\n$%d\r\n%d\r\n",
                      snprintf(NULL, 0, "%d", m), m);
    if (!(cmd = malloc(total + (size_t)hl + (size_t)ml)))
        return NULL;
    memcpy(cmd, head, (size_t)hl);
    at = (size_t)hl;
    for (int i = 0; i < m; i++) { /* the keys, in order */
        memcpy(cmd + at, recs[i].p, recs[i].split);
        at += recs[i].split;
    }
    memcpy(cmd + at, mid, (size_t)ml);
    at += (size_t)ml;
    for (int i = 0; i < m; i++) { /* the records, in order */
        memcpy(cmd + at, recs[i].p + recs[i].split, recs[i].len - recs[i].split);
        at += recs[i].len - recs[i].split;
    }
    *len = at;
    return cmd;
}
