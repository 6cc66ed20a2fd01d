/*
 * template-parse.c: the lexer and the parser of the template family: the
 * whole template becomes an AST before anything renders, so a syntax error
 * anywhere is reported first, with template:line:column.
 */
#include "template-internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lexer (inside {{ }} and {% %}) ---- */

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
    while (e < p->c.len && tpl_is_digit(s[e]))
        e++;
    if (e + 1 < p->c.len && s[e] == '.' && tpl_is_digit(s[e + 1])) {
        isfloat = 1;
        e++;
        while (e < p->c.len && tpl_is_digit(s[e]))
            e++;
    }
    if (e < p->c.len && (s[e] == 'e' || s[e] == 'E')) {
        size_t x = e + 1;
        if (x < p->c.len && (s[x] == '+' || s[x] == '-'))
            x++;
        if (x < p->c.len && tpl_is_digit(s[x])) {
            isfloat = 1;
            e = x;
            while (e < p->c.len && tpl_is_digit(s[e]))
                e++;
        }
    }
    t->end = e;
    if (isfloat) {
        char buf[64];
        if (e - at >= sizeof buf)
            tpl_fail(&p->c, at, "number literal too long");
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
            tpl_fail(&p->c, at, "integer literal too large");
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
        tpl_fail(&p->c, at, "unterminated string literal");
    t->type = T_STR;
    t->end = e + 1;
    if (!escapes) {
        t->s = s + at + 1;
        t->len = e - at - 1;
        return;
    }
    char *d = tpl_arena_alloc(p->c.L, p->c.st, e - at);
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
    while (at < c->len && tpl_is_ws(s[at]))
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
    } else if (tpl_is_alpha(ch)) {
        size_t e = at;
        while (e < c->len && (tpl_is_alpha(s[e]) || tpl_is_digit(s[e])))
            e++;
        t.type = T_NAME;
        t.s = s + at;
        t.len = e - at;
        t.end = e;
    } else if (tpl_is_digit(ch)) {
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
        tpl_fail(c, at, "unexpected character '%c'", ch);
    } else {
        tpl_fail(c, at, "unexpected byte 0x%02x", (unsigned char)ch);
    }
    return t;
}

void tpl_next(Parser *p)
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
        snprintf(what, sizeof what, "'%s'", tpl_excerpt(buf, sizeof buf, p->c.src + p->tok.pos,
                                                    p->tok.end - p->tok.pos));
    if (expected)
        tpl_fail(&p->c, p->tok.pos, "unexpected %s, expected %s", what, expected);
    tpl_fail(&p->c, p->tok.pos, "unexpected %s", what);
}

/* ---- AST ---- */

