/*
 * template-eval.c: evaluating template expressions against the variables
 * table (part of the template family): raw lookups only, Jinja's truthiness
 * and comparisons, the filters, and strict undefined.
 */
#include "template-internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- evaluation ---- */

const char *tpl_a_type(lua_State *L, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return "nil";
    case LUA_TBOOLEAN: return "a boolean";
    case LUA_TNUMBER: return "a number";
    case LUA_TSTRING: return "a string";
    case LUA_TTABLE: return "a table";
    case LUA_TFUNCTION: return "a function";
    case LUA_TTHREAD: return "a thread";
    case LUA_TLIGHTUSERDATA:
        if (!lua_touserdata(L, idx))
            return "none";
        return "a userdata";
    default: return "a userdata";
    }
}

/* The expression's source text, for messages. */
const char *tpl_src_of(const Render *r, const Node *n, char *buf, size_t size)
{
    return tpl_excerpt(buf, size, r->c.src + n->start, n->end > n->start ? n->end - n->start : 0);
}

/* Record why a value is undefined and push the placeholder nil; returns 0. */
__attribute__((format(printf, 3, 4)))
int tpl_undefined(Render *r, size_t pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->undef_msg, sizeof r->undef_msg, fmt, ap);
    va_end(ap);
    r->undef_pos = pos;
    r->undef_soft = 0;
    lua_pushnil(r->c.L);
    return 0;
}

void tpl_add_work(Render *r, const Node *n, size_t bytes)
{
    if (bytes > MAX_OUTPUT)
        tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
    r->work += bytes;
    if (r->work > MAX_WORK)
        tpl_fail(&r->c, n->pos, "template builds more than %zu MiB of strings", MAX_WORK >> 20);
}

#define eval tpl_eval
static int literal_order(lua_State *L, int idx);

void tpl_eval_strict(Render *r, const Node *n)
{
    if (eval(r, n))
        return;
    if (!r->undef_soft)
        tpl_fail(&r->c, r->undef_pos, "%s", r->undef_msg);
    /* `x if c` with c false: undefined for default and `is defined`, and
     * the empty string everywhere else, as Ansible renders it */
    lua_pop(r->c.L, 1);
    lua_pushliteral(r->c.L, "");
}

/* Python's repr of a float: the shortest digits that read back, fixed
 * notation (with ".0" when integral) unless the exponent is below -4 or
 * above 15. */
void tpl_fmt_float(double d, char *buf, size_t size)
{
    if (isnan(d)) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, size, d > 0 ? "inf" : "-inf");
        return;
    }
    char e[40];
    for (int prec = 0; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e is [-]D[.DDD]e[+-]XX */
    char digits[24];
    size_t nd = 0;
    const char *q = e;
    int neg = *q == '-';
    if (neg)
        q++;
    for (; *q && *q != 'e'; q++)
        if (*q != '.')
            digits[nd++] = *q;
    digits[nd] = '\0';
    int exp10 = atoi(q + 1), decpt = exp10 + 1;
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = '\0';
    size_t o = 0;
    if (neg)
        buf[o++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            o += (size_t)snprintf(buf + o, size - o, "0.");
            for (int k = 0; k < -decpt; k++)
                buf[o++] = '0';
            snprintf(buf + o, size - o, "%s", digits);
        } else if ((size_t)decpt >= nd) {
            o += (size_t)snprintf(buf + o, size - o, "%s", digits);
            for (size_t k = nd; k < (size_t)decpt; k++)
                buf[o++] = '0';
            snprintf(buf + o, size - o, ".0");
        } else {
            snprintf(buf + o, size - o, "%.*s.%s", decpt, digits, digits + decpt);
        }
    } else {
        if (nd > 1)
            o += (size_t)snprintf(buf + o, size - o, "%c.%s", digits[0], digits + 1);
        else
            o += (size_t)snprintf(buf + o, size - o, "%c", digits[0]);
        snprintf(buf + o, size - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
}

/* Replace the value at idx with its printed form, or fail naming n. */
void tpl_to_str(Render *r, int idx, const Node *n)
{
    lua_State *L = r->c.L;
    char buf[64];
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
        } else {
            tpl_fmt_float(lua_tonumber(L, idx), buf, sizeof buf);
            lua_pushstring(L, buf);
        }
        break;
    case LUA_TBOOLEAN:
        lua_pushstring(L, lua_toboolean(L, idx) ? "True" : "False");
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx)) {
            char s[100];
            tpl_fail(&r->c, n->start, "cannot render %s (a userdata)",
                     tpl_src_of(r, n, s, sizeof s));
        }
        lua_pushliteral(L, "None");
        break;
    case LUA_TTABLE: {
        /* a list or mapping prints as Python's repr, as in Ansible */
        luaL_Buffer b;
        lua_pushvalue(L, idx);
        int v = lua_gettop(L);
        luaL_buffinit(L, &b);
        tpl_repr(r, v, n, &b, 0);
        luaL_pushresult(&b);
        lua_replace(L, v);
        break;
    }
    default: {
        char s[100];
        tpl_fail(&r->c, n->start, "cannot render %s (%s)%s", tpl_src_of(r, n, s, sizeof s),
             tpl_a_type(L, idx), lua_type(L, idx) == LUA_TTABLE ? "; use a filter such as join" : "");
    }
    }
    lua_replace(L, idx);
}

