/*
 * yaml.c: YAML documents read with libyaml into Lua values, for the YAML
 * inventory (etcdrun.core.yaml). Plain scalars resolve as PyYAML's
 * SafeLoader resolves them (YAML 1.1, what Ansible's loader uses): null,
 * booleans (yes/no/on/off too), integers (0x, 0o-style 0755, 0b, 1_000,
 * 1:30), floats (1.5, .inf, .nan), everything else a string; quoted
 * scalars are strings. Lua tables have no order and no lines, so a second
 * value describes each mapping: meta[map] = { keys = {k...} in document
 * order, lines = {[k] = line of the key}, line = line of the mapping }.
 */
#include "etcdrun.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define MAX_NEST 100
#define PARSER_MT "etcdrun.yaml.Parser"

typedef struct Parser {
    yaml_parser_t p;
    int live;
    /* the events being handled, innermost last: an error longjmps past the C
     * frames that hold them, so they live here and the close path frees them */
    int nev;
    yaml_event_t ev[2 * MAX_NEST + 8];
} Parser;

typedef struct Load {
    lua_State *L;
    Parser *ps;
    const char *name;
    int meta, anchors;
    char err[400];
} Load;

static void parser_close(Parser *ps)
{
    while (ps->nev > 0)
        yaml_event_delete(&ps->ev[--ps->nev]);
    if (ps->live)
        yaml_parser_delete(&ps->p);
    ps->live = 0;
}

static int parser_gc(lua_State *L)
{
    parser_close(luaL_checkudata(L, 1, PARSER_MT));
    return 0;
}

