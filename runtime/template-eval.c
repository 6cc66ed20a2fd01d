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
    lua_pushnil(r->c.L);
    return 0;
}

static void add_work(Render *r, const Node *n, size_t bytes)
{
    if (bytes > MAX_OUTPUT)
        tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
    r->work += bytes;
    if (r->work > MAX_WORK)
        tpl_fail(&r->c, n->pos, "template builds more than %zu MiB of strings", MAX_WORK >> 20);
}

static int eval(Render *r, const Node *n);

void tpl_eval_strict(Render *r, const Node *n)
{
    if (!eval(r, n))
        tpl_fail(&r->c, r->undef_pos, "%s", r->undef_msg);
}

static void fmt_float(double d, char *buf, size_t size)
{
    if (isnan(d)) {
        snprintf(buf, size, "nan");
    } else if (isinf(d)) {
        snprintf(buf, size, d > 0 ? "inf" : "-inf");
    } else if (d == floor(d) && fabs(d) < 1e16) {
        snprintf(buf, size, "%.0f", d == 0 ? 0.0 : d);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, size, "%.*g", prec, d);
            if (strtod(buf, NULL) == d)
                break;
        }
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
            fmt_float(lua_tonumber(L, idx), buf, sizeof buf);
            lua_pushstring(L, buf);
        }
        break;
    case LUA_TBOOLEAN:
        lua_pushstring(L, lua_toboolean(L, idx) ? "True" : "False");
        break;
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
    default: {
        char s[100];
        tpl_fail(&r->c, n->start, "cannot use %s (%s) as a condition", tpl_src_of(r, n, s, sizeof s),
             tpl_a_type(L, idx));
    }
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
static void sorted_keys(Render *r, int idx, int fold, const Node *n)
{
    lua_State *L = r->c.L;
    idx = lua_absindex(L, idx);
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
static void sorted_pairs(Render *r, int idx, int fold, const Node *n)
{
    lua_State *L = r->c.L;
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) {
        char s[100];
        tpl_fail(&r->c, n->pos, "%s needs a mapping, got %s (%s)",
             n->kind == N_ITEMS ? "items()" : "dictsort", tpl_src_of(r, n->a, s, sizeof s),
             tpl_a_type(L, idx));
    }
    sorted_keys(r, idx, fold, n->a);
    lua_Integer count = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer k = 1; k <= count; k++) {
        lua_createtable(L, 2, 0);
        lua_rawgeti(L, -2, k);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, 1);
        lua_rawget(L, idx);
        lua_rawseti(L, -2, 2);
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
    sorted_keys(r, idx, 0, n);
    lua_replace(L, idx);
}

static int compare(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    if (n->op == OP_EQ || n->op == OP_NE)
        return lua_rawequal(L, -2, -1) == (n->op == OP_EQ);
    int ta = lua_type(L, -2), tb = lua_type(L, -1), c;
    if (ta == LUA_TNUMBER && tb == LUA_TNUMBER) {
        c = lua_compare(L, -2, -1, LUA_OPLT) ? -1 : lua_compare(L, -2, -1, LUA_OPEQ) ? 0 : 1;
        if (c == 1 && !lua_compare(L, -1, -2, LUA_OPLT))
            return 0; /* NaN: every ordering is false */
    } else if (ta == LUA_TSTRING && tb == LUA_TSTRING) {
        SortKey a = {0}, b = {0};
        a.s = lua_tolstring(L, -2, &a.len);
        b.s = lua_tolstring(L, -1, &b.len);
        c = cmp_bytes(&a, &b, 0);
    } else {
        tpl_fail(&r->c, n->pos, "cannot compare %s with %s", tpl_a_type(L, -2), tpl_a_type(L, -1));
    }
    switch (n->op) {
    case OP_LT: return c < 0;
    case OP_GT: return c > 0;
    case OP_LE: return c <= 0;
    default: return c >= 0;
    }
}

/* needle at -2, haystack at -1 */
static int contains(Render *r, const Node *n)
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
        int eq = lua_rawequal(L, -1, -3);
        lua_pop(L, 1);
        if (eq)
            return 1;
    }
    return 0;
}

static void push_indent(Render *r, const Node *n, int first, int blank)
{
    lua_State *L = r->c.L;
    size_t len, wlen, lines = 1;
    const char *s = lua_tolstring(L, -2, &len), *w = lua_tolstring(L, -1, &wlen);
    for (size_t k = 0; k < len; k++)
        lines += s[k] == '\n';
    if (len > MAX_OUTPUT || (wlen && lines > (MAX_OUTPUT - len) / wlen))
        tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
    add_work(r, n, len + lines * wlen);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    /* Jinja: every line but the first (first=true: that one too) is indented;
     * empty lines stay empty unless blank=true */
    for (size_t k = 0, line = 0;; line++) {
        const char *nl = memchr(s + k, '\n', len - k);
        size_t e = nl ? (size_t)(nl - s) : len;
        if (line == 0 ? first : (blank || e > k))
            luaL_addlstring(&b, w, wlen);
        luaL_addlstring(&b, s + k, e - k);
        if (!nl)
            break;
        luaL_addchar(&b, '\n');
        k = e + 1;
    }
    luaL_pushresult(&b);
}

