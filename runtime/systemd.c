/*
 * systemd.c: unit files and `systemctl show` output as Lua values
 * (etcdrun.core.systemd). Text in, tables or text out; no I/O: the systemd
 * module reads and writes the node through the host object.
 *
 * Shapes (the same for parse_unit's result and render's list form):
 *   { {"Unit", {{"Description", "etcd"}, {"After", "network-online.target"}}},
 *     {"Service", {{"ExecStart", "/usr/bin/etcd"}, ...}}, ... }
 * sections in file order, entries in file order, repeated keys and repeated
 * sections kept as they are (systemd merges them; order within a key is
 * meaning: `ExecStart=` resets a list).
 *
 * Parsing follows systemd's conf-parser: leading whitespace is skipped,
 * lines starting with # or ; are comments (also inside a continuation), a
 * line ending in an unescaped backslash continues on the next one with the
 * backslash turned into a space, key and value are trimmed, quoting and
 * specifiers are left to the directive. Stricter than systemd where it
 * only warns: an assignment before any [Section], a key that is not
 * [A-Za-z0-9_-]+, a NUL byte and a logical line over 1 MiB (systemd's
 * LONG_LINE_MAX) are errors naming unit:line.
 *
 * Render's map form { Unit = {Description = "etcd", After = {"a", "b"}}, ... }
 * has no order of its own, so one is fixed: [Unit] first, [Install] last,
 * any other section between them by name, keys by name (bytewise), a list
 * value as repeated lines in list order. Sorting keys changes no meaning:
 * only the order of one key's own lines matters, and a list keeps it.
 */
#include "etcdrun.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES ((size_t)1 << 20) /* one logical line, as systemd's LONG_LINE_MAX */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int valid_key(const char *k, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Trim [*b, *e) in place. */
static void trim(const char **b, const char **e)
{
    while (*b < *e && is_ws(**b))
        (*b)++;
    while (*e > *b && is_ws((*e)[-1]))
        (*e)--;
}

/* nil, "systemd.parse_unit: <unit>:<line>: <detail>", "EPARSE" */
static int unit_fail(lua_State *L, const char *unit, long line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int unit_fail(lua_State *L, const char *unit, long line, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return er_fail(L, "EPARSE", "systemd.parse_unit: %s:%ld: %s", unit, line, detail);
}

/* Push a two-element list {a, b}. */
static void push_pair(lua_State *L, const char *a, size_t al, const char *b, size_t bl)
{
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, a, al);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, b, bl);
    lua_rawseti(L, -2, 2);
}

/* Stack slots of parse_unit. */
enum { P_TEXT = 1, P_UNIT, P_SCRATCH, P_RESULT, P_ENTRIES };

/* One logical line (continuations joined). Returns 0, or 3 after pushing
 * the failure. */
static int unit_line(lua_State *L, const char *unit, long lineno, const char *b, const char *e)
{
    trim(&b, &e);
    if (b == e)
        return 0;
    if (*b == '[') {
        if (e - b < 3 || e[-1] != ']')
            return unit_fail(L, unit, lineno, "invalid section header '%.*s'",
                             (int)(e - b > 80 ? 80 : e - b), b);
        for (const char *c = b + 1; c < e - 1; c++)
            if (*c == '[' || *c == ']')
                return unit_fail(L, unit, lineno, "invalid section header '%.*s'",
                                 (int)(e - b > 80 ? 80 : e - b), b);
        lua_createtable(L, 2, 0);
        lua_pushlstring(L, b + 1, (size_t)(e - b - 2));
        lua_rawseti(L, -2, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_replace(L, P_ENTRIES);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, P_RESULT, (lua_Integer)lua_rawlen(L, P_RESULT) + 1);
        return 0;
    }
    const char *eq = memchr(b, '=', (size_t)(e - b));
    if (eq == NULL)
        return unit_fail(L, unit, lineno, "expected key=value or [Section]");
    const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
    trim(&kb, &ke);
    trim(&vb, &ve);
    if (kb == ke)
        return unit_fail(L, unit, lineno, "missing key before '='");
    if (!valid_key(kb, (size_t)(ke - kb)))
        return unit_fail(L, unit, lineno, "invalid key '%.*s'",
                         (int)(ke - kb > 80 ? 80 : ke - kb), kb);
    if (lua_isnil(L, P_ENTRIES))
        return unit_fail(L, unit, lineno, "assignment '%.*s' outside of a [Section]",
                         (int)(ke - kb > 80 ? 80 : ke - kb), kb);
    push_pair(L, kb, (size_t)(ke - kb), vb, (size_t)(ve - vb));
    lua_rawseti(L, P_ENTRIES, (lua_Integer)lua_rawlen(L, P_ENTRIES) + 1);
    return 0;
}

