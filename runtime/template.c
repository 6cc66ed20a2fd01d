/*
 * template.c: a small Jinja2-compatible template engine, the subset that
 * configuration templates such as etcd.conf.yaml.j2 use.
 *
 * Supported: {{ expr }}, {% for %}/{% else %}/{% endfor %} (one or two
 * targets), {% if %}/{% elif %}/{% else %}/{% endif %}, {% raw %}, {# #},
 * whitespace control ({%- -%} {{- -}} {#- -#}, and + to keep a newline);
 * expressions: names, a.b, a['b'], a[expr], a.0, string/integer/float/boolean
 * literals, [list] literals, not/and/or, == != < > <= >=, in / not in, ~,
 * x if c else y, x is [not] defined, filters (see `filters` below) and
 * d.items().
 *
 * Choices where Jinja (Python) and Lua disagree, made once here:
 *   - integer subscripts are 0-based list indexes as in Jinja: a[0] is the
 *     Lua a[1], a[-1] the last item (a.0 is the same as a[0]);
 *   - undefined variables, missing keys and indexes out of range are errors
 *     naming template:line:column (Ansible's StrictUndefined) unless
 *     absorbed by |default or `is defined`;
 *   - trim_blocks is on, as in Ansible's template module: one newline right
 *     after a block or comment tag is dropped; lstrip_blocks is off; the
 *     template's final newline is kept (keep_trailing_newline);
 *   - {{ }} prints strings as is, integers and integral floats without
 *     ".0", booleans as True/False; tables, functions and other values are
 *     errors, never a silent "table: 0x...";
 *   - a table that is not a sequence iterates (and joins, and .items())
 *     by sorted key: numbers first, then strings bytewise, so output never
 *     depends on hash order;
 *   - truthiness is Jinja's: false, 0, "" and {} are false;
 *   - no calls and no metamethods: every lookup is raw, into the vars table
 *     and the tables reachable from it only.
 *
 * Memory: the AST lives in an arena and the output in a buffer, both owned
 * by a userdata with __gc/__close, so an error raised anywhere (lua_error
 * longjmps) leaks nothing; render() also frees them eagerly.
 */
#include "etcdrun.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_MT "etcdrun.template.State"
#define MAX_OUTPUT ((size_t)64 << 20)  /* bytes of output, and of any one string */
#define MAX_WORK ((size_t)256 << 20)   /* bytes of intermediate strings built */
#define MAX_ITERATIONS (1L << 22)      /* loop iterations over the whole render */
#define MAX_DEPTH 100                  /* expression nesting, parser and AST */
#define MAX_BLOCKS 64                  /* nested {% for %} / {% if %} */
#define CHUNK_SIZE 16384

/* ---- memory owned by a userdata ---- */

typedef struct Chunk {
    struct Chunk *next;
    size_t used, size;
    max_align_t data[];
} Chunk;

typedef struct State {
    Chunk *chunks;
    char *out;
    size_t outlen, outcap;
    int tmpl_err; /* the error being raised is a template error, not misuse */
} State;

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

static void *arena_alloc(lua_State *L, State *st, size_t n)
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

typedef struct Ctx {
    lua_State *L;
    State *st;
    const char *src;
    size_t len;
    const char *name;
} Ctx;

static void line_col(const Ctx *c, size_t pos, int *line, int *col)
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
static void fail(const Ctx *c, size_t pos, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    int line, col;
    line_col(c, pos, &line, &col);
    lua_pushfstring(c->L, "template.render: %s:%d:%d: %s", c->name, line, col, detail);
    c->st->tmpl_err = 1;
    lua_error(c->L);
    abort(); /* not reached: lua_error does not return */
}

/* Printable, bounded copy of user bytes for a message. */
static const char *excerpt(char *buf, size_t size, const char *s, size_t len)
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

static int is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static int is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* ---- lexer (inside {{ }} and {% %}) ---- */

enum {
    T_EOF = 256, T_NAME, T_INT, T_FLOAT, T_STR, T_VAR_END, T_BLOCK_END,
    T_EQ, T_NE, T_LE, T_GE
};

typedef struct Tok {
    int type;
    size_t pos, end;
    const char *s; /* name, or decoded string literal */
    size_t len;
    lua_Integer i;
    double f;
    char mod; /* '-' or '+' on an end token */
} Tok;

typedef struct Node Node;

typedef struct Parser {
    Ctx c;
    Tok tok;
    size_t prev_end; /* end of the last token consumed */
    size_t pos;      /* where template text scanning resumes */
    size_t tag_pos;  /* start of the tag that stopped parse_body */
    int nest, blocks, lstrip_next;
} Parser;

static int at_lit(const Ctx *c, size_t at, const char *lit)
{
    size_t n = strlen(lit);
    return at <= c->len && c->len - at >= n && memcmp(c->src + at, lit, n) == 0;
}

static void lex_number(Parser *p, Tok *t, size_t at)
{
    const char *s = p->c.src;
    size_t e = at;
    int isfloat = 0;
    while (e < p->c.len && is_digit(s[e]))
        e++;
    if (e + 1 < p->c.len && s[e] == '.' && is_digit(s[e + 1])) {
        isfloat = 1;
        e++;
        while (e < p->c.len && is_digit(s[e]))
            e++;
    }
    if (e < p->c.len && (s[e] == 'e' || s[e] == 'E')) {
        size_t x = e + 1;
        if (x < p->c.len && (s[x] == '+' || s[x] == '-'))
            x++;
        if (x < p->c.len && is_digit(s[x])) {
            isfloat = 1;
            e = x;
            while (e < p->c.len && is_digit(s[e]))
                e++;
        }
    }
    t->end = e;
    if (isfloat) {
        char buf[64];
        if (e - at >= sizeof buf)
            fail(&p->c, at, "number literal too long");
        memcpy(buf, s + at, e - at);
        buf[e - at] = '\0';
        t->type = T_FLOAT;
        t->f = strtod(buf, NULL);
        return;
    }
    lua_Integer v = 0;
    for (size_t k = at; k < e; k++) {
        int d = s[k] - '0';
        if (v > (LUA_MAXINTEGER - d) / 10)
            fail(&p->c, at, "integer literal too large");
        v = v * 10 + d;
    }
    t->type = T_INT;
    t->i = v;
}