int tpl_truthy(Render *r, int idx, const Node *n)
{
    lua_State *L = r->c.L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return 0;
    case LUA_TLIGHTUSERDATA:
        if (!lua_touserdata(L, idx))
            return 0; /* none */
        break;
    case LUA_TBOOLEAN: return lua_toboolean(L, idx);
    case LUA_TNUMBER: return lua_isinteger(L, idx) ? lua_tointeger(L, idx) != 0
                                                    : lua_tonumber(L, idx) != 0;
    case LUA_TSTRING: return lua_rawlen(L, idx) > 0;
    case LUA_TTABLE:
        idx = lua_absindex(L, idx);
        lua_pushnil(L);
        if (lua_next(L, idx)) {
            lua_pop(L, 2);
            return 1;
        }
        return 0;
    default:
        break;
    }
    {
        char s[100];
        tpl_fail(&r->c, n->start, "cannot use %s (%s) as a condition", tpl_src_of(r, n, s, sizeof s),
             tpl_a_type(L, idx));
    }
}

/* obj at -2, key at -1 (a string or an integer): replace both with the
 * placeholder nil and record "undefined key/index ..." (objtype: why). */
int tpl_missing(Render *r, const Node *n, const char *objtype, lua_Integer len)
{
    lua_State *L = r->c.L;
    char obj[100], key[120], buf[100], why[64] = "";
    tpl_src_of(r, n->a, obj, sizeof obj);
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t klen;
        const char *ks = lua_tolstring(L, -1, &klen);
        snprintf(key, sizeof key, "key '%s'", tpl_excerpt(buf, sizeof buf, ks, klen));
    } else {
        snprintf(key, sizeof key, "index " LUA_INTEGER_FMT, lua_tointeger(L, -1));
    }
    if (objtype)
        snprintf(why, sizeof why, " (%s)", objtype);
    else if (len >= 0)
        snprintf(why, sizeof why, " (length " LUA_INTEGER_FMT ")", len);
    lua_pop(L, 2);
    return tpl_undefined(r, n->pos, "undefined %s in %s%s", key, obj, why);
}

