/*
 * template.c: a Jinja2 template engine as Ansible's template module runs
 * Jinja2 (the README lists what is supported and what is refused).
 *
 * Statements: {{ expr }}, {% for %} (1 to 8 targets, a loop `if`, else),
 * {% if %}/{% elif %}/{% else %}, {% raw %}, {# #}, whitespace control
 * ({%- -%} {{- -}} {#- -#}, + to keep a newline). Expressions: Jinja's
 * grammar and precedence (template-parse.c), Python's values and operators
 * (template-eval.c), the filters and tests Ansible templates use
 * (template-filters.c; ICU and libyaml through template-text.c).
 *
 * Choices where Jinja (Python) and Lua disagree, made once here:
 *   - integer subscripts are 0-based list indexes as in Jinja: a[0] is the
 *     Lua a[1], a[-1] the last item (a.0 is the same as a[0]);
 *   - undefined variables, missing keys and indexes out of range are errors
 *     naming template:line:column (Ansible's StrictUndefined) unless
 *     absorbed by |default or `is defined`;
 *   - trim_blocks is on, lstrip_blocks off, as in Ansible's template
 *     module; trailing newlines are Ansible's: Jinja drops the source's
 *     final newline, then as many newlines as the source ended with are
 *     restored (Templar's preserve_trailing_newlines);
 *   - {{ }} prints as Python's str(): 1.0 for a float, True/False, lists,
 *     tuples and mappings as their repr; None (cjson.null, a NULL light
 *     userdata) prints nothing (Ansible's finalize); functions and other
 *     Lua values are errors, never a silent "table: 0x...";
 *   - a table that is not a sequence iterates (and prints, and .items())
 *     by sorted key: numbers first, then strings bytewise, so output never
 *     depends on hash order; a {...} literal keeps its own key order;
 *   - truthiness is Jinja's: false, 0, "", None and {} are false;
 *   - no calls and no metamethods: every lookup is raw, into the vars table
 *     and the tables reachable from it only.
 *
 * Memory: the AST lives in an arena and the output in a buffer, both owned
 * by a userdata with __gc/__close, so an error raised anywhere (lua_error
 * longjmps) leaks nothing; render() also frees them eagerly.
 */#include "template-internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- memory owned by a userdata ---- */

static void state_free(State *st)
{
    while (st->chunks) {
        Chunk *c = st->chunks;
        st->chunks = c->next;
        free(c);
    }
    free(st->out);
    st->out = NULL;
    st->outlen = st->outcap = 0;
}

static int state_gc(lua_State *L)
{
    state_free(luaL_checkudata(L, 1, STATE_MT));
    return 0;
}

void *tpl_arena_alloc(lua_State *L, State *st, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    Chunk *c = st->chunks;
    if (!c || c->size - c->used < n) {
        size_t size = n > CHUNK_SIZE ? n : CHUNK_SIZE;
        c = malloc(sizeof *c + size);
        if (!c)
            luaL_error(L, "template.render: out of memory");
        c->used = 0;
        c->size = size;
        c->next = st->chunks;
        st->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

/* ---- errors ---- */

void tpl_line_col(const Ctx *c, size_t pos, int *line, int *col)
{
    int l = 1;
    size_t bol = 0;
    for (size_t i = 0; i < pos && i < c->len; i++) {
        if (c->src[i] == '\n') {
            l++;
            bol = i + 1;
        }
    }
    *line = l;
    *col = (int)(pos - bol + 1);
}

/* Raise "template.render: NAME:LINE:COL: detail" as a template error. */
__attribute__((noreturn, format(printf, 3, 4)))
void tpl_fail(const Ctx *c, size_t pos, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    int line, col;
    tpl_line_col(c, pos, &line, &col);
    lua_pushfstring(c->L, "template.render: %s:%d:%d: %s", c->name, line, col, detail);
    c->st->tmpl_err = 1;
    lua_error(c->L);
    abort(); /* not reached: lua_error does not return */
}

/* Printable, bounded copy of user bytes for a message. */
const char *tpl_excerpt(char *buf, size_t size, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (o + 8 >= size || o >= 60) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '\n')
            o += (size_t)snprintf(buf + o, size - o, "\\n");
        else if (ch < 0x20 || ch == 0x7f)
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    buf[o] = '\0';
    return buf;
}

int tpl_is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

int tpl_is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

int tpl_is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}


/* ---- rendering ---- */

static void out_append(Render *r, const Node *n, const char *s, size_t len)
{
    State *st = r->c.st;
    if (len == 0)
        return;
    if (len > MAX_OUTPUT - st->outlen)
        tpl_fail(&r->c, n->pos, "output longer than %zu MiB", MAX_OUTPUT >> 20);
    if (st->outlen + len > st->outcap) {
        size_t cap = st->outcap ? st->outcap : 4096;
        while (cap < st->outlen + len)
            cap *= 2;
        char *p = realloc(st->out, cap);
        if (!p)
            luaL_error(r->c.L, "template.render: out of memory");
        st->out = p;
        st->outcap = cap;
    }
    memcpy(st->out + st->outlen, s, len);
    st->outlen += len;
}