static void lex_string(Parser *p, Tok *t, size_t at)
{
    const char *s = p->c.src;
    char q = s[at];
    size_t e = at + 1;
    int escapes = 0;
    while (e < p->c.len && s[e] != q) {
        if (s[e] == '\\') {
            escapes = 1;
            e++;
        }
        e++;
    }
    if (e >= p->c.len)
        fail(&p->c, at, "unterminated string literal");
    t->type = T_STR;
    t->end = e + 1;
    if (!escapes) {
        t->s = s + at + 1;
        t->len = e - at - 1;
        return;
    }
    char *d = arena_alloc(p->c.L, p->c.st, e - at);
    size_t n = 0;
    for (size_t k = at + 1; k < e; k++) {
        if (s[k] != '\\') {
            d[n++] = s[k];
            continue;
        }
        char x = s[++k];
        switch (x) {
        case 'n': d[n++] = '\n'; break;
        case 't': d[n++] = '\t'; break;
        case 'r': d[n++] = '\r'; break;
        case '\\': case '\'': case '"': d[n++] = x; break;
        default: d[n++] = '\\'; d[n++] = x; break; /* Python keeps unknown escapes */
        }
    }
    t->s = d;
    t->len = n;
}

static Tok lex(Parser *p, size_t at)
{
    const Ctx *c = &p->c;
    const char *s = c->src;
    Tok t;
    memset(&t, 0, sizeof t);
    while (at < c->len && is_ws(s[at]))
        at++;
    t.pos = at;
    if (at >= c->len) {
        t.type = T_EOF;
        t.end = at;
        return t;
    }
    char ch = s[at];
    if (at_lit(c, at, "-}}") || at_lit(c, at, "-%}") || at_lit(c, at, "+%}")) {
        t.type = s[at + 1] == '}' ? T_VAR_END : T_BLOCK_END;
        t.mod = ch;
        t.end = at + 3;
    } else if (at_lit(c, at, "}}") || at_lit(c, at, "%}")) {
        t.type = ch == '}' ? T_VAR_END : T_BLOCK_END;
        t.end = at + 2;
    } else if (is_alpha(ch)) {
        size_t e = at;
        while (e < c->len && (is_alpha(s[e]) || is_digit(s[e])))
            e++;
        t.type = T_NAME;
        t.s = s + at;
        t.len = e - at;
        t.end = e;
    } else if (is_digit(ch)) {
        lex_number(p, &t, at);
    } else if (ch == '\'' || ch == '"') {
        lex_string(p, &t, at);
    } else if (at_lit(c, at, "==") || at_lit(c, at, "!=") || at_lit(c, at, "<=") ||
               at_lit(c, at, ">=")) {
        t.type = ch == '=' ? T_EQ : ch == '!' ? T_NE : ch == '<' ? T_LE : T_GE;
        t.end = at + 2;
    } else if (ch && strchr(".[](),|<>~=-", ch)) {
        t.type = (unsigned char)ch;
        t.end = at + 1;
    } else if ((unsigned char)ch >= 0x20 && (unsigned char)ch < 0x7f) {
        fail(c, at, "unexpected character '%c'", ch);
    } else {
        fail(c, at, "unexpected byte 0x%02x", (unsigned char)ch);
    }
    return t;
}

static void next(Parser *p)
{
    p->prev_end = p->tok.end;
    p->tok = lex(p, p->tok.end);
}

static int tok_is(const Tok *t, const char *name)
{
    return t->type == T_NAME && t->len == strlen(name) && memcmp(t->s, name, t->len) == 0;
}

__attribute__((noreturn))
static void unexpected(Parser *p, const char *expected)
{
    char buf[100], what[110];
    if (p->tok.type == T_EOF)
        snprintf(what, sizeof what, "end of template");
    else
        snprintf(what, sizeof what, "'%s'", excerpt(buf, sizeof buf, p->c.src + p->tok.pos,
                                                    p->tok.end - p->tok.pos));
    if (expected)
        fail(&p->c, p->tok.pos, "unexpected %s, expected %s", what, expected);
    fail(&p->c, p->tok.pos, "unexpected %s", what);
}

/* ---- AST ---- */

enum {
    /* statements */
    N_TEXT, N_OUTPUT, N_FOR, N_IF,
    /* expressions */
    N_NAME, N_STR, N_INT, N_FLOAT, N_BOOL, N_LIST, N_GETATTR, N_GETITEM, N_ITEMS,
    N_NOT, N_AND, N_OR, N_COND, N_CMP, N_IN, N_CONCAT, N_FILTER, N_TEST
};

enum { F_DEFAULT, F_JOIN, F_UPPER, F_LOWER, F_INDENT, F_LENGTH, F_STRING, F_TRIM, F_QUOTE,
       F_REPLACE, F_DICTSORT };

#define MAX_ARGS 3

struct Node {
    int kind, op, neg, depth;
    size_t pos;            /* where messages point: the name, key or operator */
    size_t start, end;     /* the whole expression's source span */
    Node *a, *b, *c, *next;
    Node *argv[MAX_ARGS];  /* filter arguments by parameter */
    const char *s, *s2;    /* name / literal, second loop target */
    size_t len, len2;
    lua_Integer i;
    double f;
};