/* obj at -2, key at -1: replace both with obj[key] (raw, 0-based integers). */
static int index_value(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    int kt = lua_type(L, -1), isint = 0;
    lua_Integer k = lua_tointegerx(L, -1, &isint);
    if (kt != LUA_TSTRING && !(kt == LUA_TNUMBER && isint)) {
        char obj[100];
        tpl_src_of(r, n->a, obj, sizeof obj);
        if (kt == LUA_TNUMBER)
            tpl_fail(&r->c, n->pos, "index into %s is not an integer", obj);
        tpl_fail(&r->c, n->pos, "cannot use %s as a key into %s", tpl_a_type(L, -1), obj);
    }
    if (lua_type(L, -2) != LUA_TTABLE)
        return tpl_missing(r, n, tpl_a_type(L, -2), -1);
    if (kt == LUA_TSTRING) {
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TNIL) {
            lua_pop(L, 1);
            return tpl_missing(r, n, NULL, -1);
        }
    } else {
        lua_Integer len = (lua_Integer)lua_rawlen(L, -2);
        lua_Integer i = k < 0 ? k + len : k;
        if (i < 0 || i >= LUA_MAXINTEGER)
            return tpl_missing(r, n, NULL, len);
        if (lua_rawgeti(L, -2, i + 1) == LUA_TNIL) {
            lua_pop(L, 1);
            return tpl_missing(r, n, NULL, len);
        }
    }
    lua_replace(L, -3);
    lua_pop(L, 1);
    return 1;
}

static int lookup(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    int k;
    for (k = r->nscopes - 1; k >= 0; k--) {
        const Scope *s = &r->scopes[k];
        if (s->len == n->len && memcmp(s->name, n->s, n->len) == 0) {
            lua_pushvalue(L, s->slot);
            if (!lua_isnil(L, -1))
                return 1;
            break; /* a hole in the list being iterated */
        }
    }
    if (k < 0) {
        lua_pushlstring(L, n->s, n->len);
        if (lua_rawget(L, r->vars) != LUA_TNIL)
            return 1;
    }
    lua_pop(L, 1);
    char buf[100];
    return tpl_undefined(r, n->pos, "undefined variable '%s'", tpl_excerpt(buf, sizeof buf, n->s, n->len));
}

typedef struct SortKey {
    int isnum, isint;
    lua_Integer i;
    double d;
    const char *s;
    size_t len;
    lua_Integer idx;
} SortKey;

static int cmp_bytes(const SortKey *a, const SortKey *b, int fold)
{
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t k = 0; k < n; k++) {
        int x = (unsigned char)a->s[k], y = (unsigned char)b->s[k];
        if (fold) {
            x = x >= 'A' && x <= 'Z' ? x + 32 : x;
            y = y >= 'A' && y <= 'Z' ? y + 32 : y;
        }
        if (x != y)
            return x < y ? -1 : 1;
    }
    return a->len < b->len ? -1 : a->len > b->len;
}

static int cmp_key(const SortKey *a, const SortKey *b, int fold)
{
    if (a->isnum != b->isnum)
        return a->isnum ? -1 : 1;
    if (a->isnum) {
        if (a->isint && b->isint)
            return a->i < b->i ? -1 : a->i > b->i;
        return a->d < b->d ? -1 : a->d > b->d;
    }
    int c = fold ? cmp_bytes(a, b, 1) : 0;
    return c ? c : cmp_bytes(a, b, 0);
}

static int cmp_exact(const void *a, const void *b)
{
    return cmp_key(a, b, 0);
}

static int cmp_fold(const void *a, const void *b)
{
    return cmp_key(a, b, 1);
}

