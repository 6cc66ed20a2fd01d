/*
 * template-text.c: what the template family borrows from libraries: ICU for
 * Unicode character names (\N{...}), Python's idea of a printable character
 * and regular expressions close to Python's re (regex_replace,
 * regex_search, the match/search tests), and libyaml's emitter for to_yaml,
 * the emitter Ansible's to_yaml itself runs (PyYAML's CSafeDumper).
 */
#include "template-internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/uchar.h>
#include <unicode/ucasemap.h>
#include <unicode/uregex.h>
#include <unicode/utext.h>
#include <yaml.h>

/* \N{name}: the code point, or -1 */
long tpl_unicode_lookup(const char *name)
{
    UErrorCode err = U_ZERO_ERROR;
    UChar32 c = u_charFromName(U_UNICODE_CHAR_NAME, name, &err);
    if (U_SUCCESS(err))
        return c;
    err = U_ZERO_ERROR;
    c = u_charFromName(U_CHAR_NAME_ALIAS, name, &err);
    return U_SUCCESS(err) ? c : -1;
}

/* Python's str.isprintable() for one code point (repr escapes the rest) */
int tpl_py_printable(unsigned long cp)
{
    if (cp == ' ')
        return 1;
    switch (u_charType((UChar32)cp)) {
    case U_CONTROL_CHAR: case U_FORMAT_CHAR: case U_SURROGATE: case U_PRIVATE_USE_CHAR:
    case U_UNASSIGNED: case U_LINE_SEPARATOR: case U_PARAGRAPH_SEPARATOR:
    case U_SPACE_SEPARATOR:
        return 0;
    default:
        return 1;
    }
}

/* Push s upper- or lower-cased with ICU's full case mapping (root locale),
 * as Python's str.upper() and str.lower() do it: 'straße' -> 'STRASSE'. */
void tpl_push_case(Render *r, const Node *n, const char *s, size_t len, int upper)
{
    lua_State *L = r->c.L;
    if (len > (size_t)INT32_MAX / 3)
        tpl_fail(&r->c, n ? n->pos : 0, "string longer than %zu MiB", MAX_OUTPUT >> 20);
    UErrorCode err = U_ZERO_ERROR;
    UCaseMap *cm = ucasemap_open("", 0, &err);
    if (U_FAILURE(err))
        luaL_error(L, "template: ICU case map: %s", u_errorName(err));
    int32_t cap = (int32_t)len * 3 + 16; /* one UTF-8 byte maps to at most 3 */
    char *d = malloc((size_t)cap);
    if (!d) {
        ucasemap_close(cm);
        luaL_error(L, "template: out of memory");
    }
    int32_t out = upper ? ucasemap_utf8ToUpper(cm, d, cap, s, (int32_t)len, &err)
                        : ucasemap_utf8ToLower(cm, d, cap, s, (int32_t)len, &err);
    ucasemap_close(cm);
    if (U_FAILURE(err)) {
        free(d);
        lua_pushlstring(L, s, len); /* not text ICU can map: unchanged */
        return;
    }
    lua_pushlstring(L, d, (size_t)out); /* may raise (memory): d must be freed first */
    free(d);
}

/* Python's str.isspace() for one code point (what strip() removes): the
 * White_Space characters and the separators \x1c-\x1f */
int tpl_py_space(unsigned long cp)
{
    return (cp >= 0x1c && cp <= 0x1f) || u_isUWhiteSpace((UChar32)cp);
}

/* ---- regular expressions (ICU, on the UTF-8 bytes) ---- */

#define REGEX_TIME_LIMIT 2000 /* match-engine steps, in ICU's units: a few seconds at most */

typedef struct Rx {
    URegularExpression *re;
    UText *ut;
} Rx;

static void rx_close(Rx *x)
{
    if (x->re)
        uregex_close(x->re);
    if (x->ut)
        utext_close(x->ut);
    x->re = NULL;
    x->ut = NULL;
}

static int rx_gc(lua_State *L)
{
    rx_close(lua_touserdata(L, 1));
    return 0;
}