static const struct Filter {
    const char *name;
    int id, required;
    const char *params[MAX_ARGS];
} filters[] = {
    {"default", F_DEFAULT, 0, {"default_value", "boolean", NULL}},
    {"d", F_DEFAULT, 0, {"default_value", "boolean", NULL}},
    {"join", F_JOIN, 0, {"d", NULL, NULL}},
    {"upper", F_UPPER, 0, {NULL, NULL, NULL}},
    {"lower", F_LOWER, 0, {NULL, NULL, NULL}},
    {"indent", F_INDENT, 0, {"width", "first", "blank"}},
    {"length", F_LENGTH, 0, {NULL, NULL, NULL}},
    {"count", F_LENGTH, 0, {NULL, NULL, NULL}},
    {"string", F_STRING, 0, {NULL, NULL, NULL}},
    {"trim", F_TRIM, 0, {NULL, NULL, NULL}},
    {"quote", F_QUOTE, 0, {NULL, NULL, NULL}},
    {"replace", F_REPLACE, 2, {"old", "new", NULL}},
    {"dictsort", F_DICTSORT, 0, {"case_sensitive", NULL, NULL}},
};

enum { OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE };

static Node *new_node(Parser *p, int kind, size_t pos)
{
    Node *n = arena_alloc(p->c.L, p->c.st, sizeof *n);
    n->kind = kind;
    n->pos = n->start = n->end = pos;
    return n;
}

/* Set the node's depth and span end; an AST deeper than MAX_DEPTH would let
 * the evaluator's recursion be driven by the input. */
static Node *seal(Parser *p, Node *n, size_t start)
{
    int d = 0;
    const Node *kids[3 + MAX_ARGS] = {n->a, n->b, n->c, n->argv[0], n->argv[1], n->argv[2]};
    for (int k = 0; k < 3 + MAX_ARGS; k++)
        for (const Node *x = kids[k]; x; x = n->kind == N_LIST ? x->next : NULL)
            if (x->depth > d)
                d = x->depth;
    n->depth = d + 1;
    if (n->depth > MAX_DEPTH)
        fail(&p->c, n->pos, "expression nested too deeply (limit %d)", MAX_DEPTH);
    n->start = start < n->pos ? start : n->pos;
    n->end = p->prev_end;
    return n;
}

static const char *const reserved[] = {
    "and", "or", "not", "in", "is", "if", "else", "true", "false", "True", "False", NULL
};

static int is_reserved(const Tok *t)
{
    for (int k = 0; reserved[k]; k++)
        if (tok_is(t, reserved[k]))
            return 1;
    return 0;
}

static Node *parse_expr(Parser *p);
static Node *parse_or(Parser *p);

static void enter(Parser *p)
{
    if (++p->nest > MAX_DEPTH)
        fail(&p->c, p->tok.pos, "expression nested too deeply (limit %d)", MAX_DEPTH);
}

static void expect(Parser *p, int type, const char *what)
{
    if (p->tok.type != type)
        unexpected(p, what);
    next(p);
}

static Node *parse_primary(Parser *p)
{
    Tok t = p->tok;
    Node *n;
    switch (t.type) {
    case T_NAME:
        if (tok_is(&t, "true") || tok_is(&t, "True") || tok_is(&t, "false") ||
            tok_is(&t, "False")) {
            n = new_node(p, N_BOOL, t.pos);
            n->i = t.s[0] == 't' || t.s[0] == 'T';
        } else if (is_reserved(&t)) {
            unexpected(p, "an expression");
        } else {
            n = new_node(p, N_NAME, t.pos);
            n->s = t.s;
            n->len = t.len;
        }
        next(p);
        return seal(p, n, t.pos);
    case T_STR:
    case T_INT:
    case T_FLOAT:
        n = new_node(p, t.type == T_STR ? N_STR : t.type == T_INT ? N_INT : N_FLOAT, t.pos);
        n->s = t.s;
        n->len = t.len;
        n->i = t.i;
        n->f = t.f;
        next(p);
        return seal(p, n, t.pos);
    case '(':
        next(p);
        n = parse_expr(p);
        expect(p, ')', "')'");
        n->start = t.pos;
        n->end = p->prev_end;
        return n;
    case '[': {
        n = new_node(p, N_LIST, t.pos);
        Node **tail = &n->a;
        next(p);
        enter(p);
        while (p->tok.type != ']') {
            *tail = parse_expr(p);
            tail = &(*tail)->next;
            if (p->tok.type != ',')
                break;
            next(p);
        }
        expect(p, ']', "',' or ']'");
        p->nest--;
        return seal(p, n, t.pos);
    }
    default:
        unexpected(p, "an expression");
    }
}

static Node *parse_postfix(Parser *p, Node *obj)
{
    for (;;) {
        size_t start = obj->start;
        if (p->tok.type == '.') {
            next(p);
            Tok k = p->tok;
            Node *n;
            if (k.type == T_NAME) {
                next(p);
                if (tok_is(&k, "items") && p->tok.type == '(') {
                    next(p);
                    expect(p, ')', "')' (items() takes no arguments)");
                    n = new_node(p, N_ITEMS, k.pos);
                } else {
                    n = new_node(p, N_GETATTR, k.pos);
                    n->s = k.s;
                    n->len = k.len;
                }
            } else if (k.type == T_INT) {
                next(p);
                n = new_node(p, N_GETITEM, k.pos);
                n->b = seal(p, new_node(p, N_INT, k.pos), k.pos);
                n->b->i = k.i;
            } else {
                unexpected(p, "a key after '.'");
            }
            n->a = obj;
            obj = seal(p, n, start);
        } else if (p->tok.type == '[') {
            Node *n = new_node(p, N_GETITEM, 0);
            next(p);
            n->pos = p->tok.pos;
            n->b = parse_expr(p);
            expect(p, ']', "']'");
            n->a = obj;
            obj = seal(p, n, start);
        } else if (p->tok.type == '(') {
            fail(&p->c, p->tok.pos, "calling functions is not supported");
        } else {
            return obj;
        }
    }
}