/* Push a sequence of the keys of the table at idx, sorted. */
void tpl_sorted_keys(Render *r, int idx, int fold, const Node *n)
{
    lua_State *L = r->c.L;
    idx = lua_absindex(L, idx);
    if (literal_order(L, idx)) { /* a copy: callers may reorder it */
        lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
        lua_createtable(L, (int)len, 0);
        for (lua_Integer k = 1; k <= len; k++) {
            lua_rawgeti(L, -2, k);
            lua_rawseti(L, -2, k);
        }
        lua_remove(L, -2);
        return;
    }
    lua_newtable(L); /* our own copy anchors the key strings while we sort */
    int keys = lua_gettop(L);
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int t = lua_type(L, -1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER) {
            char s[100];
            tpl_fail(&r->c, n->start, "cannot sort the keys of %s: a key is %s",
                 tpl_src_of(r, n, s, sizeof s), tpl_a_type(L, -1));
        }
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++count);
    }
    SortKey *arr = lua_newuserdatauv(L, (size_t)count * sizeof *arr + 1, 0);
    for (lua_Integer k = 0; k < count; k++) {
        SortKey *e = &arr[k];
        memset(e, 0, sizeof *e);
        e->idx = k + 1;
        if (lua_rawgeti(L, keys, k + 1) == LUA_TNUMBER) {
            e->isnum = 1;
            e->isint = lua_isinteger(L, -1);
            e->i = lua_tointeger(L, -1);
            e->d = lua_tonumber(L, -1);
        } else {
            e->s = lua_tolstring(L, -1, &e->len);
        }
        lua_pop(L, 1);
    }
    qsort(arr, (size_t)count, sizeof *arr, fold ? cmp_fold : cmp_exact);
    lua_createtable(L, (int)count, 0);
    for (lua_Integer k = 0; k < count; k++) {
        lua_rawgeti(L, keys, arr[k].idx);
        lua_rawseti(L, -2, k + 1);
    }
    lua_replace(L, keys);
    lua_pop(L, 1);
}

/* Replace the table at idx with a list of {key, value} pairs sorted by key. */
void tpl_sorted_pairs(Render *r, int idx, int fold, const Node *n)
{
    lua_State *L = r->c.L;
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) {
        char s[100];
        tpl_fail(&r->c, n->pos, "%s needs a mapping, got %s (%s)",
             n->kind == N_ITEMS ? "items()" : "dictsort", tpl_src_of(r, n->a, s, sizeof s),
             tpl_a_type(L, idx));
    }
    tpl_sorted_keys(r, idx, fold, n->a);
    lua_Integer count = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer k = 1; k <= count; k++) {
        lua_createtable(L, 2, 0);
        lua_rawgeti(L, -2, k);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, 1);
        lua_rawget(L, idx);
        lua_rawseti(L, -2, 2);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, r->tuples); /* Python's items() gives tuples: printed (k, v) */
        lua_rawseti(L, -2, k);
    }
    lua_replace(L, idx);
}

/* Make the value at idx a sequence to iterate: lists stay, mappings become
 * their sorted keys, anything else fails. */
void tpl_as_list(Render *r, int idx, const Node *n)
{
    lua_State *L = r->c.L;
    char s[100];
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE)
        tpl_fail(&r->c, n->start, "cannot iterate over %s (%s)", tpl_src_of(r, n, s, sizeof s),
             tpl_a_type(L, idx));
    if (lua_rawlen(L, idx) > 0)
        return;
    tpl_sorted_keys(r, idx, 0, n);
    lua_replace(L, idx);
}

int tpl_is_none(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && !lua_touserdata(L, idx);
}

const char tpl_orders_key = 0;

/* Push the keys of a mapping made by a {...} literal, in their order (as a
 * Python dict keeps them); returns 0 (nothing pushed) for other tables. */
static int literal_order(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &tpl_orders_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushvalue(L, idx);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_pop(L, 2);
        return 0;
    }
    lua_remove(L, -2);
    return 1;
}

/* A sequence (Jinja's list): a table with items 1..n, or an empty table
 * that no {} literal made. */