static void render_body(Render *r, const Node *n);

static void set_field(lua_State *L, int t, const char *k, lua_Integer v, int isbool)
{
    if (isbool)
        lua_pushboolean(L, (int)v);
    else
        lua_pushinteger(L, v);
    lua_setfield(L, t, k); /* our own fresh table: no metamethods */
}

/* Replace the list at idx with the items for which the loop's `if` holds. */
static void loop_filter(Render *r, int idx, const Node *n)
{
    lua_State *L = r->c.L;
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx), out = 0;
    int saved = r->nscopes;
    lua_newtable(L);
    lua_pushnil(L);
    lua_pushnil(L);
    int top = lua_gettop(L);
    for (int k = 0; k < n->ntg; k++)
        r->scopes[r->nscopes++] = (Scope){n->tg[k], n->tglen[k], top - (n->ntg == 1 ? 1 : 0)};
    for (lua_Integer i = 1; i <= len; i++) {
        if (++r->iterations > MAX_ITERATIONS)
            tpl_fail(&r->c, n->pos, "more than %ld loop iterations", MAX_ITERATIONS);
        lua_rawgeti(L, idx, i);
        lua_replace(L, top - 1);
        if (n->ntg > 1) {
            /* unpacked targets see the item's parts while filtering */
            r->nscopes = saved;
            if (lua_type(L, top - 1) == LUA_TTABLE &&
                (lua_Integer)lua_rawlen(L, top - 1) == n->ntg) {
                for (int k = 0; k < n->ntg; k++) {
                    lua_rawgeti(L, top - 1, k + 1);
                    r->scopes[r->nscopes++] = (Scope){n->tg[k], n->tglen[k], lua_gettop(L)};
                }
            }
        }
        tpl_eval_strict(r, n->argv[0]);
        int keep = tpl_truthy(r, -1, n->argv[0]);
        lua_settop(L, top);
        if (keep) {
            lua_pushvalue(L, top - 1);
            lua_rawseti(L, top - 2, ++out);
        }
    }
    r->nscopes = saved;
    lua_settop(L, top - 2);
    lua_replace(L, idx);
}

static void render_for(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    int base = lua_gettop(L), saved = r->nscopes;
    luaL_checkstack(L, 20 + MAX_TARGETS, "template loop");
    tpl_eval_strict(r, n->a);
    if (lua_type(L, base + 1) == LUA_TSTRING)
        tpl_utf8_chars(r, base + 1, n->a); /* a string iterates by character */
    else
        tpl_as_list(r, base + 1, n->a);
    if (n->argv[0])
        loop_filter(r, base + 1, n);
    lua_Integer len = (lua_Integer)lua_rawlen(L, base + 1);
    if (len == 0) {
        lua_settop(L, base);
        render_body(r, n->c);
        return;
    }
    lua_createtable(L, 0, 11); /* base+2: loop */
    int slot0 = base + 3;
    for (int k = 0; k < n->ntg; k++)
        lua_pushnil(L);      /* base+3...: the targets */
    int top = lua_gettop(L);
    r->scopes[r->nscopes++] = (Scope){"loop", 4, base + 2};
    for (int k = 0; k < n->ntg; k++)
        r->scopes[r->nscopes++] = (Scope){n->tg[k], n->tglen[k], slot0 + k};
    for (lua_Integer i = 1; i <= len; i++) {
        if (++r->iterations > MAX_ITERATIONS)
            tpl_fail(&r->c, n->pos, "more than %ld loop iterations", MAX_ITERATIONS);
        lua_rawgeti(L, base + 1, i);
        if (n->ntg > 1) {
            if (lua_type(L, -1) == LUA_TSTRING)
                tpl_utf8_chars(r, -1, n->a);
            if (lua_type(L, -1) != LUA_TTABLE || (lua_Integer)lua_rawlen(L, -1) != n->ntg) {
                char s[100];
                tpl_fail(&r->c, n->a->start, "cannot unpack item " LUA_INTEGER_FMT " of %s (%s) "
                     "into %d loop variables%s", i - 1, tpl_src_of(r, n->a, s, sizeof s),
                     tpl_a_type(L, -1), n->ntg, n->ntg == 2 ? "; use |dictsort or .items()" : "");
            }
            for (int k = 0; k < n->ntg; k++) {
                lua_rawgeti(L, -1, k + 1);
                lua_replace(L, slot0 + k);
            }
            lua_pop(L, 1);
        } else {
            lua_replace(L, slot0);
        }
        set_field(L, base + 2, "index", i, 0);
        set_field(L, base + 2, "index0", i - 1, 0);
        set_field(L, base + 2, "revindex", len - i + 1, 0);
        set_field(L, base + 2, "revindex0", len - i, 0);
        set_field(L, base + 2, "first", i == 1, 1);
        set_field(L, base + 2, "last", i == len, 1);
        set_field(L, base + 2, "length", len, 0);
        set_field(L, base + 2, "depth", 1, 0);
        set_field(L, base + 2, "depth0", 0, 0);
        /* previtem/nextitem: absent (undefined) at the ends, as in Jinja */
        if (i > 1)
            lua_rawgeti(L, base + 1, i - 1);
        else
            lua_pushnil(L);
        lua_setfield(L, base + 2, "previtem");
        if (i < len)
            lua_rawgeti(L, base + 1, i + 1);
        else
            lua_pushnil(L);
        lua_setfield(L, base + 2, "nextitem");
        render_body(r, n->b);
        lua_settop(L, top);
    }
    r->nscopes = saved;
    lua_settop(L, base);
}

