/* session.c - sessions to and from their JSON record. */
#include "src/domain/session.h"

#include <stdlib.h>
#include <string.h>

#include "src/base/util.h"
#include "src/domain/msg.h"
#include "src/domain/policy.h"

void session_clear(session *s)
{
    if (!s)
        return;
    free(s->authid);
    free(s->authrole);
    free(s->channel);
    free(s->agent);
    memset(s, 0, sizeof(*s));
}

static json_t *str_or_null(const char *v)
{
    return v && *v ? json_string(v) : json_null();
}

json_t *session_to_json(const session *s)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    /* json_string() refuses invalid UTF-8: a User-Agent is bytes, so it is
     * kept only when it is text. */
    json_t *agent = s->agent ? json_string(s->agent) : NULL;
    if (json_object_set_new(o, "id", json_string(s->id)) < 0 ||
        json_object_set_new(o, "authid", str_or_null(s->authid)) < 0 ||
        json_object_set_new(o, "authrole", str_or_null(s->authrole)) < 0 ||
        json_object_set_new(o, "authmethod", json_string(policy_method_name(s->method))) <
            0 ||
        json_object_set_new(o, "channel", json_string(s->channel ? s->channel : "")) <
            0 ||
        json_object_set_new(o, "connection", str_or_null(s->conn)) < 0 ||
        json_object_set_new(o, "node", json_string(s->node)) < 0 ||
        json_object_set_new(o, "remote", json_string(s->remote)) < 0 ||
        json_object_set_new(o, "user_agent", agent ? agent : json_null()) < 0 ||
        json_object_set_new(o, "joined_at", json_integer(s->joined_at)) < 0 ||
        json_object_set_new(o, "left_at",
                            s->left_at ? json_integer(s->left_at) : json_null()) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *session_to_text(const session *s)
{
    json_t *o = session_to_json(s);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* ,"key":"value" at 'p' when 'v' is set (not NULL nor ""); returns the end. */
static char *put_member(char *p, const char *key, const char *v)
{
    if (!v || !*v)
        return p;
    p = stpcpy(stpcpy(stpcpy(p, ",\""), key), "\":");
    return msg_json_quote(p, v, strlen(v));
}

static int text_ok(const char *v)
{
    return !v || valid_utf8(v, strlen(v));
}

char *session_to_record(const session *s)
{
    /* Written by hand: it runs for every stream that opens and closes, and
     * jansson made some fifty allocations of it. The members that are null
     * are left out (an archived record is kept for every live stream: they
     * were a third of it); session_from_text() reads a missing member as
     * null, a missing remote as "" and a missing authmethod as anonymous.
     * Strings that are not UTF-8 fail, as json_string() refuses them; a
     * User-Agent that is not is left out, as session_to_json() does. */
    const char *agent = text_ok(s->agent) ? s->agent : NULL;
    /* Room: the keys, three ids of CONN_ID_LEN escaped at worst, two
     * numbers, and each string escaped at worst with its key. */
    size_t n = 512;
    const char *strs[] = {s->authid, s->authrole, s->channel, s->remote, agent};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (!text_ok(strs[i]))
            return NULL;
        n += strs[i] ? 6 * strlen(strs[i]) + 16 : 0;
    }
    char *text = malloc(n), *p = text;
    if (!text)
        return NULL;
    p = stpcpy(p, "{\"id\":");
    p = msg_json_quote(p, s->id, strlen(s->id));
    p = put_member(p, "authid", s->authid);
    p = put_member(p, "authrole", s->authrole);
    if (s->method != AUTHMETHOD_ANONYMOUS)
        p = put_member(p, "authmethod", policy_method_name(s->method));
    p = stpcpy(p, ",\"channel\":");
    p = msg_json_quote(p, s->channel ? s->channel : "",
                       s->channel ? strlen(s->channel) : 0);
    p = put_member(p, "connection", s->conn);
    p = stpcpy(p, ",\"node\":");
    p = msg_json_quote(p, s->node, strlen(s->node));
    p = put_member(p, "remote", s->remote);
    p = put_member(p, "user_agent", agent);
    p = fmt_i64(stpcpy(p, ",\"joined_at\":"), s->joined_at);
    if (s->left_at)
        p = fmt_i64(stpcpy(p, ",\"left_at\":"), s->left_at);
    *p++ = '}';
    *p = '\0';
    return text;
}

/* Copy the string member 'key' of 'o' into 'dst' (room: 'size'); "" when null.
 * -1 if it is neither, or too long. */
static int copy_fixed(const json_t *o, const char *key, char *dst, size_t size)
{
    const json_t *v = json_object_get(o, key);
    dst[0] = '\0';
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= size)
        return -1;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* '*dst' = a copy of the string member 'key' (NULL when null or absent).
 * 0, -1 on OOM, -2 if it is no string. */
static int copy_str(const json_t *o, const char *key, char **dst)
{
    const json_t *v = json_object_get(o, key);
    *dst = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -2;
    return (*dst = strdup(json_string_value(v))) ? 0 : -1;
}

int session_from_text(session *s, const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    const json_t *joined = json_object_get(o, "joined_at"),
                 *left = json_object_get(o, "left_at");
    const char *method = json_string_value(json_object_get(o, "authmethod"));
    int rc = -2;

    session_clear(s);
    if (!json_is_object(o) || copy_fixed(o, "id", s->id, sizeof(s->id)) < 0 ||
        !valid_conn_id(s->id) ||
        copy_fixed(o, "connection", s->conn, sizeof(s->conn)) < 0 ||
        copy_fixed(o, "node", s->node, sizeof(s->node)) < 0 ||
        copy_fixed(o, "remote", s->remote, sizeof(s->remote)) < 0 ||
        !json_is_integer(joined) ||
        (left && !json_is_null(left) && !json_is_integer(left)))
        goto out;
    s->method = AUTHMETHOD_ANONYMOUS;
    for (int m = AUTHMETHOD_ANONYMOUS; m <= AUTHMETHOD_APIKEY; m++)
        if (method && strcmp(method, policy_method_name(m)) == 0)
            s->method = m;
    s->joined_at = json_integer_value(joined);
    s->left_at = json_is_integer(left) ? json_integer_value(left) : 0;
    if ((rc = copy_str(o, "authid", &s->authid)) < 0 ||
        (rc = copy_str(o, "authrole", &s->authrole)) < 0 ||
        (rc = copy_str(o, "channel", &s->channel)) < 0 ||
        (rc = copy_str(o, "user_agent", &s->agent)) < 0)
        goto out;
    rc = s->channel ? 0 : -2;
out:
    json_decref(o);
    if (rc < 0)
        session_clear(s);
    return rc;
}

bool session_matches(const session *s, const session_filter *f)
{
    if (f->active >= 0 && (s->left_at == 0) != (f->active == 1))
        return false;
    if (f->channel && (!s->channel || strcmp(s->channel, f->channel) != 0))
        return false;
    if (f->authid && (!s->authid || strcmp(s->authid, f->authid) != 0))
        return false;
    return true;
}

int channel_reserved(const char *name)
{
    return strncmp(name, "sys.", 4) == 0;
}