/* Compile the pattern at pat for the subject at s; the handle is a userdata
 * pushed on the stack, so an error raised later frees it. Python's (?P<n>)
 * and (?P=n) become ICU's (?<n>) and \k<n>. */
static Rx *rx_open(Render *r, const Node *n, int s, int pat, int icase, int ml)
{
    lua_State *L = r->c.L;
    size_t plen, slen;
    const char *p = lua_tolstring(L, pat, &plen);
    const char *sub = lua_tolstring(L, s, &slen);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t k = 0; k < plen; k++) {
        if (p[k] == '\\' && k + 1 < plen) {
            luaL_addlstring(&b, p + k, 2);
            k++;
        } else if (plen - k >= 4 && memcmp(p + k, "(?P<", 4) == 0) {
            luaL_addstring(&b, "(?<");
            k += 3;
        } else if (plen - k >= 4 && memcmp(p + k, "(?P=", 4) == 0) {
            const char *e = memchr(p + k, ')', plen - k);
            if (!e)
                tpl_fail(&r->c, n->pos, "invalid regular expression: (?P= not closed");
            luaL_addstring(&b, "\\k<");
            luaL_addlstring(&b, p + k + 4, (size_t)(e - p - k - 4));
            luaL_addchar(&b, '>');
            k = (size_t)(e - p);
        } else {
            luaL_addchar(&b, p[k]);
        }
    }
    luaL_pushresult(&b);
    size_t tlen;
    const char *tp = lua_tolstring(L, -1, &tlen);
    if (tlen > INT32_MAX || slen > INT32_MAX)
        tpl_fail(&r->c, n->pos, "regular expression or subject too long");
    Rx *x = lua_newuserdatauv(L, sizeof *x, 0);
    memset(x, 0, sizeof *x);
    lua_newtable(L);
    lua_pushcfunction(L, rx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
    UErrorCode err = U_ZERO_ERROR;
    UParseError pe;
    uint32_t flags = (icase ? UREGEX_CASE_INSENSITIVE : 0) | (ml ? UREGEX_MULTILINE : 0);
    UText *pt = utext_openUTF8(NULL, tp, (int64_t)tlen, &err);
    if (U_SUCCESS(err))
        x->re = uregex_openUText(pt, flags, &pe, &err);
    utext_close(pt);
    if (U_FAILURE(err)) {
        char buf[100];
        tpl_fail(&r->c, n->pos, "invalid regular expression '%s': %s",
                 tpl_excerpt(buf, sizeof buf, p, plen), u_errorName(err));
    }
    x->ut = utext_openUTF8(NULL, sub, (int64_t)slen, &err);
    uregex_setUText(x->re, x->ut, &err);
    uregex_setTimeLimit(x->re, REGEX_TIME_LIMIT, &err);
    if (U_FAILURE(err))
        tpl_fail(&r->c, n->pos, "regular expression: %s", u_errorName(err));
    return x;
}

static void rx_check(Render *r, const Node *n, UErrorCode err)
{
    if (err == U_REGEX_TIME_OUT)
        tpl_fail(&r->c, n->pos, "regular expression took too long");
    if (U_FAILURE(err))
        tpl_fail(&r->c, n->pos, "regular expression: %s", u_errorName(err));
}

/* Whether the pattern matches the string at s (anchored: at its start,
 * as re.match); with push, the matched text is pushed when it does. */
int tpl_regex_search(Render *r, const Node *n, int s, int pat, int icase, int ml, int anchored,
                     int push)
{
    lua_State *L = r->c.L;
    int top = lua_gettop(L);
    Rx *x = rx_open(r, n, s, pat, icase, ml);
    UErrorCode err = U_ZERO_ERROR;
    UBool found = anchored ? uregex_lookingAt64(x->re, 0, &err) : uregex_find64(x->re, 0, &err);
    rx_check(r, n, err);
    size_t slen;
    const char *sub = lua_tolstring(L, s, &slen);
    int64_t b = found ? uregex_start64(x->re, 0, &err) : 0, e = found ? uregex_end64(x->re, 0, &err)
                                                                      : 0;
    rx_check(r, n, err);
    rx_close(x);
    lua_settop(L, top);
    if (found && push)
        lua_pushlstring(L, sub + b, (size_t)(e - b));
    return found;
}