/* Raise "NAME:LINE:COL: detail" (caught by load's pcall, returned as EYAML) */
__attribute__((noreturn, format(printf, 3, 4)))
static void fail(Load *ld, const yaml_mark_t *m, const char *fmt, ...)
{
    char detail[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    lua_pushfstring(ld->L, "%s:%d:%d: %s", ld->name, (int)m->line + 1, (int)m->column + 1, detail);
    lua_error(ld->L);
    abort();
}

/* The next event, held in the parser's stack of events until done(). */
static yaml_event_t *next_event(Load *ld)
{
    Parser *ps = ld->ps;
    if (ps->nev >= (int)(sizeof ps->ev / sizeof ps->ev[0]))
        luaL_error(ld->L, "yaml: events nested too deeply");
    yaml_event_t *ev = &ps->ev[ps->nev];
    if (!yaml_parser_parse(&ps->p, ev)) {
        yaml_parser_t *p = &ld->ps->p;
        const yaml_mark_t *m = p->problem_mark.line || p->problem_mark.column ? &p->problem_mark
                                                                             : &p->context_mark;
        fail(ld, m, "%s%s%s", p->problem ? p->problem : "invalid YAML",
             p->context ? " " : "", p->context ? p->context : "");
    }
    ps->nev++;
    return ev;
}

static void done(Load *ld, yaml_event_t *ev)
{
    yaml_event_delete(ev);
    if (ld->ps->nev > 0 && ev == &ld->ps->ev[ld->ps->nev - 1])
        ld->ps->nev--;
}

static int word_in(const char *s, const char *const *list)
{
    for (int k = 0; list[k]; k++)
        if (strcmp(s, list[k]) == 0)
            return 1;
    return 0;
}

/* [-+]? then digits of a set with '_' anywhere after the first */
static int digits_ok(const char *s, const char *set, int first_digit)
{
    if (!*s || (first_digit && *s == '_'))
        return 0;
    for (; *s; s++)
        if (*s != '_' && !strchr(set, *s))
            return 0;
    return 1;
}

/* Push the value of a plain scalar as YAML 1.1's resolver reads it. */
static void push_plain(lua_State *L, const char *s, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On",
                                        "ON", NULL};
    static const char *const falses[] = {"no", "No", "NO", "false", "False", "FALSE", "off", "Off",
                                         "OFF", NULL};
    if (strlen(s) != len) { /* a NUL inside: only a string can hold it */
        lua_pushlstring(L, s, len);
        return;
    }
    if (word_in(s, nulls)) {
        lua_pushlightuserdata(L, NULL);
        return;
    }
    if (word_in(s, trues) || word_in(s, falses)) {
        lua_pushboolean(L, word_in(s, trues));
        return;
    }
    const char *b = s;
    int neg = 0;
    if (*b == '-' || *b == '+')
        neg = *b++ == '-';
    char clean[80];
    size_t n = 0;
    for (const char *q = b; *q && n + 1 < sizeof clean; q++)
        if (*q != '_')
            clean[n++] = *q;
    clean[n] = '\0';
    int base = 0;
    const char *digits = clean;
    if (len < 70) {
        if (b[0] == '0' && b[1] == 'b' && digits_ok(b + 2, "01", 0))
            base = 2, digits = clean + 2;
        else if (b[0] == '0' && b[1] == 'x' && digits_ok(b + 2, "0123456789abcdefABCDEF", 0))
            base = 16, digits = clean + 2;
        else if (strcmp(b, "0") == 0)
            base = 10;
        else if (b[0] == '0' && digits_ok(b + 1, "01234567", 0))
            base = 8;
        else if (b[0] >= '1' && b[0] <= '9' && digits_ok(b, "0123456789", 1))
            base = 10;
    }
    if (base && *digits) {
        errno = 0;
        char *end;
        unsigned long long v = strtoull(digits, &end, base);
        if (!*end && errno == 0 && v <= (unsigned long long)LUA_MAXINTEGER) {
            lua_pushinteger(L, neg ? -(lua_Integer)v : (lua_Integer)v);
            return;
        }
    }
    if (len < 70 && b[0] >= '1' && b[0] <= '9' && strchr(b, ':')) { /* sexagesimal 1:30 */
        lua_Integer v = 0;
        int ok = 1;
        const char *q = clean;
        while (*q && ok) {
            char *end;
            long part = strtol(q, &end, 10);
            /* digits only (strtol takes a sign), and the range checked before
             * the arithmetic that assumes it (a negative part overflowed) */
            ok = end != q && isdigit((unsigned char)*q) && (*end == ':' || !*end) && part >= 0 &&
                 part < LONG_MAX && (q == clean || part < 60) && v <= (LUA_MAXINTEGER - part) / 60;
            if (ok)
                v = v * 60 + part;
            q = *end ? end + 1 : end;
        }
        if (ok) {
            lua_pushinteger(L, neg ? -v : v);
            return;
        }
    }
    /* floats: a '.' is required; an exponent needs its sign (YAML 1.1) */
    if (strcmp(b, ".inf") == 0 || strcmp(b, ".Inf") == 0 || strcmp(b, ".INF") == 0) {
        lua_pushnumber(L, neg ? -HUGE_VAL : HUGE_VAL);
        return;
    }
    if (!neg && *s != '+' && (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN"))) {
        lua_pushnumber(L, NAN);
        return;
    }
    if (len < 70 && strchr(b, '.') && b[0] != '_') {
        const char *q = b;
        int mant = 0;
        while (isdigit((unsigned char)*q) || *q == '_')
            mant += *q++ != '_';
        int ok = *q == '.' && (mant > 0 || isdigit((unsigned char)q[1]));
        if (ok) {
            q++;
            while (isdigit((unsigned char)*q) || *q == '_')
                q++;
            if (*q == 'e' || *q == 'E') {
                q++;
                ok = (*q == '+' || *q == '-') && isdigit((unsigned char)q[1]);
                q++;
                while (isdigit((unsigned char)*q))
                    q++;
            }
            ok = ok && !*q;
        }
        if (ok) {
            lua_pushnumber(L, strtod(clean, NULL) * (neg ? -1 : 1));
            return;
        }
    }
    lua_pushlstring(L, s, len);
}

static void node(Load *ld, yaml_event_t *ev, int depth);

static void anchor(Load *ld, const yaml_char_t *name)
{
    if (!name)
        return;
    lua_pushvalue(ld->L, -1);
    lua_setfield(ld->L, ld->anchors, (const char *)name);
}

static void check_tag(Load *ld, yaml_event_t *ev, const yaml_char_t *tag, const char *expect)
{
    if (!tag)
        return;
    const char *t = (const char *)tag;
    if (strcmp(t, "!vault") == 0)
        fail(ld, &ev->start_mark, "vault-encrypted values (!vault) are not supported");
    if (strcmp(t, expect) == 0 || (strcmp(expect, "tag:yaml.org,2002:str") == 0 &&
                                   (strcmp(t, "!unsafe") == 0 || strcmp(t, "!") == 0)))
        return;
    fail(ld, &ev->start_mark, "unsupported tag '%s'", t);
}

/* The event is a node's first event; push its value (it owns ev). */
static void node(Load *ld, yaml_event_t *ev, int depth)
{
    lua_State *L = ld->L;
    if (depth > MAX_NEST)
        fail(ld, &ev->start_mark, "nested deeper than %d", MAX_NEST);
    luaL_checkstack(L, 10, "yaml");
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        if (lua_getfield(L, ld->anchors, (const char *)ev->data.alias.anchor) == LUA_TNIL)
            fail(ld, &ev->start_mark, "unknown alias '%s'", ev->data.alias.anchor);
        break;
    case YAML_SCALAR_EVENT: {
        const char *s = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        const char *tag = (const char *)ev->data.scalar.tag;
        if (tag && strcmp(tag, "tag:yaml.org,2002:int") != 0 &&
            strcmp(tag, "tag:yaml.org,2002:float") != 0 && strcmp(tag, "tag:yaml.org,2002:bool") &&
            strcmp(tag, "tag:yaml.org,2002:null") != 0)
            check_tag(ld, ev, ev->data.scalar.tag, "tag:yaml.org,2002:str");
        if (tag && strcmp(tag, "tag:yaml.org,2002:str") && strcmp(tag, "!unsafe") && strcmp(tag, "!"))
            push_plain(L, s, len); /* !!int and friends: resolved as if plain */
        else if (!tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            push_plain(L, s, len);
        else
            lua_pushlstring(L, s, len);
        anchor(ld, ev->data.scalar.anchor);
        break;
    }
    case YAML_SEQUENCE_START_EVENT: {
        check_tag(ld, ev, ev->data.sequence_start.tag, "tag:yaml.org,2002:seq");
        lua_newtable(L);
        anchor(ld, ev->data.sequence_start.anchor);
        lua_Integer k = 0;
        for (;;) {
            yaml_event_t *item = next_event(ld);
            if (item->type == YAML_SEQUENCE_END_EVENT) {
                done(ld, item);
                break;
            }
            node(ld, item, depth + 1);
            lua_rawseti(L, -2, ++k);
        }
        break;
    }
    case YAML_MAPPING_START_EVENT: {
        check_tag(ld, ev, ev->data.mapping_start.tag, "tag:yaml.org,2002:map");
        lua_newtable(L);
        int map = lua_gettop(L);
        lua_createtable(L, 0, 3); /* meta entry */
        lua_newtable(L);
        lua_setfield(L, -2, "keys");
        lua_newtable(L);
        lua_setfield(L, -2, "lines");
        lua_pushinteger(L, (lua_Integer)ev->start_mark.line + 1);
        lua_setfield(L, -2, "line");
        lua_pushvalue(L, map);
        lua_pushvalue(L, -2);
        lua_rawset(L, ld->meta);
        int meta = lua_gettop(L);
        lua_getfield(L, meta, "keys");
        lua_getfield(L, meta, "lines");
        int keys = meta + 1, lines = meta + 2;
        lua_pushvalue(L, map);
        anchor(ld, ev->data.mapping_start.anchor);
        lua_pop(L, 1);
        lua_Integer nkeys = 0;
        for (;;) {
            yaml_event_t *kev = next_event(ld);
            if (kev->type == YAML_MAPPING_END_EVENT) {
                done(ld, kev);
                break;
            }
            yaml_mark_t at = kev->start_mark;
            if (kev->type != YAML_SCALAR_EVENT && kev->type != YAML_ALIAS_EVENT)
                fail(ld, &at, "a mapping key must be a scalar");
            node(ld, kev, depth + 1);
            int kt = lua_type(L, -1);
            if (kt == LUA_TLIGHTUSERDATA || kt == LUA_TTABLE ||
                (kt == LUA_TNUMBER && isnan(lua_tonumber(L, -1))))
                fail(ld, &at, "a mapping key must be a string, a number or a boolean");
            node(ld, next_event(ld), depth + 1);
            lua_pushvalue(L, -2);
            if (lua_rawget(L, map) == LUA_TNIL) {
                lua_pushvalue(L, -3);
                lua_rawseti(L, keys, ++nkeys);
            }
            lua_pop(L, 1);
            lua_pushvalue(L, -2);
            lua_pushinteger(L, (lua_Integer)at.line + 1);
            lua_rawset(L, lines);
            lua_rawset(L, map); /* a repeated key: the last value wins, as in PyYAML */
        }
        lua_settop(L, map);
        break;
    }
    default:
        fail(ld, &ev->start_mark, "unexpected YAML event");
    }
    done(ld, ev);
}

/* Runs under pcall: (Load*) -> value, meta */
static int load_protected(lua_State *L)
{
    Load *ld = lua_touserdata(L, 1);
    ld->L = L;
    lua_newtable(L);
    ld->meta = lua_gettop(L);
    lua_newtable(L);
    ld->anchors = lua_gettop(L);
    done(ld, next_event(ld)); /* stream start */
    yaml_event_t *ev = next_event(ld);
    if (ev->type == YAML_STREAM_END_EVENT) { /* an empty file: None, as PyYAML says */
        done(ld, ev);
        lua_pushlightuserdata(L, NULL);
        lua_pushvalue(L, ld->meta);
        return 2;
    }
    done(ld, ev); /* document start */
    node(ld, next_event(ld), 0);
    int value = lua_gettop(L);
    done(ld, next_event(ld)); /* document end */
    ev = next_event(ld);
    if (ev->type != YAML_STREAM_END_EVENT)
        fail(ld, &ev->start_mark, "more than one YAML document");
    done(ld, ev);
    lua_pushvalue(L, value);
    lua_pushvalue(L, ld->meta);
    return 2;
}

/* yaml.load(text [, name]) -> value, meta | nil, "NAME:LINE:COL: problem", "EYAML" */
static int y_load(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    Load ld;
    memset(&ld, 0, sizeof ld);
    ld.name = luaL_optstring(L, 2, "<yaml>");
    ld.ps = lua_newuserdatauv(L, sizeof *ld.ps, 0);
    memset(ld.ps, 0, sizeof *ld.ps);
    luaL_setmetatable(L, PARSER_MT);
    if (!yaml_parser_initialize(&ld.ps->p))
        return luaL_error(L, "yaml.load: out of memory");
    ld.ps->live = 1;
    yaml_parser_set_input_string(&ld.ps->p, (const unsigned char *)text, len);
    lua_pushcfunction(L, load_protected);
    lua_pushlightuserdata(L, &ld);
    int rc = lua_pcall(L, 1, 2, 0);
    parser_close(ld.ps);
    if (rc == LUA_OK)
        return 2;
    if (lua_type(L, -1) != LUA_TSTRING || rc != LUA_ERRRUN)
        return lua_error(L);
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushliteral(L, "EYAML");
    return 3;
}

static const luaL_Reg funcs[] = {
    {"load", y_load},
    {NULL, NULL},
};

int luaopen_etcdrun_core_yaml(lua_State *L)
{
    if (luaL_newmetatable(L, PARSER_MT)) {
        lua_pushcfunction(L, parser_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
