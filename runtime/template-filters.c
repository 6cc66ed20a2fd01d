/*
 * template-filters.c: the filters of the template family (`x|name(args)`);
 * the table of their names and parameters is in template-tests.c.
 */
#include "template-internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define eval tpl_eval

/* ---- helpers ---- */

static void need_string(Render *r, const Node *n, int idx)
{
    tpl_to_str(r, idx, n->a);
}

void tpl_need_list(Render *r, const Node *n, int idx)
{
    lua_State *L = r->c.L;
    if (lua_type(L, idx) == LUA_TSTRING)
        tpl_utf8_chars(r, idx, n->a);
    else
        tpl_as_list(r, idx, n->a);
}

static lua_Integer int_arg(Render *r, const Node *a, lua_Integer dflt)
{
    lua_State *L = r->c.L;
    if (!a)
        return dflt;
    tpl_eval_strict(r, a);
    int isint = 0;
    lua_Integer v = lua_type(L, -1) == LUA_TBOOLEAN ? lua_toboolean(L, -1)
                  : lua_tointegerx(L, -1, &isint);
    if (!isint && lua_type(L, -1) != LUA_TBOOLEAN)
        tpl_fail(&r->c, a->start, "an integer is needed here, got %s", tpl_a_type(L, -1));
    lua_pop(L, 1);
    return v;
}

static int bool_arg(Render *r, const Node *a, int dflt)
{
    if (!a)
        return dflt;
    tpl_eval_strict(r, a);
    int t = tpl_truthy(r, -1, a);
    lua_pop(r->c.L, 1);
    return t;
}

/* Push the string argument a (or dflt when absent). */
static void str_arg(Render *r, const Node *a, const char *dflt)
{
    if (!a) {
        lua_pushstring(r->c.L, dflt);
        return;
    }
    tpl_eval_strict(r, a);
    tpl_to_str(r, -1, a);
}

/* Push item[attr] for a dotted attribute path ("a.b", "0"), or nil with
 * the reason recorded. */
static int get_attr(Render *r, const Node *n, int item, const char *attr, size_t alen)
{
    lua_State *L = r->c.L;
    lua_pushvalue(L, item);
    for (size_t k = 0; k <= alen;) {
        const char *dot = memchr(attr + k, '.', alen - k);
        size_t e = dot ? (size_t)(dot - attr) : alen;
        int digits = e > k;
        for (size_t j = k; j < e; j++)
            digits = digits && tpl_is_digit(attr[j]);
        if (lua_type(L, -1) != LUA_TTABLE) {
            lua_pop(L, 1);
            return tpl_undefined(r, n->pos, "undefined attribute '%.*s' (of %s)", (int)alen, attr,
                                 "a value that is not a mapping");
        }
        if (digits)
            lua_rawgeti(L, -1, strtoll(attr + k, NULL, 10) + 1);
        else {
            lua_pushlstring(L, attr + k, e - k);
            lua_rawget(L, -2);
        }
        lua_replace(L, -2);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            char buf[100];
            return tpl_undefined(r, n->pos, "undefined attribute '%s' in an item",
                                 tpl_excerpt(buf, sizeof buf, attr, alen));
        }
        if (!dot)
            break;
        k = e + 1;
    }
    return 1;
}

/* ---- sorting (stable, as Python's sorted) ---- */

typedef struct SortCtx {
    Render *r;
    const Node *n;
    int keys; /* stack index of the list of sort keys */
    int rev;
} SortCtx;

static int key_cmp(SortCtx *sc, lua_Integer a, lua_Integer b)
{
    lua_State *L = sc->r->c.L;
    int c;
    lua_rawgeti(L, sc->keys, a);
    lua_rawgeti(L, sc->keys, b);
    if (!tpl_py_cmp(sc->r, sc->n, -2, -1, &c))
        tpl_fail(&sc->r->c, sc->n->pos, "cannot sort: cannot compare %s with %s",
                 tpl_a_type(L, -2), tpl_a_type(L, -1));
    lua_pop(L, 2);
    if (c == 2)
        c = 0;
    return sc->rev ? -c : c;
}

static void merge_sort(SortCtx *sc, lua_Integer *idx, lua_Integer *tmp, lua_Integer n)
{
    if (n < 2)
        return;
    lua_Integer h = n / 2;
    merge_sort(sc, idx, tmp, h);
    merge_sort(sc, idx + h, tmp, n - h);
    lua_Integer i = 0, j = h, o = 0;
    while (i < h && j < n)
        tmp[o++] = key_cmp(sc, idx[j], idx[i]) < 0 ? idx[j++] : idx[i++];
    while (i < h)
        tmp[o++] = idx[i++];
    while (j < n)
        tmp[o++] = idx[j++];
    memcpy(idx, tmp, (size_t)n * sizeof *idx);
}