/* Push the string at s with each match of pat replaced by rep, whose \1,
 * \g<1> and \g<name> (Python's syntax) insert groups. */
void tpl_regex_replace(Render *r, const Node *n, int s, int pat, int rep, int icase, int ml,
                       lua_Integer count)
{
    lua_State *L = r->c.L;
    int top = lua_gettop(L);
    size_t slen, rlen;
    const char *sub = lua_tolstring(L, s, &slen), *rp = lua_tolstring(L, rep, &rlen);
    Rx *x = rx_open(r, n, s, pat, icase, ml);
    UErrorCode err = U_ZERO_ERROR;
    int32_t groups = uregex_groupCount(x->re, &err);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int64_t last = 0;
    lua_Integer done = 0;
    while ((count < 0 || done < count) && uregex_findNext(x->re, &err)) {
        int64_t ms = uregex_start64(x->re, 0, &err), me = uregex_end64(x->re, 0, &err);
        rx_check(r, n, err);
        if (++r->iterations > MAX_ITERATIONS)
            tpl_fail(&r->c, n->pos, "more than %ld regular expression matches", MAX_ITERATIONS);
        luaL_addlstring(&b, sub + last, (size_t)(ms - last));
        for (size_t k = 0; k < rlen; k++) {
            if (rp[k] != '\\' || k + 1 >= rlen) {
                luaL_addchar(&b, rp[k]);
                continue;
            }
            char c = rp[++k];
            int32_t g = -1;
            if (c == '0') { /* Python: \0 is an octal escape, not group 0 */
                int v = 0;
                for (int d = 0; d < 2 && k + 1 < rlen && rp[k + 1] >= '0' && rp[k + 1] <= '7'; d++)
                    v = v * 8 + rp[++k] - '0';
                luaL_addchar(&b, (char)v);
                continue;
            } else if (c >= '1' && c <= '9') {
                g = c - '0';
                if (k + 1 < rlen && tpl_is_digit(rp[k + 1]) && g * 10 + rp[k + 1] - '0' <= groups)
                    g = g * 10 + rp[++k] - '0';
            } else if (c == 'g' && k + 1 < rlen && rp[k + 1] == '<') {
                const char *e = memchr(rp + k, '>', rlen - k);
                if (!e)
                    tpl_fail(&r->c, n->pos, "regex_replace: missing '>' in \\g<...>");
                const char *name = rp + k + 2;
                size_t nl = (size_t)(e - name);
                char *end;
                char tmp[64];
                if (nl == 0 || nl >= sizeof tmp)
                    tpl_fail(&r->c, n->pos, "regex_replace: bad group name in \\g<...>");
                memcpy(tmp, name, nl);
                tmp[nl] = '\0';
                long num = strtol(tmp, &end, 10);
                if (*end == '\0')
                    g = (int32_t)num;
                else
                    g = uregex_groupNumberFromCName(x->re, tmp, (int32_t)nl, &err);
                if (U_FAILURE(err))
                    tpl_fail(&r->c, n->pos, "regex_replace: unknown group name '%s'", tmp);
                k = (size_t)(e - rp);
            } else {
                char e = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == 'f' ? '\f'
                       : c == 'v' ? '\v' : c == 'a' ? '\a' : c == 'b' ? '\b' : c == '\\' ? '\\' : 0;
                if (e) {
                    luaL_addchar(&b, e);
                } else if (tpl_is_alpha(c)) {
                    tpl_fail(&r->c, n->pos, "regex_replace: bad escape \\%c in the replacement", c);
                } else {
                    luaL_addchar(&b, '\\');
                    luaL_addchar(&b, c);
                }
                continue;
            }
            if (g < 0 || g > groups)
                tpl_fail(&r->c, n->pos, "regex_replace: invalid group reference %d", (int)g);
            int64_t gs = uregex_start64(x->re, g, &err), ge = uregex_end64(x->re, g, &err);
            rx_check(r, n, err);
            if (gs >= 0)
                luaL_addlstring(&b, sub + gs, (size_t)(ge - gs));
        }
        last = me;
        done++;
        if (luaL_bufflen(&b) > MAX_OUTPUT)
            tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
    }
    rx_check(r, n, err);
    luaL_addlstring(&b, sub + last, slen - (size_t)last);
    luaL_pushresult(&b);
    rx_close(x);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
}