int tpl_is_list(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return 0;
    if (lua_rawlen(L, idx) > 0)
        return 1;
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    if (lua_next(L, idx)) {
        lua_pop(L, 2);
        return 0;
    }
    if (literal_order(L, idx)) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

/* A number as Python sees it: booleans are the integers 0 and 1. */
int tpl_as_num(lua_State *L, int idx, int *isint, lua_Integer *i, double *d)
{
    if (lua_type(L, idx) == LUA_TBOOLEAN) {
        *isint = 1;
        *i = lua_toboolean(L, idx);
        *d = (double)*i;
        return 1;
    }
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
    *isint = lua_isinteger(L, idx);
    *i = lua_tointeger(L, idx);
    *d = lua_tonumber(L, idx);
    return 1;
}

/* Python's ==: 1 == 1.0 == True, lists and mappings by content. */
int tpl_py_eq(lua_State *L, int a, int b, int depth)
{
    int ia, ib;
    lua_Integer xa, xb;
    double da, db;
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    if (tpl_as_num(L, a, &ia, &xa, &da) && tpl_as_num(L, b, &ib, &xb, &db))
        return ia && ib ? xa == xb : da == db;
    if (lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE)
        return lua_rawequal(L, a, b);
    if (lua_rawequal(L, a, b))
        return 1;
    if (depth > MAX_DEPTH)
        return 0;
    luaL_checkstack(L, 6, "template comparison");
    lua_Integer la = (lua_Integer)lua_rawlen(L, a), lb = (lua_Integer)lua_rawlen(L, b);
    if (la != lb)
        return 0;
    if (la > 0) {
        for (lua_Integer k = 1; k <= la; k++) {
            lua_rawgeti(L, a, k);
            lua_rawgeti(L, b, k);
            int eq = tpl_py_eq(L, -2, -1, depth + 1);
            lua_pop(L, 2);
            if (!eq)
                return 0;
        }
        return 1;
    }
    lua_Integer na = 0, nb = 0;
    lua_pushnil(L);
    while (lua_next(L, a)) {
        na++;
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        int eq = !lua_isnil(L, -1) && tpl_py_eq(L, -2, -1, depth + 1);
        lua_pop(L, 2);
        if (!eq) {
            lua_pop(L, 1);
            return 0;
        }
    }
    lua_pushnil(L);
    while (lua_next(L, b)) {
        nb++;
        lua_pop(L, 1);
    }
    return na == nb;
}

/* Python's ordering of two values: numbers, strings (by code point, which
 * UTF-8 byte order is), lists lexicographically; 0 when they do not order
 * (the caller fails), *res -1/0/1, or 2 when a NaN is involved. */
int tpl_py_cmp(Render *r, const Node *n, int a, int b, int *res)
{
    lua_State *L = r->c.L;
    int ia, ib;
    lua_Integer xa, xb;
    double da, db;
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    if (tpl_as_num(L, a, &ia, &xa, &da) && tpl_as_num(L, b, &ib, &xb, &db)) {
        if (ia && ib)
            *res = xa < xb ? -1 : xa > xb;
        else if (isnan(da) || isnan(db))
            *res = 2;
        else
            *res = da < db ? -1 : da > db;
        return 1;
    }
    if (lua_type(L, a) == LUA_TSTRING && lua_type(L, b) == LUA_TSTRING) {
        size_t la, lb;
        const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
        int c = memcmp(sa, sb, la < lb ? la : lb);
        *res = c < 0 ? -1 : c > 0 ? 1 : la < lb ? -1 : la > lb;
        return 1;
    }
    if (tpl_is_list(L, a) && tpl_is_list(L, b)) {
        lua_Integer la = (lua_Integer)lua_rawlen(L, a), lb = (lua_Integer)lua_rawlen(L, b);
        luaL_checkstack(L, 4, "template comparison");
        for (lua_Integer k = 1; k <= la && k <= lb; k++) {
            lua_rawgeti(L, a, k);
            lua_rawgeti(L, b, k);
            if (!tpl_py_eq(L, -2, -1, 0)) {
                int ok = tpl_py_cmp(r, n, -2, -1, res);
                lua_pop(L, 2);
                return ok;
            }
            lua_pop(L, 2);
        }
        *res = la < lb ? -1 : la > lb;
        return 1;
    }
    return 0;
}

static int compare(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    int c;
    if (n->op == OP_EQ || n->op == OP_NE)
        return tpl_py_eq(L, -2, -1, 0) == (n->op == OP_EQ);
    if (!tpl_py_cmp(r, n, -2, -1, &c))
        tpl_fail(&r->c, n->pos, "cannot compare %s with %s", tpl_a_type(L, -2), tpl_a_type(L, -1));
    if (c == 2)
        return 0; /* NaN: every ordering is false */
    switch (n->op) {
    case OP_LT: return c < 0;
    case OP_GT: return c > 0;
    case OP_LE: return c <= 0;
    default: return c >= 0;
    }
}

/* needle at -2, haystack at -1 */
int tpl_contains(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    if (lua_type(L, -1) == LUA_TSTRING) {
        if (lua_type(L, -2) != LUA_TSTRING)
            tpl_fail(&r->c, n->pos, "'in' a string needs a string on the left, got %s",
                 tpl_a_type(L, -2));
        size_t nl, hl;
        const char *nd = lua_tolstring(L, -2, &nl), *hs = lua_tolstring(L, -1, &hl);
        for (size_t k = 0; nl <= hl && k <= hl - nl; k++)
            if (memcmp(hs + k, nd, nl) == 0)
                return 1;
        return 0;
    }
    if (lua_type(L, -1) != LUA_TTABLE)
        tpl_fail(&r->c, n->pos, "'in' needs a list, mapping or string on the right, got %s",
             tpl_a_type(L, -1));
    lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
    if (len == 0) {
        int found;
        lua_pushvalue(L, -2);
        found = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 1);
        return found;
    }
    for (lua_Integer k = 1; k <= len; k++) {
        lua_rawgeti(L, -1, k);
        int eq = tpl_py_eq(L, -1, -3, 0);
        lua_pop(L, 1);
        if (eq)
            return 1;
    }
    return 0;
}