/* Replace the list at `list` with its items sorted by the keys at `keys`. */
static void sort_by_keys(Render *r, const Node *n, int list, int keys, int rev)
{
    lua_State *L = r->c.L;
    lua_Integer len = (lua_Integer)lua_rawlen(L, list);
    lua_Integer *idx = lua_newuserdatauv(L, 2 * (size_t)len * sizeof *idx + 1, 0);
    for (lua_Integer k = 0; k < len; k++)
        idx[k] = k + 1;
    SortCtx sc = {r, n, keys, rev};
    r->iterations += len;
    merge_sort(&sc, idx, idx + len, len);
    lua_createtable(L, (int)len, 0);
    for (lua_Integer k = 0; k < len; k++) {
        lua_rawgeti(L, list, idx[k]);
        lua_rawseti(L, -2, k + 1);
    }
    lua_replace(L, list);
    lua_pop(L, 1);
}

/* Push the sort key of the value at idx: lower-cased when folding. */
static void push_key(Render *r, int idx, int fold)
{
    lua_State *L = r->c.L;
    idx = lua_absindex(L, idx);
    if (fold && lua_type(L, idx) == LUA_TSTRING) { /* Jinja's ignore_case: str.lower() */
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        tpl_push_case(r, NULL, s, len, 0);
        return;
    }
    lua_pushvalue(L, idx);
}

/* Push a list of keys for the items of the list at `list`: the item, or
 * its attribute, folded. */
static void make_keys(Render *r, const Node *n, int list, const Node *attr, int fold)
{
    lua_State *L = r->c.L;
    lua_Integer len = (lua_Integer)lua_rawlen(L, list);
    size_t alen = 0;
    const char *a = NULL;
    if (attr) {
        str_arg(r, attr, "");
        a = lua_tolstring(L, -1, &alen);
    }
    lua_createtable(L, (int)len, 0);
    for (lua_Integer k = 1; k <= len; k++) {
        lua_rawgeti(L, list, k);
        if (a) {
            if (!get_attr(r, n, lua_gettop(L), a, alen))
                tpl_fail(&r->c, r->undef_pos, "%s", r->undef_msg);
            lua_replace(L, -2);
        }
        push_key(r, -1, fold);
        lua_rawseti(L, -3, k);
        lua_pop(L, 1);
    }
    if (a)
        lua_remove(L, -2);
}

/* ---- string filters ---- */