/* ---- to_yaml: the events PyYAML's SafeRepresenter would give libyaml ---- */

typedef struct Yem {
    yaml_emitter_t em;
    int live;
    char *out; /* malloc'd, owned by the userdata: the Lua stack moves under the emitter */
    size_t len, cap;
} Yem;

static int y_write(void *data, unsigned char *buf, size_t size)
{
    Yem *y = data;
    if (size > MAX_OUTPUT - y->len)
        return 0;
    if (y->len + size > y->cap) {
        size_t cap = y->cap ? y->cap : 1024;
        while (cap < y->len + size)
            cap *= 2;
        char *p = realloc(y->out, cap);
        if (!p)
            return 0;
        y->out = p;
        y->cap = cap;
    }
    memcpy(y->out + y->len, buf, size);
    y->len += size;
    return 1;
}

/* Whether PyYAML's resolver reads this plain scalar as something other
 * than a string (YAML 1.1: bool, int, float, null, timestamp, merge, value). */
static int y_resolves(Render *r, const Node *n, int s)
{
    static const char *const pats[] = {
        "^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
        "^(?:[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?|\\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        "|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN))$",
        "^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
        "|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
        "^(?:<<)$",
        "^(?:~|null|Null|NULL|)$",
        "^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?"
        "(?:[Tt]|[ \\t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\\.[0-9]*)?"
        "(?:[ \\t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
        "^(?:=)$",
        NULL,
    };
    lua_State *L = r->c.L;
    for (int k = 0; pats[k]; k++) {
        lua_pushstring(L, pats[k]);
        int found = tpl_regex_search(r, n, s, lua_gettop(L), 0, 0, 0, 0);
        lua_pop(L, 1);
        if (found)
            return 1;
    }
    return 0;
}

static void y_emit(Render *r, const Node *n, yaml_emitter_t *em, yaml_event_t *ev)
{
    if (!yaml_emitter_emit(em, ev))
        tpl_fail(&r->c, n->pos, "to_yaml: %s", em->problem ? em->problem : "output too long");
}

static void y_scalar(Render *r, const Node *n, yaml_emitter_t *em, const char *s, size_t len,
                     int plain_implicit, int quoted_implicit)
{
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, (yaml_char_t *)"tag:yaml.org,2002:str",
                                      (yaml_char_t *)s, (int)len, plain_implicit, quoted_implicit,
                                      YAML_ANY_SCALAR_STYLE))
        luaL_error(r->c.L, "template: out of memory");
    y_emit(r, n, em, &ev);
}