static void render_body(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    for (; n; n = n->next) {
        switch (n->kind) {
        case N_TEXT:
            out_append(r, n, n->s, n->len);
            break;
        case N_OUTPUT: {
            size_t len;
            tpl_eval_strict(r, n->a);
            if (tpl_is_none(L, -1)) { /* Ansible's finalize: None prints as nothing */
                lua_pop(L, 1);
                break;
            }
            tpl_to_str(r, -1, n->a);
            const char *s = lua_tolstring(L, -1, &len);
            out_append(r, n, s, len);
            lua_pop(L, 1);
            break;
        }
        case N_FOR:
            render_for(r, n);
            break;
        case N_IF: {
            const Node *x = n;
            for (;;) {
                tpl_eval_strict(r, x->a);
                int t = tpl_truthy(r, -1, x->a);
                lua_pop(L, 1);
                if (t) {
                    render_body(r, x->b);
                } else if (x->op == 1) {
                    x = x->c;
                    continue;
                } else {
                    render_body(r, x->c);
                }
                break;
            }
            break;
        }
        default:
            break;
        }
    }
}

/* Runs under lua_pcall: (ctx, source, vars) -> string */
static int render_protected(lua_State *L)
{
    Ctx *c = lua_touserdata(L, 1);
    Parser p;
    memset(&p, 0, sizeof p);
    p.c = *c;
    p.c.L = L;
    /* Ansible's way with trailing newlines: Jinja (keep_trailing_newline
     * off) drops one final newline of the source; then as many newlines as
     * the source ended with are restored (Templar's
     * preserve_trailing_newlines). */
    size_t want = 0;
    while (want < p.c.len && p.c.src[p.c.len - 1 - want] == '\n')
        want++;
    if (p.c.len >= 2 && memcmp(p.c.src + p.c.len - 2, "\r\n", 2) == 0)
        p.c.len -= 2;
    else if (p.c.len >= 1 && (p.c.src[p.c.len - 1] == '\n' || p.c.src[p.c.len - 1] == '\r'))
        p.c.len -= 1;
    Node *root = tpl_parse_body(&p, NULL, NULL, NULL);
    Render *r = lua_newuserdatauv(L, sizeof *r, 0); /* large: keep it off the C stack */
    memset(r, 0, sizeof *r);
    r->c = p.c;
    r->vars = 3;
    lua_newtable(L);
    r->tuples = lua_gettop(L);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &tpl_orders_key);
    render_body(r, root);
    size_t have = 0;
    while (have < c->st->outlen && c->st->out[c->st->outlen - 1 - have] == '\n')
        have++;
    for (; have < want; have++)
        out_append(r, root ? root : &(Node){0}, "\n", 1);
    lua_pushlstring(L, c->st->out ? c->st->out : "", c->st->outlen);
    return 1;
}

/* template.render(source, vars, opts) -> string | nil, err, "ETEMPLATE" */
static int t_render(lua_State *L)
{
    static const char *const known[] = {"name", NULL};
    Ctx c;
    luaL_checktype(L, 1, LUA_TSTRING);
    luaL_checktype(L, 2, LUA_TTABLE);
    er_check_options(L, 3, "template.render", known);
    c.name = er_opt_string(L, 3, "name", "<template>");
    c.src = lua_tolstring(L, 1, &c.len);
    c.L = L;
    c.st = lua_newuserdatauv(L, sizeof *c.st, 0);
    memset(c.st, 0, sizeof *c.st);
    luaL_setmetatable(L, STATE_MT);
    lua_pushcfunction(L, render_protected);
    lua_pushlightuserdata(L, &c);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    int rc = lua_pcall(L, 3, 1, 0);
    lua_pushnil(L); /* the literals' key orders go with the render */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &tpl_orders_key);
    int tmpl_err = c.st->tmpl_err;
    state_free(c.st);
    if (rc == LUA_OK)
        return 1;
    if (!tmpl_err)
        return lua_error(L); /* out of memory or a bug: not the template's fault */
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushliteral(L, "ETEMPLATE");
    return 3;
}

static const luaL_Reg funcs[] = {
    {"render", t_render},
    {NULL, NULL},
};

int luaopen_etcdrun_core_template(lua_State *L)
{
    if (luaL_newmetatable(L, STATE_MT)) {
        lua_pushcfunction(L, state_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, state_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