/* Shell-quote like Python's shlex.quote (Ansible's quote filter). */
static void push_quote(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    size_t len, extra = 2;
    const char *s = lua_tolstring(L, -1, &len);
    int safe = len > 0;
    for (size_t k = 0; k < len; k++) {
        char ch = s[k];
        if (!(tpl_is_alpha(ch) || tpl_is_digit(ch) || strchr("@%+=:,./-", ch)) || ch == '\0')
            safe = 0;
        if (ch == '\'')
            extra += 4;
    }
    if (safe)
        return;
    add_work(r, n, len + extra);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '\'');
    for (size_t k = 0; k < len; k++) {
        if (s[k] == '\'')
            luaL_addstring(&b, "'\"'\"'");
        else
            luaL_addchar(&b, s[k]);
    }
    luaL_addchar(&b, '\'');
    luaL_pushresult(&b);
    lua_replace(L, -2);
}

/* operand at -3, old at -2, new at -1 (all strings): push the result */
static void push_replace(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    size_t len, ol, nl, count = 0;
    const char *s = lua_tolstring(L, -3, &len);
    const char *o = lua_tolstring(L, -2, &ol), *w = lua_tolstring(L, -1, &nl);
    if (ol == 0) {
        count = len + 1; /* Python puts `new` around every character */
    } else {
        for (size_t k = 0; k + ol <= len;)
            if (memcmp(s + k, o, ol) == 0)
                count++, k += ol;
            else
                k++;
    }
    if (len > MAX_OUTPUT || (nl && count > MAX_OUTPUT / nl))
        tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
    add_work(r, n, len + count * nl);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t k = 0; k < len;) {
        if (ol == 0) {
            luaL_addlstring(&b, w, nl);
            luaL_addchar(&b, s[k++]);
        } else if (k + ol <= len && memcmp(s + k, o, ol) == 0) {
            luaL_addlstring(&b, w, nl);
            k += ol;
        } else {
            luaL_addchar(&b, s[k++]);
        }
    }
    if (ol == 0)
        luaL_addlstring(&b, w, nl);
    luaL_pushresult(&b);
}