static void y_node(Render *r, const Node *n, yaml_emitter_t *em, int idx, int depth)
{
    lua_State *L = r->c.L;
    char buf[64];
    if (depth > MAX_DEPTH)
        tpl_fail(&r->c, n->pos, "to_yaml: value nested too deeply (limit %d)", MAX_DEPTH);
    luaL_checkstack(L, 8, "to_yaml");
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (len > INT32_MAX)
            tpl_fail(&r->c, n->pos, "to_yaml: string too long");
        y_scalar(r, n, em, s, len, !y_resolves(r, n, idx), 1);
        return;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            snprintf(buf, sizeof buf, LUA_INTEGER_FMT, lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            if (isnan(d)) {
                snprintf(buf, sizeof buf, ".nan");
            } else if (isinf(d)) {
                snprintf(buf, sizeof buf, d > 0 ? ".inf" : "-.inf");
            } else {
                char f[64];
                tpl_fmt_float(d, f, sizeof f);
                char *e = strchr(f, 'e');
                if (e && !strchr(f, '.'))
                    snprintf(buf, sizeof buf, "%.*s.0%s", (int)(e - f), f, e);
                else
                    snprintf(buf, sizeof buf, "%s", f);
            }
        }
        y_scalar(r, n, em, buf, strlen(buf), 1, 0);
        return;
    case LUA_TBOOLEAN:
        snprintf(buf, sizeof buf, "%s", lua_toboolean(L, idx) ? "true" : "false");
        y_scalar(r, n, em, buf, strlen(buf), 1, 0);
        return;
    case LUA_TTABLE:
        break;
    default:
        if (tpl_is_none(L, idx)) {
            y_scalar(r, n, em, "null", 4, 1, 0);
            return;
        }
        tpl_fail(&r->c, n->pos, "to_yaml: cannot encode %s", tpl_a_type(L, idx));
    }
    int list = tpl_is_list(L, idx);
    if (list) {
        lua_pushvalue(L, idx);
    } else {
        tpl_sorted_keys(r, idx, 0, n);
    }
    int items = lua_gettop(L);
    lua_Integer len = (lua_Integer)lua_rawlen(L, items);
    /* default_flow_style=None: flow when every item is a scalar */
    int flow = 1;
    for (lua_Integer k = 1; k <= len && flow; k++) {
        lua_rawgeti(L, items, k);
        if (!list)
            lua_rawget(L, idx);
        flow = lua_type(L, -1) != LUA_TTABLE;
        lua_pop(L, 1);
    }
    yaml_event_t ev;
    if (list)
        yaml_sequence_start_event_initialize(&ev, NULL, (yaml_char_t *)"tag:yaml.org,2002:seq", 1,
                                             flow ? YAML_FLOW_SEQUENCE_STYLE
                                                  : YAML_BLOCK_SEQUENCE_STYLE);
    else
        yaml_mapping_start_event_initialize(&ev, NULL, (yaml_char_t *)"tag:yaml.org,2002:map", 1,
                                            flow ? YAML_FLOW_MAPPING_STYLE
                                                 : YAML_BLOCK_MAPPING_STYLE);
    y_emit(r, n, em, &ev);
    for (lua_Integer k = 1; k <= len; k++) {
        lua_rawgeti(L, items, k);
        y_node(r, n, em, lua_gettop(L), depth + 1);
        if (!list) {
            lua_rawget(L, idx);
            y_node(r, n, em, lua_gettop(L), depth + 1);
        }
        lua_pop(L, 1);
    }
    if (list)
        yaml_sequence_end_event_initialize(&ev);
    else
        yaml_mapping_end_event_initialize(&ev);
    y_emit(r, n, em, &ev);
    lua_settop(L, items - 1);
}

static int yem_gc(lua_State *L)
{
    Yem *y = lua_touserdata(L, 1);
    if (y->live)
        yaml_emitter_delete(&y->em);
    y->live = 0;
    free(y->out);
    y->out = NULL;
    return 0;
}

/* Push the value at idx as YAML, as Ansible's to_yaml writes it. */
void tpl_to_yaml(Render *r, int idx, const Node *n)
{
    lua_State *L = r->c.L;
    idx = lua_absindex(L, idx);
    Yem *y = lua_newuserdatauv(L, sizeof *y, 0);
    memset(y, 0, sizeof *y);
    lua_newtable(L);
    lua_pushcfunction(L, yem_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    int yslot = lua_gettop(L);
    if (!yaml_emitter_initialize(&y->em))
        luaL_error(L, "template: out of memory");
    y->live = 1;
    yaml_emitter_set_output(&y->em, y_write, y);
    yaml_emitter_set_unicode(&y->em, 1);
    yaml_emitter_set_width(&y->em, 80);
    yaml_emitter_set_indent(&y->em, 2);
    yaml_event_t ev;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    y_emit(r, n, &y->em, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    y_emit(r, n, &y->em, &ev);
    y_node(r, n, &y->em, idx, 0);
    yaml_document_end_event_initialize(&ev, 1);
    y_emit(r, n, &y->em, &ev);
    yaml_stream_end_event_initialize(&ev);
    y_emit(r, n, &y->em, &ev);
    if (!yaml_emitter_flush(&y->em))
        tpl_fail(&r->c, n->pos, "to_yaml: output too long");
    lua_pushlstring(L, y->out ? y->out : "", y->len);
    lua_pushcfunction(L, yem_gc);
    lua_pushvalue(L, yslot);
    lua_call(L, 1, 0);
    lua_remove(L, yslot);
}