static void parse_filter_args(Parser *p, Node *n, const struct Filter *f)
{
    int npos = 0, kw = 0;
    next(p); /* '(' */
    while (p->tok.type != ')') {
        int slot;
        Tok t = p->tok;
        if (t.type == T_NAME && lex(p, t.end).type == '=') {
            for (slot = 0; slot < MAX_ARGS; slot++)
                if (f->params[slot] && tok_is(&t, f->params[slot]))
                    break;
            if (slot == MAX_ARGS)
                fail(&p->c, t.pos, "unknown argument '%.*s' for filter '%s'", (int)t.len, t.s,
                     f->name);
            if (n->argv[slot])
                fail(&p->c, t.pos, "argument '%s' given twice", f->params[slot]);
            next(p);
            next(p);
            kw = 1;
        } else {
            if (kw)
                fail(&p->c, t.pos, "positional argument after keyword argument");
            slot = npos++;
            if (slot >= MAX_ARGS || !f->params[slot])
                fail(&p->c, t.pos, "too many arguments for filter '%s'", f->name);
        }
        n->argv[slot] = parse_expr(p);
        if (p->tok.type != ',')
            break;
        next(p);
    }
    expect(p, ')', "',' or ')'");
}

static Node *parse_unary(Parser *p)
{
    Node *n;
    if (p->tok.type == '-') {
        size_t pos = p->tok.pos;
        next(p);
        if (p->tok.type != T_INT && p->tok.type != T_FLOAT)
            unexpected(p, "a number after '-'");
        n = new_node(p, p->tok.type == T_INT ? N_INT : N_FLOAT, pos);
        n->i = -p->tok.i;
        n->f = -p->tok.f;
        next(p);
        n = seal(p, n, pos);
    } else {
        n = parse_primary(p);
    }
    n = parse_postfix(p, n);
    for (;;) {
        size_t start = n->start;
        if (p->tok.type == '|') {
            next(p);
            Tok t = p->tok;
            if (t.type != T_NAME)
                unexpected(p, "a filter name");
            const struct Filter *f = NULL;
            for (size_t k = 0; k < sizeof filters / sizeof filters[0]; k++)
                if (tok_is(&t, filters[k].name))
                    f = &filters[k];
            if (!f)
                fail(&p->c, t.pos, "unknown filter '%.*s'", (int)t.len, t.s);
            Node *fn = new_node(p, N_FILTER, t.pos);
            fn->op = f->id;
            fn->s = f->name;
            fn->a = n;
            next(p);
            if (p->tok.type == '(')
                parse_filter_args(p, fn, f);
            for (int k = 0; k < f->required; k++)
                if (!fn->argv[k])
                    fail(&p->c, t.pos, "missing argument '%s' for filter '%s'", f->params[k],
                         f->name);
            n = seal(p, fn, start);
        } else if (tok_is(&p->tok, "is")) {
            next(p);
            Node *tn = new_node(p, N_TEST, 0);
            if (tok_is(&p->tok, "not")) {
                tn->neg = 1;
                next(p);
            }
            tn->pos = p->tok.pos;
            if (tok_is(&p->tok, "undefined"))
                tn->neg = !tn->neg;
            else if (!tok_is(&p->tok, "defined"))
                unexpected(p, "'defined' or 'undefined' (the only tests supported)");
            next(p);
            tn->a = n;
            n = seal(p, tn, start);
        } else if (p->tok.type == '(') {
            fail(&p->c, p->tok.pos, "calling functions is not supported");
        } else {
            return n;
        }
    }
}

static Node *parse_concat(Parser *p)
{
    Node *n = parse_unary(p);
    while (p->tok.type == '~') {
        Node *c = new_node(p, N_CONCAT, p->tok.pos);
        next(p);
        c->a = n;
        c->b = parse_unary(p);
        n = seal(p, c, n->start);
    }
    return n;
}

static Node *parse_compare(Parser *p)
{
    Node *n = parse_concat(p);
    int op = -1, kind = N_CMP, neg = 0;
    switch (p->tok.type) {
    case T_EQ: op = OP_EQ; break;
    case T_NE: op = OP_NE; break;
    case '<': op = OP_LT; break;
    case '>': op = OP_GT; break;
    case T_LE: op = OP_LE; break;
    case T_GE: op = OP_GE; break;
    default:
        if (tok_is(&p->tok, "in")) {
            kind = N_IN;
        } else if (tok_is(&p->tok, "not")) {
            Tok t2 = lex(p, p->tok.end);
            if (!tok_is(&t2, "in"))
                return n;
            kind = N_IN;
            neg = 1;
            next(p);
        } else {
            return n;
        }
    }
    Node *c = new_node(p, kind, p->tok.pos);
    next(p);
    c->op = op;
    c->neg = neg;
    c->a = n;
    c->b = parse_concat(p);
    switch (p->tok.type) {
    case T_EQ: case T_NE: case '<': case '>': case T_LE: case T_GE:
        fail(&p->c, p->tok.pos, "chained comparisons are not supported");
    default:
        break;
    }
    return seal(p, c, n->start);
}

static Node *parse_not(Parser *p)
{
    if (!tok_is(&p->tok, "not"))
        return parse_compare(p);
    Node *n = new_node(p, N_NOT, p->tok.pos);
    next(p);
    enter(p);
    n->a = parse_not(p);
    p->nest--;
    return seal(p, n, n->pos);
}

static Node *parse_and(Parser *p)
{
    Node *n = parse_not(p);
    while (tok_is(&p->tok, "and")) {
        Node *c = new_node(p, N_AND, p->tok.pos);
        next(p);
        c->a = n;
        c->b = parse_not(p);
        n = seal(p, c, n->start);
    }
    return n;
}