/* systemd.parse_unit(text [, name="unit"]) -> sections | nil, err, "EPARSE"
 * name only labels messages: "systemd.parse_unit: etcd.service:7: ..." */
static int l_parse_unit(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, P_TEXT, &len);
    const char *unit = luaL_optstring(L, P_UNIT, "unit");
    lua_settop(L, P_UNIT);
    /* A logical line is never longer than the text (joining only removes
       bytes), so a scratch buffer of min(len, max) + 1 always fits one.
       A userdata, so that an error raised mid-parse leaks nothing. */
    size_t cap = (len < LINE_MAX_BYTES ? len : LINE_MAX_BYTES) + 1;
    char *buf = lua_newuserdatauv(L, cap, 0);
    lua_newtable(L);     /* P_RESULT */
    lua_pushnil(L);      /* P_ENTRIES: the current section's entries */

    const char *p = text, *end = text + len;
    size_t blen = 0;
    int cont = 0;
    long lineno = 0, first = 0;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* a UTF-8 byte order mark, as systemd skips it */
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end, *next = nl ? nl + 1 : end;
        lineno++;
        if (memchr(p, '\0', (size_t)(e - p)))
            return unit_fail(L, unit, lineno, "NUL byte in unit file");
        if (e > p && e[-1] == '\r')
            e--;
        const char *s = p;
        while (s < e && is_ws(*s))
            s++;
        if (s < e && (*s == '#' || *s == ';')) {
            p = next; /* comments are skipped inside continuations too */
            continue;
        }
        if (!cont)
            first = lineno;
        size_t n = (size_t)(e - p);
        if (blen + n > LINE_MAX_BYTES)
            return unit_fail(L, unit, first, "line longer than %zu bytes", LINE_MAX_BYTES);
        memcpy(buf + blen, p, n);
        int esc = 0;
        for (size_t i = blen; i < blen + n; i++)
            esc = esc ? 0 : buf[i] == '\\';
        blen += n;
        p = next;
        if (esc) {
            buf[blen - 1] = ' ';
            cont = 1;
            continue;
        }
        cont = 0;
        if (unit_line(L, unit, first, buf, buf + blen))
            return 3;
        blen = 0;
    }
    if (cont && unit_line(L, unit, first, buf, buf + blen))
        return 3; /* a continuation at the end of the file still counts */
    lua_pushvalue(L, P_RESULT);
    return 1;
}

/* ---- render ---- */

/* Stack slots of render. */
enum { R_UNITS = 1, R_PIECES };

static void add_piece(lua_State *L, const char *s, size_t n)
{
    lua_pushlstring(L, s, n);
    lua_rawseti(L, R_PIECES, (lua_Integer)lua_rawlen(L, R_PIECES) + 1);
}

static void check_section_name(lua_State *L, const char *name, size_t n)
{
    if (n == 0 || strcspn(name, "[]\r\n") != n || strlen(name) != n ||
        is_ws(name[0]) || is_ws(name[n - 1]))
        luaL_error(L, "systemd.render: invalid section name '%s'", name);
}