const struct Filter filters[] = {
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

static Node *new_node(Parser *p, int kind, size_t pos)
{
    Node *n = tpl_arena_alloc(p->c.L, p->c.st, sizeof *n);
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
        tpl_fail(&p->c, n->pos, "expression nested too deeply (limit %d)", MAX_DEPTH);
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
        tpl_fail(&p->c, p->tok.pos, "expression nested too deeply (limit %d)", MAX_DEPTH);
}

static void expect(Parser *p, int type, const char *what)
{
    if (p->tok.type != type)
        unexpected(p, what);
    tpl_next(p);
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
        tpl_next(p);
        return seal(p, n, t.pos);
    case T_STR:
    case T_INT:
    case T_FLOAT:
        n = new_node(p, t.type == T_STR ? N_STR : t.type == T_INT ? N_INT : N_FLOAT, t.pos);
        n->s = t.s;
        n->len = t.len;
        n->i = t.i;
        n->f = t.f;
        tpl_next(p);
        return seal(p, n, t.pos);
    case '(':
        tpl_next(p);
        n = parse_expr(p);
        expect(p, ')', "')'");
        n->start = t.pos;
        n->end = p->prev_end;
        return n;
    case '[': {
        n = new_node(p, N_LIST, t.pos);
        Node **tail = &n->a;
        tpl_next(p);
        enter(p);
        while (p->tok.type != ']') {
            *tail = parse_expr(p);
            tail = &(*tail)->next;
            if (p->tok.type != ',')
                break;
            tpl_next(p);
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
            tpl_next(p);
            Tok k = p->tok;
            Node *n;
            if (k.type == T_NAME) {
                tpl_next(p);
                if (tok_is(&k, "items") && p->tok.type == '(') {
                    tpl_next(p);
                    expect(p, ')', "')' (items() takes no arguments)");
                    n = new_node(p, N_ITEMS, k.pos);
                } else {
                    n = new_node(p, N_GETATTR, k.pos);
                    n->s = k.s;
                    n->len = k.len;
                }
            } else if (k.type == T_INT) {
                tpl_next(p);
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
            tpl_next(p);
            n->pos = p->tok.pos;
            n->b = parse_expr(p);
            expect(p, ']', "']'");
            n->a = obj;
            obj = seal(p, n, start);
        } else if (p->tok.type == '(') {
            tpl_fail(&p->c, p->tok.pos, "calling functions is not supported");
        } else {
            return obj;
        }
    }
}

static void parse_filter_args(Parser *p, Node *n, const struct Filter *f)
{
    int npos = 0, kw = 0;
    tpl_next(p); /* '(' */
    while (p->tok.type != ')') {
        int slot;
        Tok t = p->tok;
        if (t.type == T_NAME && lex(p, t.end).type == '=') {
            for (slot = 0; slot < MAX_ARGS; slot++)
                if (f->params[slot] && tok_is(&t, f->params[slot]))
                    break;
            if (slot == MAX_ARGS)
                tpl_fail(&p->c, t.pos, "unknown argument '%.*s' for filter '%s'", (int)t.len, t.s,
                     f->name);
            if (n->argv[slot])
                tpl_fail(&p->c, t.pos, "argument '%s' given twice", f->params[slot]);
            tpl_next(p);
            tpl_next(p);
            kw = 1;
        } else {
            if (kw)
                tpl_fail(&p->c, t.pos, "positional argument after keyword argument");
            slot = npos++;
            if (slot >= MAX_ARGS || !f->params[slot])
                tpl_fail(&p->c, t.pos, "too many arguments for filter '%s'", f->name);
        }
        n->argv[slot] = parse_expr(p);
        if (p->tok.type != ',')
            break;
        tpl_next(p);
    }
    expect(p, ')', "',' or ')'");
}

static Node *parse_unary(Parser *p)
{
    Node *n;
    if (p->tok.type == '-') {
        size_t pos = p->tok.pos;
        tpl_next(p);
        if (p->tok.type != T_INT && p->tok.type != T_FLOAT)
            unexpected(p, "a number after '-'");
        n = new_node(p, p->tok.type == T_INT ? N_INT : N_FLOAT, pos);
        n->i = -p->tok.i;
        n->f = -p->tok.f;
        tpl_next(p);
        n = seal(p, n, pos);
    } else {
        n = parse_primary(p);
    }
    n = parse_postfix(p, n);
    for (;;) {
        size_t start = n->start;
        if (p->tok.type == '|') {
            tpl_next(p);
            Tok t = p->tok;
            if (t.type != T_NAME)
                unexpected(p, "a filter name");
            const struct Filter *f = NULL;
            for (size_t k = 0; k < sizeof filters / sizeof filters[0]; k++)
                if (tok_is(&t, filters[k].name))
                    f = &filters[k];
            if (!f)
                tpl_fail(&p->c, t.pos, "unknown filter '%.*s'", (int)t.len, t.s);
            Node *fn = new_node(p, N_FILTER, t.pos);
            fn->op = f->id;
            fn->s = f->name;
            fn->a = n;
            tpl_next(p);
            if (p->tok.type == '(')
                parse_filter_args(p, fn, f);
            for (int k = 0; k < f->required; k++)
                if (!fn->argv[k])
                    tpl_fail(&p->c, t.pos, "missing argument '%s' for filter '%s'", f->params[k],
                         f->name);
            n = seal(p, fn, start);
        } else if (tok_is(&p->tok, "is")) {
            tpl_next(p);
            Node *tn = new_node(p, N_TEST, 0);
            if (tok_is(&p->tok, "not")) {
                tn->neg = 1;
                tpl_next(p);
            }
            tn->pos = p->tok.pos;
            if (tok_is(&p->tok, "undefined"))
                tn->neg = !tn->neg;
            else if (!tok_is(&p->tok, "defined"))
                unexpected(p, "'defined' or 'undefined' (the only tests supported)");
            tpl_next(p);
            tn->a = n;
            n = seal(p, tn, start);
        } else if (p->tok.type == '(') {
            tpl_fail(&p->c, p->tok.pos, "calling functions is not supported");
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
        tpl_next(p);
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
            tpl_next(p);
        } else {
            return n;
        }
    }
    Node *c = new_node(p, kind, p->tok.pos);
    tpl_next(p);
    c->op = op;
    c->neg = neg;
    c->a = n;
    c->b = parse_concat(p);
    switch (p->tok.type) {
    case T_EQ: case T_NE: case '<': case '>': case T_LE: case T_GE:
        tpl_fail(&p->c, p->tok.pos, "chained comparisons are not supported");
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
    tpl_next(p);
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
        tpl_next(p);
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
        tpl_next(p);
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
        tpl_next(p);
        c->b = n;
        c->a = parse_or(p);
        if (!tok_is(&p->tok, "else"))
            unexpected(p, "'else' (x if c else y)");
        tpl_next(p);
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


__attribute__((noreturn))
static void unclosed(Parser *p, const char *closer, const char *what, size_t opened)
{
    int line, col;
    tpl_line_col(&p->c, opened, &line, &col);
    tpl_fail(&p->c, p->c.len, "unexpected end of template, expected %s (%s opened at %d:%d)",
         closer, what, line, col);
}

static Node *parse_for(Parser *p, size_t q)
{
    static const char *const stops[] = {"endfor", "else", NULL};
    static const char *const end[] = {"endfor", NULL};
    Node *n = new_node(p, N_FOR, q);
    int which;
    tpl_next(p);
    if (p->tok.type != T_NAME || is_reserved(&p->tok))
        unexpected(p, "a loop variable name");
    n->s = p->tok.s;
    n->len = p->tok.len;
    tpl_next(p);
    if (p->tok.type == ',') {
        tpl_next(p);
        if (p->tok.type != T_NAME || is_reserved(&p->tok))
            unexpected(p, "a second loop variable name");
        n->s2 = p->tok.s;
        n->len2 = p->tok.len;
        tpl_next(p);
    }
    if (!tok_is(&p->tok, "in"))
        unexpected(p, "'in'");
    tpl_next(p);
    p->nest = 0;
    enter(p);
    n->a = parse_or(p); /* not parse_expr: Jinja reserves "for x in y if c" */
    end_tag(p);
    n->b = tpl_parse_body(p, stops, n, &which);
    if (which == 1) {
        end_tag(p);
        n->c = tpl_parse_body(p, end, n, &which);
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
    tpl_next(p);
    for (;;) {
        p->nest = 0;
        cur->a = parse_expr(p);
        end_tag(p);
        cur->b = tpl_parse_body(p, stops, first, &which);
        if (which == 0) { /* elif: chain another N_IF as the else branch */
            cur->op = 1;
            cur->c = new_node(p, N_IF, p->tag_pos);
            cur = cur->c;
            continue;
        }
        if (which == 1) {
            end_tag(p);
            cur->c = tpl_parse_body(p, end, first, &which);
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
            while (k < p->c.len && tpl_is_ws(p->c.src[k]))
                k++;
            if (at_lit(&p->c, k, "endraw")) {
                p->tok = lex(p, k + 6);
                size_t e = t;
                if (strip)
                    while (e > p->pos && tpl_is_ws(p->c.src[e - 1]))
                        e--;
                Node *n = new_node(p, N_TEXT, p->pos);
                n->s = p->c.src + p->pos;
                n->len = e - p->pos;
                if (p->lstrip_next)
                    while (n->len && tpl_is_ws(*n->s))
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
Node *tpl_parse_body(Parser *p, const char *const *stops, const Node *opener, int *which)
{
    const Ctx *c = &p->c;
    const char *src = c->src;
    Node *head = NULL, **tail = &head;
    const char *closer = opener && opener->kind == N_FOR ? "{% endfor %}" : "{% endif %}";
    const char *what = opener && opener->kind == N_FOR ? "for" : "if";
    if (opener && ++p->blocks > MAX_BLOCKS)
        tpl_fail(c, opener->pos, "blocks nested too deeply (limit %d)", MAX_BLOCKS);
    for (;;) {
        size_t q = find_tag(c, p->pos), b = p->pos, e = q;
        if (p->lstrip_next)
            while (b < e && tpl_is_ws(src[b]))
                b++;
        p->lstrip_next = 0;
        if (q < c->len && q + 2 < c->len && src[q + 2] == '-')
            while (e > b && tpl_is_ws(src[e - 1]))
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
                tpl_next(p);
                p->blocks--;
                return head;
            }
        }
        if (tok_is(&tag, "for")) {
            append(&tail, parse_for(p, q));
        } else if (tok_is(&tag, "if")) {
            append(&tail, parse_if(p, q));
        } else if (tok_is(&tag, "raw")) {
            tpl_next(p);
            append(&tail, parse_raw(p, q));
        } else {
            for (int k = 0; end_tags[k]; k++) {
                if (!tok_is(&tag, end_tags[k]))
                    continue;
                if (!opener)
                    tpl_fail(c, q, "unexpected {%% %s %%}", end_tags[k]);
                int line, col;
                tpl_line_col(c, opener->pos, &line, &col);
                tpl_fail(c, q, "unexpected {%% %s %%}, expected %s (%s opened at %d:%d)",
                     end_tags[k], closer, what, line, col);
            }
            char buf[100];
            tpl_fail(c, tag.pos, "unknown tag '%s'", tpl_excerpt(buf, sizeof buf, tag.s, tag.len));
        }
    }
}

const size_t n_filters = sizeof filters / sizeof filters[0];