static Node *parse_or(Parser *p)
{
    Node *n = parse_and(p);
    while (tok_is(&p->tok, "or")) {
        Node *c = new_node(p, N_OR, p->tok.pos);
        next(p);
        c->a = n;
        c->b = parse_and(p);
        n = seal(p, c, n->start);
    }
    return n;
}

static Node *parse_expr(Parser *p)
{
    enter(p);
    Node *n = parse_or(p);
    if (tok_is(&p->tok, "if")) {
        Node *c = new_node(p, N_COND, p->tok.pos);
        next(p);
        c->b = n;
        c->a = parse_or(p);
        if (!tok_is(&p->tok, "else"))
            unexpected(p, "'else' (x if c else y)");
        next(p);
        c->c = parse_expr(p);
        n = seal(p, c, n->start);
    }
    p->nest--;
    return n;
}

/* ---- statements ---- */

static void end_tag(Parser *p)
{
    if (p->tok.type != T_BLOCK_END)
        unexpected(p, "'%}'");
    size_t at = p->tok.end;
    p->lstrip_next = p->tok.mod == '-';
    if (!p->tok.mod) { /* trim_blocks */
        if (at_lit(&p->c, at, "\n"))
            at++;
        else if (at_lit(&p->c, at, "\r\n"))
            at += 2;
    }
    p->pos = at;
}

/* Next "{{", "{%" or "{#" at or after `at`; c->len if none. */
static size_t find_tag(const Ctx *c, size_t at)
{
    while (at + 1 < c->len) {
        const char *b = memchr(c->src + at, '{', c->len - at - 1);
        if (!b)
            break;
        at = (size_t)(b - c->src);
        char k = c->src[at + 1];
        if (k == '{' || k == '%' || k == '#')
            return at;
        at++;
    }
    return c->len;
}

static void append(Node ***tail, Node *n)
{
    **tail = n;
    *tail = &n->next;
}

static Node *parse_body(Parser *p, const char *const *stops, const Node *opener, int *which);

__attribute__((noreturn))
static void unclosed(Parser *p, const char *closer, const char *what, size_t opened)
{
    int line, col;
    line_col(&p->c, opened, &line, &col);
    fail(&p->c, p->c.len, "unexpected end of template, expected %s (%s opened at %d:%d)",
         closer, what, line, col);
}

static Node *parse_for(Parser *p, size_t q)
{
    static const char *const stops[] = {"endfor", "else", NULL};
    static const char *const end[] = {"endfor", NULL};
    Node *n = new_node(p, N_FOR, q);
    int which;
    next(p);
    if (p->tok.type != T_NAME || is_reserved(&p->tok))
        unexpected(p, "a loop variable name");
    n->s = p->tok.s;
    n->len = p->tok.len;
    next(p);
    if (p->tok.type == ',') {
        next(p);
        if (p->tok.type != T_NAME || is_reserved(&p->tok))
            unexpected(p, "a second loop variable name");
        n->s2 = p->tok.s;
        n->len2 = p->tok.len;
        next(p);
    }
    if (!tok_is(&p->tok, "in"))
        unexpected(p, "'in'");
    next(p);
    p->nest = 0;
    enter(p);
    n->a = parse_or(p); /* not parse_expr: Jinja reserves "for x in y if c" */
    end_tag(p);
    n->b = parse_body(p, stops, n, &which);
    if (which == 1) {
        end_tag(p);
        n->c = parse_body(p, end, n, &which);
    }
    end_tag(p);
    return n;
}

static Node *parse_if(Parser *p, size_t q)
{
    static const char *const stops[] = {"elif", "else", "endif", NULL};
    static const char *const end[] = {"endif", NULL};
    Node *first = new_node(p, N_IF, q), *cur = first;
    int which;
    next(p);
    for (;;) {
        p->nest = 0;
        cur->a = parse_expr(p);
        end_tag(p);
        cur->b = parse_body(p, stops, first, &which);
        if (which == 0) { /* elif: chain another N_IF as the else branch */
            cur->op = 1;
            cur->c = new_node(p, N_IF, p->tag_pos);
            cur = cur->c;
            continue;
        }
        if (which == 1) {
            end_tag(p);
            cur->c = parse_body(p, end, first, &which);
        }
        end_tag(p);
        return first;
    }
}

/* {% raw %}: everything up to {% endraw %} is text. */
static Node *parse_raw(Parser *p, size_t q)
{
    if (p->tok.type != T_BLOCK_END)
        unexpected(p, "'%}'");
    p->lstrip_next = p->tok.mod == '-';
    p->pos = p->tok.end; /* as in Jinja, no trim_blocks after {% raw %} */
    size_t at = p->pos;
    for (;;) {
        size_t t = find_tag(&p->c, at);
        if (t >= p->c.len)
            unclosed(p, "{% endraw %}", "raw", q);
        size_t k = t + 2;
        int strip = 0;
        if (p->c.src[t + 1] == '%') {
            if (k < p->c.len && (p->c.src[k] == '-' || p->c.src[k] == '+'))
                strip = p->c.src[k++] == '-';
            while (k < p->c.len && is_ws(p->c.src[k]))
                k++;
            if (at_lit(&p->c, k, "endraw")) {
                p->tok = lex(p, k + 6);
                size_t e = t;
                if (strip)
                    while (e > p->pos && is_ws(p->c.src[e - 1]))
                        e--;
                Node *n = new_node(p, N_TEXT, p->pos);
                n->s = p->c.src + p->pos;
                n->len = e - p->pos;
                if (p->lstrip_next)
                    while (n->len && is_ws(*n->s))
                        n->s++, n->len--;
                p->lstrip_next = 0;
                end_tag(p);
                return n;
            }
        }
        at = t + 1;
    }
}

static const char *const end_tags[] = {"endfor", "endif", "elif", "else", "endraw", NULL};

/* Parse statements up to EOF (stops == NULL) or a {% tag %} named in stops;
 * *which gets its index and the tag name is consumed. */