/* Add "key=value\n" for the value at the top of the stack (popped). */
static void add_entry(lua_State *L, const char *sect, const char *key, size_t klen)
{
    size_t vlen;
    const char *v;
    char num[64];
    if (!valid_key(key, klen))
        luaL_error(L, "systemd.render: [%s]: invalid key '%s'", sect, key);
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        v = lua_tolstring(L, -1, &vlen);
        if (strcspn(v, "\r\n") != vlen || strlen(v) != vlen)
            luaL_error(L, "systemd.render: [%s] %s: value holds a line break or NUL", sect, key);
        int esc = 0;
        for (size_t i = 0; i < vlen; i++)
            esc = esc ? 0 : v[i] == '\\';
        if (esc) /* it would join the next line to this one */
            luaL_error(L, "systemd.render: [%s] %s: value ends in an unescaped backslash",
                       sect, key);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1))
            snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, -1));
        else
            snprintf(num, sizeof num, "%.14g", (double)lua_tonumber(L, -1));
        v = num, vlen = strlen(num);
        break;
    case LUA_TBOOLEAN:
        v = lua_toboolean(L, -1) ? "yes" : "no";
        vlen = strlen(v);
        break;
    default:
        return (void)luaL_error(L, "systemd.render: [%s] %s: value must be a string, number "
                                   "or boolean, got %s", sect, key, luaL_typename(L, -1));
    }
    lua_pushlstring(L, key, klen);
    lua_pushliteral(L, "=");
    lua_pushlstring(L, v, vlen);
    lua_pushliteral(L, "\n");
    lua_concat(L, 4);
    lua_rawseti(L, R_PIECES, (lua_Integer)lua_rawlen(L, R_PIECES) + 1);
    lua_pop(L, 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The string keys of the table at idx, sorted, in a userdata left on the
 * stack (it keeps no references: the keys stay anchored in the table). */
static const char **sorted_keys(lua_State *L, int idx, const char *what, size_t *count)
{
    size_t n = 0;
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "systemd.render: %s: keys must be strings, got %s", what,
                       luaL_typename(L, -1));
        n++;
    }
    const char **keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        keys[i++] = lua_tostring(L, -1);
    }
    qsort(keys, n, sizeof *keys, cmp_str);
    *count = n;
    return keys;
}

/* Entries of a section in map form at idx: keys sorted, lists repeated. */
static void add_map_section(lua_State *L, int idx, const char *sect)
{
    size_t n;
    idx = lua_absindex(L, idx);
    const char **keys = sorted_keys(L, idx, sect, &n);
    for (size_t i = 0; i < n; i++) {
        size_t klen = strlen(keys[i]);
        if (lua_getfield(L, idx, keys[i]) == LUA_TTABLE) {
            lua_Integer m = (lua_Integer)lua_rawlen(L, -1), seen = 0;
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                lua_pop(L, 1);
                seen++;
            }
            if (seen != m)
                luaL_error(L, "systemd.render: [%s] %s: a table value must be a list", sect,
                           keys[i]);
            for (lua_Integer j = 1; j <= m; j++) {
                lua_rawgeti(L, -1, j);
                add_entry(L, sect, keys[i], klen);
            }
            lua_pop(L, 1);
        } else {
            add_entry(L, sect, keys[i], klen);
        }
    }
    lua_pop(L, 1); /* the keys userdata */
}

/* Section body at idx: a list of {key, value} pairs, or a map. */
static void add_section(lua_State *L, int idx, const char *sect)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "systemd.render: [%s]: entries must be a table, got %s", sect,
                   luaL_typename(L, idx));
    if (lua_rawlen(L, R_PIECES) > 0)
        add_piece(L, "\n", 1);
    lua_pushfstring(L, "[%s]\n", sect);
    lua_rawseti(L, R_PIECES, (lua_Integer)lua_rawlen(L, R_PIECES) + 1);
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n == 0) {
        add_map_section(L, idx, sect);
        return;
    }
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, idx, i) != LUA_TTABLE)
            luaL_error(L, "systemd.render: [%s] entry %d must be a {key, value} pair", sect,
                       (int)i);
        if (lua_rawgeti(L, -1, 1) != LUA_TSTRING)
            luaL_error(L, "systemd.render: [%s] entry %d: key must be a string", sect, (int)i);
        size_t klen;
        const char *key = lua_tolstring(L, -1, &klen);
        lua_rawgeti(L, -2, 2);
        add_entry(L, sect, key, klen);
        lua_pop(L, 2);
    }
}