static int eval_filter(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    const Node *const *argv = (const Node *const *)n->argv;
    int top = lua_gettop(L);
    if (n->op == F_DEFAULT) {
        int ok = eval(r, n->a);
        if (ok && argv[1]) {
            tpl_eval_strict(r, argv[1]);
            int boolean = tpl_truthy(r, -1, argv[1]);
            lua_pop(L, 1);
            if (boolean)
                ok = tpl_truthy(r, -1, n->a);
        }
        if (ok)
            return 1;
        lua_pop(L, 1);
        if (argv[0])
            return eval(r, argv[0]);
        lua_pushliteral(L, "");
        return 1;
    }
    tpl_eval_strict(r, n->a);
    int v = top + 1;
    size_t len;
    const char *s;
    switch (n->op) {
    case F_JOIN: {
        tpl_as_list(r, v, n->a);
        if (argv[0]) {
            tpl_eval_strict(r, argv[0]);
            tpl_to_str(r, -1, argv[0]);
        } else {
            lua_pushliteral(L, "");
        }
        size_t seplen, total = 0;
        const char *sep = lua_tolstring(L, v + 1, &seplen);
        lua_Integer count = (lua_Integer)lua_rawlen(L, v);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (lua_Integer k = 1; k <= count; k++) {
            /* the separator before pushing the item: the buffer may live on top */
            if (k > 1)
                luaL_addlstring(&b, sep, seplen);
            int t = lua_rawgeti(L, v, k);
            if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN) {
                char o[100];
                tpl_fail(&r->c, n->pos, "cannot join %s: item " LUA_INTEGER_FMT " is %s",
                     tpl_src_of(r, n->a, o, sizeof o), k - 1, tpl_a_type(L, -1));
            }
            tpl_to_str(r, -1, n->a);
            lua_tolstring(L, -1, &len);
            total += len + (k > 1 ? seplen : 0);
            if (total > MAX_OUTPUT)
                tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
            luaL_addvalue(&b);
        }
        add_work(r, n, total);
        luaL_pushresult(&b);
        break;
    }
    case F_UPPER:
    case F_LOWER: {
        tpl_to_str(r, v, n->a);
        s = lua_tolstring(L, v, &len);
        luaL_Buffer b;
        char *d = luaL_buffinitsize(L, &b, len);
        for (size_t k = 0; k < len; k++) {
            char ch = s[k];
            if (n->op == F_UPPER && ch >= 'a' && ch <= 'z')
                ch = (char)(ch - 32);
            else if (n->op == F_LOWER && ch >= 'A' && ch <= 'Z')
                ch = (char)(ch + 32);
            d[k] = ch;
        }
        luaL_pushresultsize(&b, len);
        add_work(r, n, len);
        break;
    }
    case F_INDENT: {
        tpl_to_str(r, v, n->a);
        if (!argv[0]) {
            lua_pushliteral(L, "    ");
        } else {
            tpl_eval_strict(r, argv[0]);
            if (lua_type(L, -1) == LUA_TNUMBER) {
                int isint;
                lua_Integer w = lua_tointegerx(L, -1, &isint);
                if (!isint || w > (lua_Integer)MAX_OUTPUT)
                    tpl_fail(&r->c, argv[0]->pos, "indent width must be an integer below 64 Mi");
                lua_pop(L, 1);
                luaL_Buffer b;
                char *d = luaL_buffinitsize(L, &b, w > 0 ? (size_t)w : 0);
                if (w > 0)
                    memset(d, ' ', (size_t)w);
                luaL_pushresultsize(&b, w > 0 ? (size_t)w : 0);
            } else if (lua_type(L, -1) != LUA_TSTRING) {
                tpl_fail(&r->c, argv[0]->pos, "indent width must be a number or a string, got %s",
                     tpl_a_type(L, -1));
            }
        }
        int first = 0, blank = 0;
        for (int k = 1; k <= 2; k++) {
            if (!argv[k])
                continue;
            tpl_eval_strict(r, argv[k]);
            *(k == 1 ? &first : &blank) = tpl_truthy(r, -1, argv[k]);
            lua_pop(L, 1);
        }
        push_indent(r, n, first, blank);
        break;
    }
    case F_LENGTH:
        if (lua_type(L, v) == LUA_TSTRING) {
            lua_Integer chars = 0;
            s = lua_tolstring(L, v, &len);
            for (size_t k = 0; k < len; k++)
                chars += ((unsigned char)s[k] & 0xC0) != 0x80;
            lua_pushinteger(L, chars);
        } else if (lua_type(L, v) == LUA_TTABLE) {
            lua_Integer count = (lua_Integer)lua_rawlen(L, v);
            if (count == 0) {
                lua_pushnil(L);
                while (lua_next(L, v)) {
                    lua_pop(L, 1);
                    count++;
                }
            }
            lua_pushinteger(L, count);
        } else {
            char o[100];
            tpl_fail(&r->c, n->pos, "length of %s (%s) is not defined",
                 tpl_src_of(r, n->a, o, sizeof o), tpl_a_type(L, v));
        }
        break;
    case F_STRING:
        tpl_to_str(r, v, n->a);
        lua_pushvalue(L, v);
        break;
    case F_TRIM: {
        tpl_to_str(r, v, n->a);
        s = lua_tolstring(L, v, &len);
        size_t b = 0, e = len;
        while (b < e && tpl_is_ws(s[b]))
            b++;
        while (e > b && tpl_is_ws(s[e - 1]))
            e--;
        lua_pushlstring(L, s + b, e - b);
        break;
    }
    case F_QUOTE:
        tpl_to_str(r, v, n->a);
        lua_pushvalue(L, v);
        push_quote(r, n);
        break;
    case F_REPLACE:
        tpl_to_str(r, v, n->a);
        tpl_eval_strict(r, argv[0]);
        tpl_to_str(r, -1, argv[0]);
        tpl_eval_strict(r, argv[1]);
        tpl_to_str(r, -1, argv[1]);
        push_replace(r, n);
        break;
    case F_DICTSORT: {
        int fold = 1;
        if (argv[0]) {
            tpl_eval_strict(r, argv[0]);
            fold = !tpl_truthy(r, -1, argv[0]);
            lua_pop(L, 1);
        }
        sorted_pairs(r, v, fold, n);
        lua_pushvalue(L, v);
        break;
    }
    }
    lua_replace(L, v);
    lua_settop(L, v);
    return 1;
}

static int eval(Render *r, const Node *n)
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
    case N_LIST: {
        lua_Integer k = 0;
        lua_newtable(L);
        for (const Node *x = n->a; x; x = x->next) {
            tpl_eval_strict(r, x);
            lua_rawseti(L, -2, ++k);
        }
        return 1;
    }
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
        sorted_pairs(r, -1, 0, n);
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
        return eval(r, t ? n->b : n->c);
    }
    case N_CMP:
    case N_IN: {
        tpl_eval_strict(r, n->a);
        tpl_eval_strict(r, n->b);
        int v = n->kind == N_CMP ? compare(r, n) : contains(r, n) != n->neg;
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
        add_work(r, n, la + lb);
        lua_concat(L, 2);
        return 1;
    }
    case N_FILTER:
        return eval_filter(r, n);
    case N_TEST: {
        int defined = eval(r, n->a);
        lua_pop(L, 1);
        lua_pushboolean(L, defined != n->neg);
        return 1;
    }
    default:
        return luaL_error(L, "template: bad node %d", n->kind);
    }
}