static Node *parse_body(Parser *p, const char *const *stops, const Node *opener, int *which)
{
    const Ctx *c = &p->c;
    const char *src = c->src;
    Node *head = NULL, **tail = &head;
    const char *closer = opener && opener->kind == N_FOR ? "{% endfor %}" : "{% endif %}";
    const char *what = opener && opener->kind == N_FOR ? "for" : "if";
    if (opener && ++p->blocks > MAX_BLOCKS)
        fail(c, opener->pos, "blocks nested too deeply (limit %d)", MAX_BLOCKS);
    for (;;) {
        size_t q = find_tag(c, p->pos), b = p->pos, e = q;
        if (p->lstrip_next)
            while (b < e && is_ws(src[b]))
                b++;
        p->lstrip_next = 0;
        if (q < c->len && q + 2 < c->len && src[q + 2] == '-')
            while (e > b && is_ws(src[e - 1]))
                e--;
        if (e > b) {
            Node *t = new_node(p, N_TEXT, b);
            t->s = src + b;
            t->len = e - b;
            append(&tail, t);
        }
        if (q >= c->len) {
            if (opener)
                unclosed(p, closer, what, opener->pos);
            return head;
        }
        char kind = src[q + 1];
        size_t at = q + 2;
        if (at < c->len && (src[at] == '-' || (kind != '{' && src[at] == '+')))
            at++;
        if (kind == '#') {
            size_t k = at;
            while (k + 1 < c->len && !(src[k] == '#' && src[k + 1] == '}'))
                k++;
            if (k + 1 >= c->len)
                unclosed(p, "'#}'", "comment", q);
            p->tok.type = T_BLOCK_END;
            p->tok.end = k + 2;
            p->tok.mod = k > at && (src[k - 1] == '-' || src[k - 1] == '+') ? src[k - 1] : 0;
            end_tag(p);
            continue;
        }
        p->tok = lex(p, at);
        p->nest = 0;
        if (kind == '{') {
            Node *n = new_node(p, N_OUTPUT, q);
            n->a = parse_expr(p);
            if (p->tok.type != T_VAR_END)
                unexpected(p, "'}}'");
            p->lstrip_next = p->tok.mod == '-';
            p->pos = p->tok.end;
            append(&tail, n);
            continue;
        }
        Tok tag = p->tok;
        if (tag.type != T_NAME)
            unexpected(p, "a tag name");
        for (int k = 0; stops && stops[k]; k++) {
            if (tok_is(&tag, stops[k])) {
                *which = k;
                p->tag_pos = q;
                next(p);
                p->blocks--;
                return head;
            }
        }
        if (tok_is(&tag, "for")) {
            append(&tail, parse_for(p, q));
        } else if (tok_is(&tag, "if")) {
            append(&tail, parse_if(p, q));
        } else if (tok_is(&tag, "raw")) {
            next(p);
            append(&tail, parse_raw(p, q));
        } else {
            for (int k = 0; end_tags[k]; k++) {
                if (!tok_is(&tag, end_tags[k]))
                    continue;
                if (!opener)
                    fail(c, q, "unexpected {%% %s %%}", end_tags[k]);
                int line, col;
                line_col(c, opener->pos, &line, &col);
                fail(c, q, "unexpected {%% %s %%}, expected %s (%s opened at %d:%d)",
                     end_tags[k], closer, what, line, col);
            }
            char buf[100];
            fail(c, tag.pos, "unknown tag '%s'", excerpt(buf, sizeof buf, tag.s, tag.len));
        }
    }
}

/* ---- evaluation ---- */

typedef struct Scope {
    const char *name;
    size_t len;
    int slot; /* Lua stack index holding the value */
} Scope;

typedef struct Render {
    Ctx c;
    int vars;
    int nscopes;
    Scope scopes[MAX_BLOCKS * 3];
    long iterations;
    size_t work;
    size_t undef_pos;
    char undef_msg[400];
} Render;

static const char *a_type(lua_State *L, int idx)
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
static const char *src_of(const Render *r, const Node *n, char *buf, size_t size)
{
    return excerpt(buf, size, r->c.src + n->start, n->end > n->start ? n->end - n->start : 0);
}

/* Record why a value is undefined and push the placeholder nil; returns 0. */
__attribute__((format(printf, 3, 4)))
static int undefined(Render *r, size_t pos, const char *fmt, ...)
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
        fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
    r->work += bytes;
    if (r->work > MAX_WORK)
        fail(&r->c, n->pos, "template builds more than %zu MiB of strings", MAX_WORK >> 20);
}

static int eval(Render *r, const Node *n);

static void eval_strict(Render *r, const Node *n)
{
    if (!eval(r, n))
        fail(&r->c, r->undef_pos, "%s", r->undef_msg);
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
static void to_str(Render *r, int idx, const Node *n)
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
        fail(&r->c, n->start, "cannot render %s (%s)%s", src_of(r, n, s, sizeof s),
             a_type(L, idx), lua_type(L, idx) == LUA_TTABLE ? "; use a filter such as join" : "");
    }
    }
    lua_replace(L, idx);
}

static int truthy(Render *r, int idx, const Node *n)
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
        fail(&r->c, n->start, "cannot use %s (%s) as a condition", src_of(r, n, s, sizeof s),
             a_type(L, idx));
    }
    }
}

/* obj at -2, key at -1 (a string or an integer): replace both with the
 * placeholder nil and record "undefined key/index ..." (objtype: why). */