/* Section rank in the map form: Unit, then the others by name, then Install. */
static int rank(const char *s)
{
    return strcmp(s, "Unit") == 0 ? 0 : strcmp(s, "Install") == 0 ? 2 : 1;
}

static int cmp_section(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int rx = rank(x), ry = rank(y);
    return rx != ry ? rx - ry : strcmp(x, y);
}

/* systemd.render(units) -> text
 * units: the list form (parse_unit's shape; a section's entries may also
 * be a map) or the map form; see the top of this file. Misuse raises. */
static int l_render(lua_State *L)
{
    luaL_checktype(L, R_UNITS, LUA_TTABLE);
    lua_settop(L, R_UNITS);
    lua_newtable(L); /* R_PIECES */
    lua_Integer n = (lua_Integer)lua_rawlen(L, R_UNITS);
    if (n > 0) {
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, R_UNITS, i) != LUA_TTABLE)
                luaL_error(L, "systemd.render: section %d must be a {name, entries} pair", (int)i);
            if (lua_rawgeti(L, -1, 1) != LUA_TSTRING)
                luaL_error(L, "systemd.render: section %d: name must be a string", (int)i);
            size_t len;
            const char *name = lua_tolstring(L, -1, &len);
            check_section_name(L, name, len);
            lua_rawgeti(L, -2, 2);
            add_section(L, -1, name);
            lua_pop(L, 3);
        }
    } else {
        size_t count;
        const char **names = sorted_keys(L, R_UNITS, "sections", &count);
        qsort(names, count, sizeof *names, cmp_section);
        for (size_t i = 0; i < count; i++) {
            check_section_name(L, names[i], strlen(names[i]));
            lua_getfield(L, R_UNITS, names[i]);
            add_section(L, -1, names[i]);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    luaL_Buffer b;
    lua_Integer np = (lua_Integer)lua_rawlen(L, R_PIECES);
    luaL_buffinit(L, &b);
    for (lua_Integer i = 1; i <= np; i++) {
        lua_rawgeti(L, R_PIECES, i);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    return 1;
}

/* ---- systemctl show ---- */

/* systemd.parse_show(text) -> { {Prop = "value", ...}, ... } | nil, err, "EPARSE"
 * One table per unit, in output order; units are separated by blank lines
 * (`systemctl show -p A,B u1 u2`). Values are the raw strings after the
 * first '=' (systemctl prints a property once per unit). */
static int l_parse_show(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    lua_settop(L, 1);
    lua_newtable(L); /* 2: result */
    lua_pushnil(L);  /* 3: the current unit's table */
    const char *p = text, *end = text + len;
    long lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end, *next = nl ? nl + 1 : end;
        lineno++;
        if (e > p && e[-1] == '\r')
            e--;
        if (e == p) {
            lua_pushnil(L);
            lua_replace(L, 3);
            p = next;
            continue;
        }
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq == NULL || eq == p || !valid_key(p, (size_t)(eq - p)))
            return er_fail(L, "EPARSE", "systemd.parse_show: line %ld: expected "
                           "Property=value, got '%.*s'", lineno,
                           (int)(e - p > 80 ? 80 : e - p), p);
        if (lua_isnil(L, 3)) {
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_replace(L, 3);
            lua_rawseti(L, 2, (lua_Integer)lua_rawlen(L, 2) + 1);
        }
        lua_pushlstring(L, p, (size_t)(eq - p));
        lua_pushlstring(L, eq + 1, (size_t)(e - eq - 1));
        lua_rawset(L, 3);
        p = next;
    }
    lua_settop(L, 2);
    return 1;
}

int luaopen_etcdrun_core_systemd(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"parse_unit", l_parse_unit},
        {"render", l_render},
        {"parse_show", l_parse_show},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