static void push_indent(Render *r, const Node *n, int first, int blank)
{
    lua_State *L = r->c.L;
    size_t len, wlen, lines = 1;
    const char *s = lua_tolstring(L, -2, &len), *w = lua_tolstring(L, -1, &wlen);
    for (size_t k = 0; k < len; k++)
        lines += s[k] == '\n';
    if (len > MAX_OUTPUT || (wlen && lines > (MAX_OUTPUT - len) / wlen))
        tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
    tpl_add_work(r, n, len + lines * wlen);
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
    tpl_add_work(r, n, len + extra);
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

/* operand at -3, old at -2, new at -1 (all strings): push the result,
 * replacing at most `max` occurrences (-1: all), as Python's str.replace */
static void push_replace(Render *r, const Node *n, lua_Integer max)
{
    lua_State *L = r->c.L;
    size_t len, ol, nl, count = 0;
    const char *s = lua_tolstring(L, -3, &len);
    const char *o = lua_tolstring(L, -2, &ol), *w = lua_tolstring(L, -1, &nl);
    if (ol == 0) {
        count = len + 1; /* Python puts `new` around every character */
        if (max >= 0 && (size_t)max < count)
            count = (size_t)max;
    } else {
        for (size_t k = 0; k + ol <= len;)
            if (memcmp(s + k, o, ol) == 0)
                count++, k += ol;
            else
                k++;
        if (max >= 0 && (size_t)max < count)
            count = (size_t)max;
    }
    if (len > MAX_OUTPUT || (nl && count > MAX_OUTPUT / nl))
        tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
    tpl_add_work(r, n, len + count * nl);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t done = 0;
    for (size_t k = 0; k < len;) {
        if (ol == 0 && done < count) {
            luaL_addlstring(&b, w, nl);
            done++;
            size_t c = tpl_utf8_len(s, len, k);
            luaL_addlstring(&b, s + k, c);
            k += c;
        } else if (ol && done < count && k + ol <= len && memcmp(s + k, o, ol) == 0) {
            luaL_addlstring(&b, w, nl);
            k += ol;
            done++;
        } else {
            luaL_addchar(&b, s[k++]);
        }
    }
    if (ol == 0 && done < count)
        luaL_addlstring(&b, w, nl);
    luaL_pushresult(&b);
}


/* ---- filters ---- */

/* Python's int(str, base) and float(str) on a trimmed string; 0 if not. */
static int parse_int(const char *s, size_t len, int base, lua_Integer *out)
{
    size_t b = 0, e = len;
    while (b < e && tpl_is_ws(s[b]))
        b++;
    while (e > b && tpl_is_ws(s[e - 1]))
        e--;
    int neg = 0;
    if (b < e && (s[b] == '+' || s[b] == '-'))
        neg = s[b++] == '-';
    if (b + 1 < e && s[b] == '0') {
        char k = (char)(s[b + 1] | 0x20);
        int pb = k == 'x' ? 16 : k == 'o' ? 8 : k == 'b' ? 2 : 0;
        if (pb && (base == pb || base == 0)) {
            base = pb;
            b += 2;
            if (b < e && s[b] == '_')
                b++;
        }
    }
    if (base == 0)
        base = 10;
    if (b >= e)
        return 0;
    lua_Integer v = 0;
    for (size_t k = b; k < e; k++) {
        if (s[k] == '_' && k > b && k + 1 < e && s[k + 1] != '_')
            continue;
        char ch = (char)(s[k] | 0x20);
        int d = s[k] >= '0' && s[k] <= '9' ? s[k] - '0' : ch >= 'a' && ch <= 'z' ? ch - 'a' + 10 : 99;
        if (d >= base)
            return 0;
        if (v > (LUA_MAXINTEGER - d) / base)
            return 0;
        v = v * base + d;
    }
    *out = neg ? -v : v;
    return 1;
}

static int parse_float(const char *s, size_t len, double *out)
{
    char buf[128];
    size_t n = 0;
    size_t b = 0, e = len;
    while (b < e && tpl_is_ws(s[b]))
        b++;
    while (e > b && tpl_is_ws(s[e - 1]))
        e--;
    if (b >= e || e - b >= sizeof buf)
        return 0;
    for (size_t k = b; k < e; k++) {
        if (s[k] == '_')
            continue;
        if (!(tpl_is_digit(s[k]) || strchr("+-.eEinfatyINFATY", s[k])))
            return 0; /* no hex floats, which strtod would take */
        buf[n++] = s[k];
    }
    buf[n] = '\0';
    char *end;
    *out = strtod(buf, &end);
    return end == buf + n;
}

/* the value at v passed through the filter node fn's definition, applied
 * to each item: map, select, reject and their attr forms */
static void higher(Render *r, const Node *n, int v)
{
    lua_State *L = r->c.L;
    if (tpl_is_none(L, v)) { /* Jinja: map/select over none give nothing */
        lua_newtable(L);
        lua_replace(L, v);
    }
    tpl_need_list(r, n, v);
    lua_Integer len = (lua_Integer)lua_rawlen(L, v), out = 0;
    int saved = r->item, attr = n->op == F_SELECTATTR || n->op == F_REJECTATTR ||
                                (n->op == F_MAP && !n->b);
    size_t alen = 0;
    const char *a = NULL;
    if (attr) {
        str_arg(r, n->argv[0], "");
        a = lua_tolstring(L, -1, &alen);
    }
    lua_newtable(L);
    int res = lua_gettop(L);
    lua_pushnil(L);
    int slot = lua_gettop(L);
    r->item = slot;
    for (lua_Integer k = 1; k <= len; k++) {
        if (++r->iterations > MAX_ITERATIONS)
            tpl_fail(&r->c, n->pos, "more than %ld loop iterations", MAX_ITERATIONS);
        lua_rawgeti(L, v, k);
        lua_replace(L, slot);
        if (n->op == F_MAP) {
            if (n->b) {
                tpl_eval_strict(r, n->b);
            } else if (!get_attr(r, n, slot, a, alen)) {
                if (n->argv[1])
                    tpl_eval_strict(r, n->argv[1]);
                else
                    tpl_fail(&r->c, r->undef_pos, "%s", r->undef_msg);
            }
            lua_rawseti(L, res, ++out);
            continue;
        }
        if (attr) {
            if (!get_attr(r, n, slot, a, alen))
                tpl_fail(&r->c, r->undef_pos, "%s", r->undef_msg);
            lua_replace(L, slot);
        }
        int keep;
        if (n->b) {
            tpl_eval_strict(r, n->b);
            keep = lua_toboolean(L, -1);
            lua_pop(L, 1);
        } else {
            keep = tpl_truthy(r, slot, n);
        }
        if (keep == (n->op == F_SELECT || n->op == F_SELECTATTR)) {
            lua_rawgeti(L, v, k);
            lua_rawseti(L, res, ++out);
        }
    }
    r->item = saved;
    lua_settop(L, res);
    lua_replace(L, v);
    lua_settop(L, v);
}

static void aggregate(Render *r, const Node *n, int v)
{
    lua_State *L = r->c.L;
    const Node *const *argv = (const Node *const *)n->argv;
    tpl_need_list(r, n, v);
    int fold = !bool_arg(r, argv[0], 0);
    make_keys(r, n, v, argv[1], fold);
    int keys = lua_gettop(L);
    lua_Integer len = (lua_Integer)lua_rawlen(L, v), best = 0;
    if (len == 0) {
        tpl_undefined(r, n->pos, "No aggregated item, sequence was empty.");
        return;
    }
    SortCtx sc = {r, n, keys, 0};
    best = 1;
    for (lua_Integer k = 2; k <= len; k++) {
        int c = key_cmp(&sc, k, best);
        if (n->op == F_MIN ? c < 0 : c > 0)
            best = k;
    }
    lua_rawgeti(L, v, best);
}

static void unique(Render *r, const Node *n, int v)
{
    lua_State *L = r->c.L;
    const Node *const *argv = (const Node *const *)n->argv;
    tpl_need_list(r, n, v);
    int fold = !bool_arg(r, argv[0], 0);
    make_keys(r, n, v, argv[1], fold);
    int keys = lua_gettop(L);
    lua_Integer len = (lua_Integer)lua_rawlen(L, v), out = 0;
    lua_newtable(L);
    lua_newtable(L); /* the kept keys */
    for (lua_Integer k = 1; k <= len; k++) {
        int seen = 0;
        lua_rawgeti(L, keys, k);
        for (lua_Integer j = 1; j <= out && !seen; j++) {
            if (++r->iterations > MAX_ITERATIONS)
                tpl_fail(&r->c, n->pos, "more than %ld loop iterations", MAX_ITERATIONS);
            lua_rawgeti(L, -2, j);
            seen = tpl_py_eq(L, -1, -2, 0);
            lua_pop(L, 1);
        }
        if (seen) {
            lua_pop(L, 1);
            continue;
        }
        lua_rawseti(L, -2, ++out);
        lua_rawgeti(L, v, k);
        lua_rawseti(L, -3, out);
    }
    lua_pop(L, 1);
}

static void b64(Render *r, const Node *n, int v, int decode)
{
    lua_State *L = r->c.L;
    size_t len;
    need_string(r, n, v);
    const char *s = lua_tolstring(L, v, &len);
    if (len > MAX_OUTPUT / 2)
        tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
    tpl_add_work(r, n, len * 2);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, 4 * ((len + 2) / 3) + 4);
    if (!decode) {
        int k = len ? EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len) : 0;
        luaL_pushresultsize(&b, (size_t)k);
        return;
    }
    size_t pad = 0;
    while (len > 0 && tpl_is_ws(s[len - 1]))
        len--;
    while (pad < len && pad < 2 && s[len - 1 - pad] == '=')
        pad++;
    int k = len ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len) : 0;
    if (k < 0 || len % 4 != 0)
        tpl_fail(&r->c, n->pos, "b64decode: not base64");
    luaL_pushresultsize(&b, (size_t)k - pad);
}