static int missing(Render *r, const Node *n, const char *objtype, lua_Integer len)
{
    lua_State *L = r->c.L;
    char obj[100], key[120], buf[100], why[64] = "";
    src_of(r, n->a, obj, sizeof obj);
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t klen;
        const char *ks = lua_tolstring(L, -1, &klen);
        snprintf(key, sizeof key, "key '%s'", excerpt(buf, sizeof buf, ks, klen));
    } else {
        snprintf(key, sizeof key, "index " LUA_INTEGER_FMT, lua_tointeger(L, -1));
    }
    if (objtype)
        snprintf(why, sizeof why, " (%s)", objtype);
    else if (len >= 0)
        snprintf(why, sizeof why, " (length " LUA_INTEGER_FMT ")", len);
    lua_pop(L, 2);
    return undefined(r, n->pos, "undefined %s in %s%s", key, obj, why);
}

/* obj at -2, key at -1: replace both with obj[key] (raw, 0-based integers). */
static int index_value(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    int kt = lua_type(L, -1), isint = 0;
    lua_Integer k = lua_tointegerx(L, -1, &isint);
    if (kt != LUA_TSTRING && !(kt == LUA_TNUMBER && isint)) {
        char obj[100];
        src_of(r, n->a, obj, sizeof obj);
        if (kt == LUA_TNUMBER)
            fail(&r->c, n->pos, "index into %s is not an integer", obj);
        fail(&r->c, n->pos, "cannot use %s as a key into %s", a_type(L, -1), obj);
    }
    if (lua_type(L, -2) != LUA_TTABLE)
        return missing(r, n, a_type(L, -2), -1);
    if (kt == LUA_TSTRING) {
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TNIL) {
            lua_pop(L, 1);
            return missing(r, n, NULL, -1);
        }
    } else {
        lua_Integer len = (lua_Integer)lua_rawlen(L, -2);
        lua_Integer i = k < 0 ? k + len : k;
        if (i < 0 || i >= LUA_MAXINTEGER)
            return missing(r, n, NULL, len);
        if (lua_rawgeti(L, -2, i + 1) == LUA_TNIL) {
            lua_pop(L, 1);
            return missing(r, n, NULL, len);
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
    return undefined(r, n->pos, "undefined variable '%s'", excerpt(buf, sizeof buf, n->s, n->len));
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
            fail(&r->c, n->start, "cannot sort the keys of %s: a key is %s",
                 src_of(r, n, s, sizeof s), a_type(L, -1));
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
        fail(&r->c, n->pos, "%s needs a mapping, got %s (%s)",
             n->kind == N_ITEMS ? "items()" : "dictsort", src_of(r, n->a, s, sizeof s),
             a_type(L, idx));
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
static void as_list(Render *r, int idx, const Node *n)
{
    lua_State *L = r->c.L;
    char s[100];
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE)
        fail(&r->c, n->start, "cannot iterate over %s (%s)", src_of(r, n, s, sizeof s),
             a_type(L, idx));
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
        fail(&r->c, n->pos, "cannot compare %s with %s", a_type(L, -2), a_type(L, -1));
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
            fail(&r->c, n->pos, "'in' a string needs a string on the left, got %s",
                 a_type(L, -2));
        size_t nl, hl;
        const char *nd = lua_tolstring(L, -2, &nl), *hs = lua_tolstring(L, -1, &hl);
        for (size_t k = 0; nl <= hl && k <= hl - nl; k++)
            if (memcmp(hs + k, nd, nl) == 0)
                return 1;
        return 0;
    }
    if (lua_type(L, -1) != LUA_TTABLE)
        fail(&r->c, n->pos, "'in' needs a list, mapping or string on the right, got %s",
             a_type(L, -1));
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
        fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
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
        if (!(is_alpha(ch) || is_digit(ch) || strchr("@%+=:,./-", ch)) || ch == '\0')
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
        fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
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
            eval_strict(r, argv[1]);
            int boolean = truthy(r, -1, argv[1]);
            lua_pop(L, 1);
            if (boolean)
                ok = truthy(r, -1, n->a);
        }
        if (ok)
            return 1;
        lua_pop(L, 1);
        if (argv[0])
            return eval(r, argv[0]);
        lua_pushliteral(L, "");
        return 1;
    }
    eval_strict(r, n->a);
    int v = top + 1;
    size_t len;
    const char *s;
    switch (n->op) {
    case F_JOIN: {
        as_list(r, v, n->a);
        if (argv[0]) {
            eval_strict(r, argv[0]);
            to_str(r, -1, argv[0]);
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
                fail(&r->c, n->pos, "cannot join %s: item " LUA_INTEGER_FMT " is %s",
                     src_of(r, n->a, o, sizeof o), k - 1, a_type(L, -1));
            }
            to_str(r, -1, n->a);
            lua_tolstring(L, -1, &len);
            total += len + (k > 1 ? seplen : 0);
            if (total > MAX_OUTPUT)
                fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
            luaL_addvalue(&b);
        }
        add_work(r, n, total);
        luaL_pushresult(&b);
        break;
    }
    case F_UPPER:
    case F_LOWER: {
        to_str(r, v, n->a);
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
        to_str(r, v, n->a);
        if (!argv[0]) {
            lua_pushliteral(L, "    ");
        } else {
            eval_strict(r, argv[0]);
            if (lua_type(L, -1) == LUA_TNUMBER) {
                int isint;
                lua_Integer w = lua_tointegerx(L, -1, &isint);
                if (!isint || w > (lua_Integer)MAX_OUTPUT)
                    fail(&r->c, argv[0]->pos, "indent width must be an integer below 64 Mi");
                lua_pop(L, 1);
                luaL_Buffer b;
                char *d = luaL_buffinitsize(L, &b, w > 0 ? (size_t)w : 0);
                if (w > 0)
                    memset(d, ' ', (size_t)w);
                luaL_pushresultsize(&b, w > 0 ? (size_t)w : 0);
            } else if (lua_type(L, -1) != LUA_TSTRING) {
                fail(&r->c, argv[0]->pos, "indent width must be a number or a string, got %s",
                     a_type(L, -1));
            }
        }
        int first = 0, blank = 0;
        for (int k = 1; k <= 2; k++) {
            if (!argv[k])
                continue;
            eval_strict(r, argv[k]);
            *(k == 1 ? &first : &blank) = truthy(r, -1, argv[k]);
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
            fail(&r->c, n->pos, "length of %s (%s) is not defined",
                 src_of(r, n->a, o, sizeof o), a_type(L, v));
        }
        break;
    case F_STRING:
        to_str(r, v, n->a);
        lua_pushvalue(L, v);
        break;
    case F_TRIM: {
        to_str(r, v, n->a);
        s = lua_tolstring(L, v, &len);
        size_t b = 0, e = len;
        while (b < e && is_ws(s[b]))
            b++;
        while (e > b && is_ws(s[e - 1]))
            e--;
        lua_pushlstring(L, s + b, e - b);
        break;
    }
    case F_QUOTE:
        to_str(r, v, n->a);
        lua_pushvalue(L, v);
        push_quote(r, n);
        break;
    case F_REPLACE:
        to_str(r, v, n->a);
        eval_strict(r, argv[0]);
        to_str(r, -1, argv[0]);
        eval_strict(r, argv[1]);
        to_str(r, -1, argv[1]);
        push_replace(r, n);
        break;
    case F_DICTSORT: {
        int fold = 1;
        if (argv[0]) {
            eval_strict(r, argv[0]);
            fold = !truthy(r, -1, argv[0]);
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
            eval_strict(r, x);
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
            eval_strict(r, n->b);
        return index_value(r, n);
    case N_ITEMS:
        eval_strict(r, n->a);
        sorted_pairs(r, -1, 0, n);
        return 1;
    case N_NOT: {
        eval_strict(r, n->a);
        int t = truthy(r, -1, n->a);
        lua_pop(L, 1);
        lua_pushboolean(L, !t);
        return 1;
    }
    case N_AND:
    case N_OR: {
        eval_strict(r, n->a);
        int t = truthy(r, -1, n->a);
        if (t == (n->kind == N_OR))
            return 1; /* Python semantics: the deciding operand is the value */
        lua_pop(L, 1);
        return eval(r, n->b);
    }
    case N_COND: {
        eval_strict(r, n->a);
        int t = truthy(r, -1, n->a);
        lua_pop(L, 1);
        return eval(r, t ? n->b : n->c);
    }
    case N_CMP:
    case N_IN: {
        eval_strict(r, n->a);
        eval_strict(r, n->b);
        int v = n->kind == N_CMP ? compare(r, n) : contains(r, n) != n->neg;
        lua_pop(L, 2);
        lua_pushboolean(L, v);
        return 1;
    }
    case N_CONCAT: {
        size_t la, lb;
        eval_strict(r, n->a);
        to_str(r, -1, n->a);
        eval_strict(r, n->b);
        to_str(r, -1, n->b);
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

/* ---- rendering ---- */

static void out_append(Render *r, const Node *n, const char *s, size_t len)
{
    State *st = r->c.st;
    if (len == 0)
        return;
    if (len > MAX_OUTPUT - st->outlen)
        fail(&r->c, n->pos, "output longer than %zu MiB", MAX_OUTPUT >> 20);
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

static void render_for(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    int base = lua_gettop(L), saved = r->nscopes;
    luaL_checkstack(L, 10, "template loop");
    eval_strict(r, n->a);
    as_list(r, base + 1, n->a);
    lua_Integer len = (lua_Integer)lua_rawlen(L, base + 1);
    if (len == 0) {
        lua_settop(L, base);
        render_body(r, n->c);
        return;
    }
    lua_createtable(L, 0, 7); /* base+2: loop */
    lua_pushnil(L);           /* base+3, base+4: the targets */
    lua_pushnil(L);
    r->scopes[r->nscopes++] = (Scope){"loop", 4, base + 2};
    r->scopes[r->nscopes++] = (Scope){n->s, n->len, base + 3};
    if (n->s2)
        r->scopes[r->nscopes++] = (Scope){n->s2, n->len2, base + 4};
    for (lua_Integer i = 1; i <= len; i++) {
        if (++r->iterations > MAX_ITERATIONS)
            fail(&r->c, n->pos, "more than %ld loop iterations", MAX_ITERATIONS);
        lua_rawgeti(L, base + 1, i);
        if (n->s2) {
            if (lua_type(L, -1) != LUA_TTABLE || lua_rawlen(L, -1) != 2) {
                char s[100];
                fail(&r->c, n->a->start, "cannot unpack item " LUA_INTEGER_FMT " of %s (%s) "
                     "into two loop variables; use |dictsort or .items()", i - 1,
                     src_of(r, n->a, s, sizeof s), a_type(L, -1));
            }
            lua_rawgeti(L, -1, 1);
            lua_replace(L, base + 3);
            lua_rawgeti(L, -1, 2);
            lua_replace(L, base + 4);
            lua_pop(L, 1);
        } else {
            lua_replace(L, base + 3);
        }
        set_field(L, base + 2, "index", i, 0);
        set_field(L, base + 2, "index0", i - 1, 0);
        set_field(L, base + 2, "revindex", len - i + 1, 0);
        set_field(L, base + 2, "revindex0", len - i, 0);
        set_field(L, base + 2, "first", i == 1, 1);
        set_field(L, base + 2, "last", i == len, 1);
        set_field(L, base + 2, "length", len, 0);
        render_body(r, n->b);
        lua_settop(L, base + 4);
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
            eval_strict(r, n->a);
            to_str(r, -1, n->a);
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
                eval_strict(r, x->a);
                int t = truthy(r, -1, x->a);
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
    Node *root = parse_body(&p, NULL, NULL, NULL);
    Render *r = lua_newuserdatauv(L, sizeof *r, 0); /* large: keep it off the C stack */
    memset(r, 0, sizeof *r);
    r->c = p.c;
    r->vars = 3;
    render_body(r, root);
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
