/* guard.h - freeing an object from inside its own callback, solved once.
 *
 * An object whose callbacks may free it (a store freed by its caller from a
 * completion, a connection aborted by its own request handler) keeps a guard.
 * Every frame that runs its callbacks, and every outside holder that will still
 * call into it (hiredis keeping a context it is about to report on), enters the
 * guard and leaves it afterwards. A free asked for while the guard is held only
 * marks the object; the last one out frees it. This is hiredis'
 * REDIS_IN_CALLBACK and Redis' freeClientAsync(), written once:
 *
 *     guard_enter(&o->guard);
 *     o->cb(o->arg);                   // may call o_free(o)
 *     if (guard_leave(&o->guard)) {    // it did, and this was the last frame
 *         o_destroy(o);
 *         return;
 *     }
 *
 *     void o_free(obj *o)
 *     {
 *         if (guard_free(&o->guard))   // no frame holds it: now
 *             o_destroy(o);
 *     }
 */
#ifndef GUARD_H
#define GUARD_H

#include <stdbool.h>

typedef struct guard {
    unsigned holds; /* frames and holders inside */
    bool doomed;    /* a free was asked for */
} guard;

static inline void guard_enter(guard *g)
{
    g->holds++;
}

/* Leave; true if the object was doomed meanwhile and this was the last hold:
 * the caller frees it now. */
static inline bool guard_leave(guard *g)
{
    return --g->holds == 0 && g->doomed;
}

/* Ask for the object to be freed; true if nothing holds it, so the caller
 * frees it now, false if the last guard_leave() will say so. */
static inline bool guard_free(guard *g)
{
    g->doomed = true;
    return g->holds == 0;
}

/* True once a free was asked for: stop running the object's callbacks. */
static inline bool guard_doomed(const guard *g)
{
    return g->doomed;
}

/* True while a frame or holder is inside. */
static inline bool guard_held(const guard *g)
{
    return g->holds > 0;
}

#endif