/* capitalize (all = 0): the first character upper-cased, the rest lower;
 * title (all = 1): so for every word, words starting after blanks and
 * - ( { [ < as Jinja's title splits them. */
static void title_case(Render *r, const Node *n, int v, int all)
{
    lua_State *L = r->c.L;
    size_t len;
    const char *s = lua_tolstring(L, v, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t k = 0;
    while (k < len) {
        /* a separator run stays as it is */
        size_t e = k;
        while (all && e < len && (tpl_is_ws(s[e]) || strchr("-({[<", s[e])) && s[e])
            e++;
        luaL_addlstring(&b, s + k, e - k);
        if (e >= len)
            break;
        size_t c = tpl_utf8_len(s, len, e);
        tpl_push_case(r, n, s + e, c, 1);
        luaL_addvalue(&b);
        size_t w = e + c;
        while (w < len && !(all && (tpl_is_ws(s[w]) || (s[w] && strchr("-({[<", s[w])))))
            w++;
        tpl_push_case(r, n, s + e + c, w - e - c, 0);
        luaL_addvalue(&b);
        k = w;
    }
    luaL_pushresult(&b);
}

int tpl_eval_filter(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    const Node *const *argv = (const Node *const *)n->argv;
    int top = lua_gettop(L);
    luaL_checkstack(L, 20, "template filter");
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
    if (n->op == F_MANDATORY) {
        if (eval(r, n->a))
            return 1;
        if (argv[0]) {
            lua_pop(L, 1);
            str_arg(r, argv[0], "");
            tpl_fail(&r->c, n->pos, "%s", lua_tostring(L, -1));
        }
        char buf[100];
        tpl_fail(&r->c, n->pos, "Mandatory variable '%s' not defined.",
                 tpl_src_of(r, n->a, buf, sizeof buf));
    }
    tpl_eval_strict(r, n->a);
    int v = top + 1;
    size_t len;
    const char *s;
    switch (n->op) {
    case F_JOIN: {
        tpl_need_list(r, n, v);
        if (argv[1]) { /* join(attribute=): the attribute of each item */
            Node m = *n;
            m.op = F_MAP;
            m.b = NULL;
            m.argv[0] = n->argv[1];
            m.argv[1] = NULL;
            lua_pushvalue(L, v);
            higher(r, &m, lua_gettop(L));
            lua_replace(L, v);
        }
        str_arg(r, argv[0], "");
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
            if (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD ||
                (t == LUA_TLIGHTUSERDATA && !tpl_is_none(L, -1))) {
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
        tpl_add_work(r, n, total);
        luaL_pushresult(&b);
        break;
    }
    case F_UPPER:
    case F_LOWER:
        need_string(r, n, v);
        s = lua_tolstring(L, v, &len);
        tpl_add_work(r, n, len * 3);
        tpl_push_case(r, n, s, len, n->op == F_UPPER);
        break;
    case F_CAPITALIZE:
    case F_TITLE:
        need_string(r, n, v);
        tpl_add_work(r, n, lua_rawlen(L, v));
        title_case(r, n, v, n->op == F_TITLE);
        break;
    case F_INDENT: {
        need_string(r, n, v);
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
        int first = bool_arg(r, argv[1], 0), blank = bool_arg(r, argv[2], 0);
        push_indent(r, n, first, blank);
        break;
    }
    case F_LENGTH:
        if (lua_type(L, v) == LUA_TSTRING) {
            s = lua_tolstring(L, v, &len);
            lua_pushinteger(L, tpl_utf8_count(s, len));
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
        need_string(r, n, v);
        lua_pushvalue(L, v);
        break;
    case F_TRIM: {
        need_string(r, n, v);
        s = lua_tolstring(L, v, &len);
        size_t b = 0, e = len, cl = 0;
        const char *chars = NULL;
        if (argv[0]) {
            str_arg(r, argv[0], "");
            chars = lua_tolstring(L, -1, &cl);
        }
        /* Python's strip(chars): the characters (code points) in chars */
        for (;;) {
            size_t c = b < e ? tpl_utf8_len(s, len, b) : 0;
            if (!c || !(chars ? memmem(chars, cl, s + b, c) != NULL
                              : tpl_py_space(tpl_utf8_cp(s + b, c))))
                break;
            b += c;
        }
        while (e > b) {
            size_t c = 1;
            while (c < 4 && e - c > b && ((unsigned char)s[e - c] & 0xC0) == 0x80)
                c++;
            if (tpl_utf8_len(s, len, e - c) != c)
                c = 1;
            if (!(chars ? memmem(chars, cl, s + e - c, c) != NULL
                        : tpl_py_space(tpl_utf8_cp(s + e - c, c))))
                break;
            e -= c;
        }
        lua_pushlstring(L, s + b, e - b);
        break;
    }
    case F_QUOTE:
        need_string(r, n, v);
        lua_pushvalue(L, v);
        push_quote(r, n);
        break;
    case F_REPLACE: {
        lua_Integer max = int_arg(r, argv[2], -1);
        need_string(r, n, v);
        str_arg(r, argv[0], "");
        str_arg(r, argv[1], "");
        push_replace(r, n, max);
        break;
    }
    case F_DICTSORT: {
        int fold = !bool_arg(r, argv[0], 0), rev = bool_arg(r, argv[2], 0), byval = 0;
        if (argv[1]) {
            str_arg(r, argv[1], "key");
            const char *by = lua_tostring(L, -1);
            if (strcmp(by, "value") == 0)
                byval = 1;
            else if (strcmp(by, "key") != 0)
                tpl_fail(&r->c, argv[1]->start, "dictsort: 'by' must be 'key' or 'value'");
            lua_pop(L, 1);
        }
        tpl_sorted_pairs(r, v, 0, n);
        lua_Integer count = (lua_Integer)lua_rawlen(L, v);
        lua_createtable(L, (int)count, 0);
        for (lua_Integer k = 1; k <= count; k++) {
            lua_rawgeti(L, v, k);
            lua_rawgeti(L, -1, byval ? 2 : 1);
            push_key(r, -1, fold);
            lua_rawseti(L, -4, k);
            lua_pop(L, 2);
        }
        sort_by_keys(r, n, v, lua_gettop(L), rev);
        lua_pop(L, 1);
        lua_pushvalue(L, v);
        break;
    }
    case F_LIST:
        tpl_need_list(r, n, v);
        lua_pushvalue(L, v);
        break;
    case F_REVERSE: {
        int str = lua_type(L, v) == LUA_TSTRING;
        tpl_need_list(r, n, v);
        lua_Integer count = (lua_Integer)lua_rawlen(L, v);
        lua_createtable(L, (int)count, 0);
        for (lua_Integer k = 1; k <= count; k++) {
            lua_rawgeti(L, v, count - k + 1);
            lua_rawseti(L, -2, k);
        }
        if (str) {
            lua_replace(L, v);
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (lua_Integer k = 1; k <= count; k++) {
                lua_rawgeti(L, v, k);
                luaL_addvalue(&b);
            }
            luaL_pushresult(&b);
        }
        break;
    }
    case F_FIRST:
    case F_LAST: {
        tpl_need_list(r, n, v);
        lua_Integer count = (lua_Integer)lua_rawlen(L, v);
        if (count == 0) {
            lua_settop(L, top);
            return tpl_undefined(r, n->pos, "No %s item, sequence was empty.",
                                 n->op == F_FIRST ? "first" : "last");
        }
        lua_rawgeti(L, v, n->op == F_FIRST ? 1 : count);
        break;
    }
    case F_INT:
    case F_FLOAT: {
        int isint;
        lua_Integer i = 0;
        double d = 0;
        int base = (int)int_arg(r, n->op == F_INT ? argv[1] : NULL, 10), ok = 1;
        if (base != 0 && (base < 2 || base > 36))
            tpl_fail(&r->c, n->pos, "int: base must be 0 or 2..36");
        int t = lua_type(L, v);
        if (t == LUA_TBOOLEAN) {
            i = lua_toboolean(L, v);
            d = (double)i;
            isint = 1;
        } else if (t == LUA_TNUMBER) {
            isint = lua_isinteger(L, v);
            i = lua_tointeger(L, v);
            d = lua_tonumber(L, v);
        } else if (t == LUA_TSTRING) {
            s = lua_tolstring(L, v, &len);
            isint = n->op == F_INT && parse_int(s, len, base, &i);
            if (!isint) {
                ok = parse_float(s, len, &d);
                if (n->op == F_INT && ok) {
                    ok = isfinite(d) && fabs(d) < 9.2e18;
                    i = ok ? (lua_Integer)d : 0;
                    isint = 1;
                }
            }
        } else {
            ok = 0;
        }
        if (!ok) {
            if (argv[0]) {
                tpl_eval_strict(r, argv[0]);
                break;
            }
            if (n->op == F_INT)
                lua_pushinteger(L, 0);
            else
                lua_pushnumber(L, 0.0);
            break;
        }
        if (n->op == F_FLOAT)
            lua_pushnumber(L, isint ? (double)i : d);
        else if (!isint && !(isfinite(d) && fabs(d) < 9.2e18))
            tpl_fail(&r->c, n->pos, "int: %s out of range", isnan(d) ? "nan" : "value");
        else
            lua_pushinteger(L, isint ? i : (lua_Integer)d);
        break;
    }
    case F_ABS:
        if (lua_type(L, v) == LUA_TBOOLEAN) {
            lua_pushinteger(L, lua_toboolean(L, v));
        } else if (lua_isinteger(L, v)) {
            lua_Integer i = lua_tointeger(L, v);
            if (i == LUA_MININTEGER)
                tpl_fail(&r->c, n->pos, "integer overflow in abs");
            lua_pushinteger(L, i < 0 ? -i : i);
        } else if (lua_type(L, v) == LUA_TNUMBER) {
            lua_pushnumber(L, fabs(lua_tonumber(L, v)));
        } else {
            tpl_fail(&r->c, n->pos, "bad operand type for abs: %s", tpl_a_type(L, v));
        }
        break;
    case F_BOOL: /* Ansible's bool filter */
        if (tpl_is_none(L, v) || lua_type(L, v) == LUA_TBOOLEAN) {
            lua_pushvalue(L, v);
        } else if (lua_type(L, v) == LUA_TSTRING) {
            s = lua_tolstring(L, v, &len);
            int t = 0;
            static const char *const yes[] = {"yes", "on", "1", "true"};
            for (int k = 0; k < 4; k++)
                t = t || (strlen(yes[k]) == len && strncasecmp(s, yes[k], len) == 0);
            lua_pushboolean(L, t);
        } else if (lua_type(L, v) == LUA_TNUMBER) {
            lua_pushboolean(L, lua_tonumber(L, v) == 1);
        } else {
            lua_pushboolean(L, 0);
        }
        break;
    case F_SORT: {
        int rev = bool_arg(r, argv[0], 0), fold = !bool_arg(r, argv[1], 0);
        tpl_need_list(r, n, v);
        make_keys(r, n, v, argv[2], fold);
        sort_by_keys(r, n, v, lua_gettop(L), rev);
        lua_pop(L, 1);
        lua_pushvalue(L, v);
        break;
    }
    case F_UNIQUE:
        unique(r, n, v);
        break;
    case F_MIN:
    case F_MAX:
        aggregate(r, n, v);
        if (lua_isnil(L, -1)) {
            lua_settop(L, top);
            return 0;
        }
        break;
    case F_SUM: {
        tpl_need_list(r, n, v);
        if (argv[0]) {
            Node m = *n;
            m.op = F_MAP;
            m.b = NULL;
            m.argv[0] = n->argv[0];
            m.argv[1] = NULL;
            lua_pushvalue(L, v);
            higher(r, &m, lua_gettop(L));
            lua_replace(L, v);
        }
        if (argv[1])
            tpl_eval_strict(r, argv[1]);
        else
            lua_pushinteger(L, 0);
        lua_Integer count = (lua_Integer)lua_rawlen(L, v);
        Node add = *n;
        add.op = OP_ADD;
        for (lua_Integer k = 1; k <= count; k++) {
            lua_rawgeti(L, v, k);
            tpl_arith(r, &add);
        }
        break;
    }
    case F_MAP:
    case F_SELECT:
    case F_REJECT:
    case F_SELECTATTR:
    case F_REJECTATTR:
        higher(r, n, v);
        lua_pushvalue(L, v);
        break;
    case F_ITEMS:
    case F_DICT2ITEMS: {
        if (lua_type(L, v) != LUA_TTABLE || (lua_rawlen(L, v) > 0)) {
            char o[100];
            tpl_fail(&r->c, n->pos, "%s needs a mapping, got %s (%s)", n->s,
                     tpl_src_of(r, n->a, o, sizeof o), tpl_a_type(L, v));
        }
        tpl_sorted_pairs(r, v, 0, n);
        if (n->op == F_DICT2ITEMS) {
            str_arg(r, argv[0], "key");
            str_arg(r, argv[1], "value");
            lua_Integer count = (lua_Integer)lua_rawlen(L, v);
            for (lua_Integer k = 1; k <= count; k++) {
                lua_rawgeti(L, v, k);
                lua_createtable(L, 0, 2);
                lua_pushvalue(L, -4);
                lua_rawgeti(L, -3, 1);
                lua_rawset(L, -3);
                lua_pushvalue(L, -3);
                lua_rawgeti(L, -3, 2);
                lua_rawset(L, -3);
                lua_rawseti(L, v, k);
                lua_pop(L, 1);
            }
        }
        lua_pushvalue(L, v);
        break;
    }
    case F_TO_JSON:
    case F_TO_NICE_JSON: {
        int nice = n->op == F_TO_NICE_JSON;
        lua_Integer ind = int_arg(r, argv[0], nice ? 4 : -1);
        if (ind > 64)
            tpl_fail(&r->c, n->pos, "to_json: indent above 64");
        if (argv[1] && !bool_arg(r, argv[1], 1))
            tpl_fail(&r->c, argv[1]->start, "to_json: mappings are always written with sorted "
                     "keys (sort_keys=false is not supported)");
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        tpl_to_json(r, v, n, &b, 0, (int)ind, 0);
        luaL_pushresult(&b);
        tpl_add_work(r, n, lua_rawlen(L, -1));
        break;
    }
    case F_TO_YAML:
        tpl_to_yaml(r, v, n);
        tpl_add_work(r, n, lua_rawlen(L, -1));
        break;
    case F_B64ENCODE:
    case F_B64DECODE:
        b64(r, n, v, n->op == F_B64DECODE);
        break;
    case F_REGEX_REPLACE:
    case F_REGEX_SEARCH: {
        int search = n->op == F_REGEX_SEARCH;
        need_string(r, n, v);
        str_arg(r, argv[0], "");
        if (!search)
            str_arg(r, argv[1], "");
        int icase = bool_arg(r, argv[search ? 1 : 2], 0), ml = bool_arg(r, argv[search ? 2 : 3], 0);
        if (search) {
            if (!tpl_regex_search(r, n, v, v + 1, icase, ml, 0, 1)) {
                lua_pushlightuserdata(L, NULL); /* Ansible: None when nothing matches */
            }
        } else {
            tpl_regex_replace(r, n, v, v + 1, v + 2, icase, ml, -1);
        }
        break;
    }
    case F_ROUND: {
        lua_Integer prec = int_arg(r, argv[0], 0);
        const char *method = "common";
        if (argv[1]) {
            str_arg(r, argv[1], "common");
            method = lua_tostring(L, -1);
        }
        if (strcmp(method, "common") && strcmp(method, "ceil") && strcmp(method, "floor"))
            tpl_fail(&r->c, n->pos, "round: method must be common, ceil or floor");
        if (lua_type(L, v) != LUA_TNUMBER && lua_type(L, v) != LUA_TBOOLEAN)
            tpl_fail(&r->c, n->pos, "round needs a number, got %s", tpl_a_type(L, v));
        if (prec < -20 || prec > 20)
            tpl_fail(&r->c, n->pos, "round: precision out of range");
        double d = lua_tonumber(L, v), f = pow(10.0, (double)prec);
        if (lua_type(L, v) == LUA_TBOOLEAN)
            d = lua_toboolean(L, v);
        if (method[0] == 'c' && method[1] == 'e') {
            lua_pushnumber(L, ceil(d * f) / f);
        } else if (method[0] == 'f') {
            lua_pushnumber(L, floor(d * f) / f);
        } else if (lua_isinteger(L, v) && prec >= 0) {
            lua_pushvalue(L, v); /* Python: round(int, n) stays an int */
        } else if (prec >= 0 && isfinite(d)) {
            char buf[400]; /* Python rounds the exact binary value, half to even: so does %f */
            snprintf(buf, sizeof buf, "%.*f", (int)prec, d);
            lua_pushnumber(L, strtod(buf, NULL));
        } else {
            lua_pushnumber(L, isfinite(d) ? nearbyint(d * f) / f : d);
        }
        break;
    }
    case F_CENTER: {
        lua_Integer w = int_arg(r, argv[0], 80);
        need_string(r, n, v);
        s = lua_tolstring(L, v, &len);
        lua_Integer chars = tpl_utf8_count(s, len);
        if (w > (lua_Integer)MAX_OUTPUT)
            tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
        if (w <= chars) {
            lua_pushvalue(L, v);
            break;
        }
        lua_Integer marg = w - chars, left = marg / 2 + (marg & w & 1);
        tpl_add_work(r, n, len + (size_t)marg);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (lua_Integer k = 0; k < left; k++)
            luaL_addchar(&b, ' ');
        luaL_addlstring(&b, s, len);
        for (lua_Integer k = 0; k < marg - left; k++)
            luaL_addchar(&b, ' ');
        luaL_pushresult(&b);
        break;
    }
    case F_WORDCOUNT: {
        need_string(r, n, v);
        s = lua_tolstring(L, v, &len);
        lua_Integer words = 0;
        int in = 0;
        for (size_t k = 0; k < len; k++) {
            int w = tpl_is_alpha(s[k]) || tpl_is_digit(s[k]) || (unsigned char)s[k] >= 0x80;
            words += w && !in;
            in = w;
        }
        lua_pushinteger(L, words);
        break;
    }
    case F_BASENAME:
    case F_DIRNAME: {
        need_string(r, n, v);
        s = lua_tolstring(L, v, &len);
        const char *sl = NULL;
        for (size_t k = 0; k < len; k++)
            if (s[k] == '/')
                sl = s + k;
        if (n->op == F_BASENAME) {
            lua_pushlstring(L, sl ? sl + 1 : s, sl ? len - (size_t)(sl + 1 - s) : len);
        } else {
            size_t e = sl ? (size_t)(sl - s) + 1 : 0, all = 1;
            for (size_t k = 0; k < e; k++)
                all = all && s[k] == '/';
            if (!all)
                while (e > 0 && s[e - 1] == '/')
                    e--;
            lua_pushlstring(L, s, e);
        }
        break;
    }
    default:
        return luaL_error(L, "template: filter %d not implemented", n->op);
    }
    lua_replace(L, v);
    lua_settop(L, v);
    return 1;
}
