/*
 * template-values.c: Python's views of the template family's values: UTF-8
 * characters (what len() and iteration count), repr (how {{ }} prints a
 * list, tuple or mapping, as Ansible does) and json.dumps (to_json).
 */
#include "template-internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

size_t tpl_utf8_len(const char *s, size_t len, size_t k)
{
    unsigned char c = (unsigned char)s[k];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (k + n > len)
        return 1;
    for (size_t j = 1; j < n; j++)
        if (((unsigned char)s[k + j] & 0xC0) != 0x80)
            return 1;
    return n;
}

unsigned long tpl_utf8_cp(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    switch (n) {
    case 2: return ((unsigned long)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
    case 3: return ((unsigned long)(u[0] & 0x0F) << 12) | ((unsigned long)(u[1] & 0x3F) << 6) |
                   (u[2] & 0x3F);
    case 4: return ((unsigned long)(u[0] & 0x07) << 18) | ((unsigned long)(u[1] & 0x3F) << 12) |
                   ((unsigned long)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    default: return u[0];
    }
}

lua_Integer tpl_utf8_count(const char *s, size_t len)
{
    lua_Integer chars = 0;
    for (size_t k = 0; k < len; k += tpl_utf8_len(s, len, k))
        chars++;
    return chars;
}

/* Replace the string at idx with the list of its characters (Python's
 * iteration over a str: by code point). */
void tpl_utf8_chars(Render *r, int idx, const Node *n)
{
    lua_State *L = r->c.L;
    size_t len;
    idx = lua_absindex(L, idx);
    const char *s = lua_tolstring(L, idx, &len);
    if ((long)len > MAX_ITERATIONS - r->iterations)
        tpl_fail(&r->c, n->pos, "more than %ld loop iterations", MAX_ITERATIONS);
    lua_createtable(L, (int)len, 0);
    lua_Integer i = 0;
    for (size_t k = 0; k < len;) {
        size_t c = tpl_utf8_len(s, len, k);
        lua_pushlstring(L, s + k, c);
        lua_rawseti(L, -2, ++i);
        k += c;
    }
    lua_replace(L, idx);
}

void tpl_check_out(Render *r, const Node *n, luaL_Buffer *b)
{
    if (luaL_bufflen(b) > MAX_OUTPUT)
        tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
}

/* ---- Python's repr ---- */

static void repr_str(const char *s, size_t len, luaL_Buffer *b)
{
    int sq = memchr(s, '\'', len) != NULL, dq = memchr(s, '"', len) != NULL;
    char q = sq && !dq ? '"' : '\'';
    luaL_addchar(b, q);
    for (size_t k = 0; k < len;) {
        size_t n = tpl_utf8_len(s, len, k);
        unsigned char c = (unsigned char)s[k];
        char esc[16];
        if (n == 1 && c >= 0x80) {
            snprintf(esc, sizeof esc, "\\x%02x", c); /* not UTF-8: shown as a byte */
            luaL_addstring(b, esc);
        } else if (n > 1) {
            unsigned long cp = tpl_utf8_cp(s + k, n);
            if (tpl_py_printable(cp)) {
                luaL_addlstring(b, s + k, n);
            } else {
                snprintf(esc, sizeof esc, cp < 0x100 ? "\\x%02lx" : cp < 0x10000 ? "\\u%04lx"
                                                                                  : "\\U%08lx", cp);
                luaL_addstring(b, esc);
            }
        } else if (c == (unsigned char)q || c == '\\') {
            luaL_addchar(b, '\\');
            luaL_addchar(b, (char)c);
        } else if (c == '\n') {
            luaL_addstring(b, "\\n");
        } else if (c == '\r') {
            luaL_addstring(b, "\\r");
        } else if (c == '\t') {
            luaL_addstring(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            luaL_addstring(b, esc);
        } else {
            luaL_addchar(b, (char)c);
        }
        k += n;
    }
    luaL_addchar(b, q);
}

/* Append the repr of the value at idx (absolute) to b; the buffer's own
 * stack slot sits above everything this pushes and pops. */
void tpl_repr(Render *r, int idx, const Node *n, luaL_Buffer *b, int depth)
{
    lua_State *L = r->c.L;
    char buf[64];
    if (depth > MAX_DEPTH)
        tpl_fail(&r->c, n->start, "value nested too deeply to print (limit %d)", MAX_DEPTH);
    tpl_check_out(r, n, b);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        repr_str(s, len, b);
        return;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(buf, sizeof buf, LUA_INTEGER_FMT, lua_tointeger(L, idx));
        else
            tpl_fmt_float(lua_tonumber(L, idx), buf, sizeof buf);
        luaL_addstring(b, buf);
        return;
    case LUA_TBOOLEAN:
        luaL_addstring(b, lua_toboolean(L, idx) ? "True" : "False");
        return;
    case LUA_TTABLE:
        break;
    default:
        if (tpl_is_none(L, idx)) {
            luaL_addstring(b, "None");
            return;
        }
        {
            char s[100];
            tpl_fail(&r->c, n->start, "cannot render %s: it holds %s",
                     tpl_src_of(r, n, s, sizeof s), tpl_a_type(L, idx));
        }
    }
    /* values are read from a copy list placed below the buffer's slot:
     * luaL_Buffer may own the top of the stack, so collect first */
    int list = tpl_is_list(L, idx);
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
    if (list) {
        lua_pushvalue(L, idx);
        int tuple = r->tuples && lua_rawget(L, r->tuples) != LUA_TNIL;
        lua_pop(L, 1);
        luaL_addchar(b, tuple ? '(' : '[');
        for (lua_Integer k = 1; k <= len; k++) {
            if (k > 1)
                luaL_addstring(b, ", ");
            lua_rawgeti(L, idx, k);
            luaL_Buffer inner;
            luaL_buffinit(L, &inner);
            tpl_repr(r, lua_gettop(L) - 1, n, &inner, depth + 1);
            luaL_pushresult(&inner);
            lua_remove(L, -2);
            luaL_addvalue(b);
        }
        luaL_addstring(b, tuple ? (len == 1 ? ",)" : ")") : "]");
        return;
    }
    tpl_sorted_keys(r, idx, 0, n);
    int keys = lua_gettop(L);
    lua_Integer nk = (lua_Integer)lua_rawlen(L, keys);
    luaL_Buffer inner;
    luaL_buffinit(L, &inner);
    luaL_addchar(&inner, '{');
    for (lua_Integer k = 1; k <= nk; k++) {
        if (k > 1)
            luaL_addstring(&inner, ", ");
        for (int part = 0; part < 2; part++) {
            lua_rawgeti(L, keys, k);
            if (part)
                lua_rawget(L, idx);
            luaL_Buffer one;
            luaL_buffinit(L, &one);
            tpl_repr(r, lua_gettop(L) - 1, n, &one, depth + 1);
            luaL_pushresult(&one);
            lua_remove(L, -2);
            luaL_addvalue(&inner);
            if (!part)
                luaL_addstring(&inner, ": ");
        }
        tpl_check_out(r, n, &inner);
    }
    luaL_addchar(&inner, '}');
    luaL_pushresult(&inner);
    lua_remove(L, keys);
    luaL_addvalue(b);
}

/* ---- to_json: Python's json.dumps (ensure_ascii, keys sorted) ---- */

static void json_str(Render *r, const Node *n, const char *s, size_t len, luaL_Buffer *b)
{
    char esc[32];
    luaL_addchar(b, '"');
    for (size_t k = 0; k < len;) {
        size_t c = tpl_utf8_len(s, len, k);
        unsigned char ch = (unsigned char)s[k];
        if (c == 1 && ch >= 0x80)
            tpl_fail(&r->c, n->pos, "to_json: a string is not valid UTF-8");
        unsigned long cp = tpl_utf8_cp(s + k, c);
        k += c;
        if (cp == '"' || cp == '\\') {
            luaL_addchar(b, '\\');
            luaL_addchar(b, (char)cp);
        } else if (cp == '\n') {
            luaL_addstring(b, "\\n");
        } else if (cp == '\r') {
            luaL_addstring(b, "\\r");
        } else if (cp == '\t') {
            luaL_addstring(b, "\\t");
        } else if (cp == '\b') {
            luaL_addstring(b, "\\b");
        } else if (cp == '\f') {
            luaL_addstring(b, "\\f");
        } else if (cp < 0x20 || (cp >= 0x7f && cp < 0x10000)) {
            snprintf(esc, sizeof esc, "\\u%04lx", cp);
            luaL_addstring(b, esc);
        } else if (cp >= 0x10000) {
            unsigned long v = cp - 0x10000;
            snprintf(esc, sizeof esc, "\\u%04lx\\u%04lx", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            luaL_addstring(b, esc);
        } else {
            luaL_addchar(b, (char)cp);
        }
    }
    luaL_addchar(b, '"');
}

static void json_nl(luaL_Buffer *b, int indent, int level)
{
    luaL_addchar(b, '\n');
    for (int k = 0; k < indent * level; k++)
        luaL_addchar(b, ' ');
}

/* indent < 0: one line with ", " and ": " (json.dumps' default) */
void tpl_to_json(Render *r, int idx, const Node *n, luaL_Buffer *b, int depth, int indent,
                 int level)
{
    lua_State *L = r->c.L;
    char buf[64];
    if (depth > MAX_DEPTH)
        tpl_fail(&r->c, n->pos, "to_json: value nested too deeply (limit %d)", MAX_DEPTH);
    tpl_check_out(r, n, b);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        json_str(r, n, s, len, b);
        return;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            snprintf(buf, sizeof buf, LUA_INTEGER_FMT, lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            if (isnan(d))
                snprintf(buf, sizeof buf, "NaN");
            else if (isinf(d))
                snprintf(buf, sizeof buf, d > 0 ? "Infinity" : "-Infinity");
            else
                tpl_fmt_float(d, buf, sizeof buf);
        }
        luaL_addstring(b, buf);
        return;
    case LUA_TBOOLEAN:
        luaL_addstring(b, lua_toboolean(L, idx) ? "true" : "false");
        return;
    case LUA_TTABLE:
        break;
    default:
        if (tpl_is_none(L, idx)) {
            luaL_addstring(b, "null");
            return;
        }
        tpl_fail(&r->c, n->pos, "to_json: cannot encode %s", tpl_a_type(L, idx));
    }
    const char *sep = indent >= 0 ? "," : ", ";
    int list = tpl_is_list(L, idx);
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
    if (list) {
        luaL_addchar(b, '[');
        for (lua_Integer k = 1; k <= len; k++) {
            if (k > 1)
                luaL_addstring(b, sep);
            if (indent >= 0)
                json_nl(b, indent, level + 1);
            lua_rawgeti(L, idx, k);
            luaL_Buffer one;
            luaL_buffinit(L, &one);
            tpl_to_json(r, lua_gettop(L) - 1, n, &one, depth + 1, indent, level + 1);
            luaL_pushresult(&one);
            lua_remove(L, -2);
            luaL_addvalue(b);
        }
        if (indent >= 0 && len > 0)
            json_nl(b, indent, level);
        luaL_addchar(b, ']');
        return;
    }
    tpl_sorted_keys(r, idx, 0, n);
    int keys = lua_gettop(L);
    lua_Integer nk = (lua_Integer)lua_rawlen(L, keys);
    luaL_Buffer inner;
    luaL_buffinit(L, &inner);
    luaL_addchar(&inner, '{');
    for (lua_Integer k = 1; k <= nk; k++) {
        if (k > 1)
            luaL_addstring(&inner, sep);
        if (indent >= 0)
            json_nl(&inner, indent, level + 1);
        lua_rawgeti(L, keys, k);
        if (lua_type(L, -1) == LUA_TNUMBER) { /* json.dumps writes keys as strings */
            if (lua_isinteger(L, -1))
                snprintf(buf, sizeof buf, LUA_INTEGER_FMT, lua_tointeger(L, -1));
            else
                tpl_fmt_float(lua_tonumber(L, -1), buf, sizeof buf);
            lua_pop(L, 1);
            lua_pushstring(L, buf);
        }
        size_t klen;
        const char *ks = lua_tolstring(L, -1, &klen);
        luaL_Buffer one;
        luaL_buffinit(L, &one);
        json_str(r, n, ks, klen, &one);
        luaL_addstring(&one, ": ");
        luaL_pushresult(&one);
        lua_remove(L, -2);
        luaL_addvalue(&inner);
        lua_rawgeti(L, keys, k);
        lua_rawget(L, idx);
        luaL_buffinit(L, &one);
        tpl_to_json(r, lua_gettop(L) - 1, n, &one, depth + 1, indent, level + 1);
        luaL_pushresult(&one);
        lua_remove(L, -2);
        luaL_addvalue(&inner);
        tpl_check_out(r, n, &inner);
    }
    if (indent >= 0 && nk > 0)
        json_nl(&inner, indent, level);
    luaL_addchar(&inner, '}');
    luaL_pushresult(&inner);
    lua_remove(L, keys);
    luaL_addvalue(b);
}