int tpl_eval(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    luaL_checkstack(L, 10, "template expression");
    switch (n->kind) {
    case N_STR:
        lua_pushlstring(L, n->s, n->len);
        return 1;
    case N_INT:
        lua_pushinteger(L, n->i);
        return 1;
    case N_FLOAT:
        lua_pushnumber(L, n->f);
        return 1;
    case N_BOOL:
        lua_pushboolean(L, (int)n->i);
        return 1;
    case N_NONE:
        lua_pushlightuserdata(L, NULL);
        return 1;
    case N_ITEM:
        lua_pushvalue(L, r->item);
        return 1;
    case N_DICT: {
        lua_Integer nkeys = 0;
        lua_newtable(L);
        lua_newtable(L); /* the keys in order */
        for (const Node *x = n->a; x; x = x->next) {
            tpl_eval_strict(r, x->a);
            int kt = lua_type(L, -1);
            if (kt != LUA_TSTRING && kt != LUA_TNUMBER) {
                char s[100];
                tpl_fail(&r->c, x->a->start, "cannot use %s (%s) as a key", tpl_src_of(r, x->a, s,
                         sizeof s), tpl_a_type(L, -1));
            }
            if (kt == LUA_TNUMBER && isnan(lua_tonumber(L, -1)))
                tpl_fail(&r->c, x->a->start, "cannot use nan as a key");
            tpl_eval_strict(r, x->b);
            lua_pushvalue(L, -2);
            int seen = lua_rawget(L, -5) != LUA_TNIL;
            lua_pop(L, 1);
            if (!seen) { /* a repeated key keeps its first place, as in a dict */
                lua_pushvalue(L, -2);
                lua_rawseti(L, -4, ++nkeys);
            }
            lua_rawset(L, -4);
        }
        lua_rawgetp(L, LUA_REGISTRYINDEX, &tpl_orders_key);
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -3);
        lua_rawset(L, -3);
        lua_pop(L, 2);
        return 1;
    }
    case N_ARITH:
        tpl_eval_strict(r, n->a);
        tpl_eval_strict(r, n->b);
        tpl_arith(r, n);
        return 1;
    case N_NEG:
    case N_POS: {
        int isint;
        lua_Integer i;
        double d;
        tpl_eval_strict(r, n->a);
        if (!tpl_as_num(L, -1, &isint, &i, &d))
            tpl_fail(&r->c, n->pos, "bad operand type for unary %c: %s", n->kind == N_NEG ? '-' : '+',
                     tpl_a_type(L, -1));
        lua_pop(L, 1);
        if (n->kind == N_POS)
            isint ? lua_pushinteger(L, i) : lua_pushnumber(L, d);
        else if (isint && i == LUA_MININTEGER)
            tpl_fail(&r->c, n->pos, "integer overflow in unary -");
        else
            isint ? lua_pushinteger(L, -i) : lua_pushnumber(L, -d);
        return 1;
    }
    case N_LIST: {
        lua_Integer k = 0;
        lua_newtable(L);
        for (const Node *x = n->a; x; x = x->next) {
            tpl_eval_strict(r, x);
            lua_rawseti(L, -2, ++k);
        }
        if (n->op) { /* a tuple literal: a list that prints as (a, b) */
            lua_pushvalue(L, -1);
            lua_pushboolean(L, 1);
            lua_rawset(L, r->tuples);
        }
        return 1;
    }
    case N_SLICE:
        return tpl_slice(r, n);
    case N_NAME:
        return lookup(r, n);
    case N_GETATTR:
    case N_GETITEM:
        if (!eval(r, n->a))
            return 0; /* the base's reason stays recorded */
        if (n->kind == N_GETATTR)
            lua_pushlstring(L, n->s, n->len);
        else
            tpl_eval_strict(r, n->b);
        return index_value(r, n);
    case N_ITEMS:
        tpl_eval_strict(r, n->a);
        tpl_sorted_pairs(r, -1, 0, n);
        return 1;
    case N_NOT: {
        tpl_eval_strict(r, n->a);
        int t = tpl_truthy(r, -1, n->a);
        lua_pop(L, 1);
        lua_pushboolean(L, !t);
        return 1;
    }
    case N_AND:
    case N_OR: {
        tpl_eval_strict(r, n->a);
        int t = tpl_truthy(r, -1, n->a);
        if (t == (n->kind == N_OR))
            return 1; /* Python semantics: the deciding operand is the value */
        lua_pop(L, 1);
        return eval(r, n->b);
    }
    case N_COND: {
        tpl_eval_strict(r, n->a);
        int t = tpl_truthy(r, -1, n->a);
        lua_pop(L, 1);
        if (!t && !n->c) {
            int line, col;
            tpl_line_col(&r->c, n->pos, &line, &col);
            tpl_undefined(r, n->pos, "the inline if-expression on line %d evaluated to "
                          "false and no else section was defined", line);
            r->undef_soft = 1; /* Ansible prints it as nothing */
            return 0;
        }
        return eval(r, t ? n->b : n->c);
    }
    case N_CMP:
    case N_IN: {
        tpl_eval_strict(r, n->a);
        tpl_eval_strict(r, n->b);
        int v = n->kind == N_CMP ? compare(r, n) : tpl_contains(r, n) != n->neg;
        lua_pop(L, 2);
        lua_pushboolean(L, v);
        return 1;
    }
    case N_CONCAT: {
        size_t la, lb;
        tpl_eval_strict(r, n->a);
        tpl_to_str(r, -1, n->a);
        tpl_eval_strict(r, n->b);
        tpl_to_str(r, -1, n->b);
        lua_tolstring(L, -2, &la);
        lua_tolstring(L, -1, &lb);
        tpl_add_work(r, n, la + lb);
        lua_concat(L, 2);
        return 1;
    }
    case N_FILTER:
        return tpl_eval_filter(r, n);
    case N_TEST:
        return tpl_eval_test(r, n);
    default:
        return luaL_error(L, "template: bad node %d", n->kind);
    }
}
