/*
 * template-parse.c: the parser of the template family (tokens from
 * template-lex.c): the whole template becomes an AST before anything
 * renders, so a syntax error anywhere is reported first, with
 * template:line:column.
 */
#include "template-internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    const Node *kids[3 + MAX_ARGS] = {n->a, n->b, n->c, n->argv[0], n->argv[1], n->argv[2],
                                      n->argv[3]};
    int chain = n->kind == N_LIST || n->kind == N_DICT;
    for (int k = 0; k < 3 + MAX_ARGS; k++)
        for (const Node *x = kids[k]; x; x = chain && k == 0 ? x->next : NULL)
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
    "and", "or", "not", "in", "is", "if", "else", "true", "false", "True", "False",
    "none", "None", NULL
};

static int is_reserved(const Tok *t)
{
    for (int k = 0; reserved[k]; k++)
        if (tpl_tok_is(t, reserved[k]))
            return 1;
    return 0;
}

static Node *parse_expr(Parser *p);
static Node *parse_or(Parser *p);
static Node *parse_unary(Parser *p, int with_filter);
static Node *parse_primary_or_neg(Parser *p);

static void enter(Parser *p)
{
    if (++p->nest > MAX_DEPTH)
        tpl_fail(&p->c, p->tok.pos, "expression nested too deeply (limit %d)", MAX_DEPTH);
}

static void expect(Parser *p, int type, const char *what)
{
    if (p->tok.type != type)
        tpl_unexpected(p, what);
    tpl_next(p);
}

/* Adjacent string literals join, as in Jinja ('a' 'b' is 'ab'). */
static Node *parse_strings(Parser *p)
{
    Tok t = p->tok;
    Node *n = new_node(p, N_STR, t.pos);
    n->s = t.s;
    n->len = t.len;
    tpl_next(p);
    while (p->tok.type == T_STR) {
        char *d = tpl_arena_alloc(p->c.L, p->c.st, n->len + p->tok.len + 1);
        memcpy(d, n->s, n->len);
        memcpy(d + n->len, p->tok.s, p->tok.len);
        n->s = d;
        n->len += p->tok.len;
        tpl_next(p);
    }
    return seal(p, n, t.pos);
}

static Node *parse_primary(Parser *p)
{
    Tok t = p->tok;
    Node *n;
    switch (t.type) {
    case T_NAME:
        if (tpl_tok_is(&t, "true") || tpl_tok_is(&t, "True") || tpl_tok_is(&t, "false") ||
            tpl_tok_is(&t, "False")) {
            n = new_node(p, N_BOOL, t.pos);
            n->i = t.s[0] == 't' || t.s[0] == 'T';
        } else if (tpl_tok_is(&t, "none") || tpl_tok_is(&t, "None")) {
            n = new_node(p, N_NONE, t.pos);
        } else if (is_reserved(&t)) {
            tpl_unexpected(p, "an expression");
        } else {
            n = new_node(p, N_NAME, t.pos);
            n->s = t.s;
            n->len = t.len;
        }
        tpl_next(p);
        return seal(p, n, t.pos);
    case T_STR:
        return parse_strings(p);
    case T_INT:
    case T_FLOAT:
        n = new_node(p, t.type == T_INT ? N_INT : N_FLOAT, t.pos);
        n->i = t.i;
        n->f = t.f;
        tpl_next(p);
        return seal(p, n, t.pos);
    case '(':
        tpl_next(p);
        if (p->tok.type == ')') { /* () is the empty tuple */
            n = new_node(p, N_LIST, t.pos);
            n->op = 1;
            tpl_next(p);
            return seal(p, n, t.pos);
        }
        n = parse_expr(p);
        if (p->tok.type == ',') { /* a tuple: a list printed (a, b) */
            Node *tu = new_node(p, N_LIST, t.pos), **tail = &tu->a;
            tu->op = 1;
            *tail = n;
            tail = &n->next;
            enter(p);
            while (p->tok.type == ',') {
                tpl_next(p);
                if (p->tok.type == ')')
                    break;
                *tail = parse_expr(p);
                tail = &(*tail)->next;
            }
            p->nest--;
            expect(p, ')', "',' or ')'");
            return seal(p, tu, t.pos);
        }
        expect(p, ')', "')'");
        n->start = t.pos;
        n->end = p->prev_end;
        return n;
    case '[':
    case '{': {
        int dict = t.type == '{';
        n = new_node(p, dict ? N_DICT : N_LIST, t.pos);
        Node **tail = &n->a;
        tpl_next(p);
        enter(p);
        while (p->tok.type != (dict ? '}' : ']')) {
            if (dict) {
                Node *pair = new_node(p, N_PAIR, p->tok.pos);
                pair->a = parse_expr(p);
                expect(p, ':', "':'");
                pair->b = parse_expr(p);
                *tail = seal(p, pair, pair->pos);
            } else {
                *tail = parse_expr(p);
            }
            tail = &(*tail)->next;
            if (p->tok.type != ',')
                break;
            tpl_next(p);
        }
        expect(p, dict ? '}' : ']', dict ? "',' or '}'" : "',' or ']'");
        p->nest--;
        return seal(p, n, t.pos);
    }
    default:
        tpl_unexpected(p, "an expression");
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
                if (tpl_tok_is(&k, "items") && p->tok.type == '(') {
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
                tpl_unexpected(p, "a key after '.'");
            }
            n->a = obj;
            obj = seal(p, n, start);
        } else if (p->tok.type == '[') {
            Node *n = new_node(p, N_GETITEM, 0);
            tpl_next(p);
            n->pos = p->tok.pos;
            if (p->tok.type != ':')
                n->b = parse_expr(p);
            if (p->tok.type == ':') { /* a[start:stop:step], each part optional */
                n->kind = N_SLICE;
                n->argv[0] = n->b;
                n->b = NULL;
                for (int k = 1; k <= 2 && p->tok.type == ':'; k++) {
                    tpl_next(p);
                    if (p->tok.type != ':' && p->tok.type != ']')
                        n->argv[k] = parse_expr(p);
                }
            }
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

typedef struct Args {
    int n, nkw;
    Node *pos[MAX_ARGS + 2];
    Tok kwname[MAX_ARGS];
    Node *kw[MAX_ARGS];
} Args;

/* "(a, b, k=v)" after a filter or test name, into positional and keyword
 * expressions; the '(' is the current token. */
static void parse_call_args(Parser *p, Args *a, const char *what)
{
    memset(a, 0, sizeof *a);
    tpl_next(p); /* '(' */
    while (p->tok.type != ')') {
        Tok t = p->tok;
        if (t.type == T_NAME && tpl_lex(p, t.end).type == '=') {
            if (a->nkw >= MAX_ARGS)
                tpl_fail(&p->c, t.pos, "too many arguments for %s", what);
            tpl_next(p);
            tpl_next(p);
            a->kwname[a->nkw] = t;
            a->kw[a->nkw++] = parse_expr(p);
        } else {
            if (a->nkw)
                tpl_fail(&p->c, t.pos, "positional argument after keyword argument");
            if (a->n >= MAX_ARGS + 2)
                tpl_fail(&p->c, t.pos, "too many arguments for %s", what);
            a->pos[a->n++] = parse_expr(p);
        }
        if (p->tok.type != ',')
            break;
        tpl_next(p);
    }
    expect(p, ')', "',' or ')'");
}

/* Put a filter's arguments into its parameter slots (from index `from` of
 * the positional ones). */
static void bind_args(Parser *p, Node *n, const struct Filter *f, const Args *a, int from)
{
    for (int k = from; k < a->n; k++) {
        int slot = k - from;
        if (slot >= MAX_ARGS || !f->params[slot])
            tpl_fail(&p->c, a->pos[k]->start, "too many arguments for filter '%s'", f->name);
        n->argv[slot] = a->pos[k];
    }
    for (int k = 0; k < a->nkw; k++) {
        const Tok *t = &a->kwname[k];
        int slot;
        for (slot = 0; slot < MAX_ARGS; slot++)
            if (f->params[slot] && tpl_tok_is(t, f->params[slot]))
                break;
        if (slot == MAX_ARGS)
            tpl_fail(&p->c, t->pos, "unknown argument '%.*s' for filter '%s'", (int)t->len, t->s,
                     f->name);
        if (n->argv[slot])
            tpl_fail(&p->c, t->pos, "argument '%s' given twice", f->params[slot]);
        n->argv[slot] = a->kw[k];
    }
}

static void check_required(Parser *p, const Node *n, const struct Filter *f, size_t pos)
{
    for (int k = 0; k < f->required; k++)
        if (!n->argv[k])
            tpl_fail(&p->c, pos, "missing argument '%s' for filter '%s'", f->params[k], f->name);
}

/* The name given to map/select/...: a string literal naming a filter or test. */
static const Node *name_arg(Parser *p, const Node *x, const char *what)
{
    if (!x || x->kind != N_STR)
        tpl_fail(&p->c, x ? x->start : p->prev_end, "%s needs the name of a %s as a string "
                 "literal", what, strcmp(what, "map") == 0 ? "filter" : "test");
    return x;
}

static Node *make_test(Parser *p, const Node *name, Node *operand, Node *arg, int nargs_given)
{
    const struct Test *t = tpl_find_test(name->s, name->len);
    if (!t) {
        char buf[100];
        tpl_fail(&p->c, name->pos, "unknown test '%s'", tpl_excerpt(buf, sizeof buf, name->s,
                                                                       name->len));
    }
    if (t->nargs == 0 && nargs_given > 0)
        tpl_fail(&p->c, name->pos, "test '%s' takes no argument", t->name);
    if (t->nargs == 1 && nargs_given == 0)
        tpl_fail(&p->c, name->pos, "test '%s' needs an argument", t->name);
    if (nargs_given > 1)
        tpl_fail(&p->c, name->pos, "too many arguments for test '%s'", t->name);
    Node *tn = new_node(p, N_TEST, name->pos);
    tn->op = t->id;
    tn->a = operand;
    tn->argv[0] = arg;
    return seal(p, tn, name->pos);
}

/* map, select, reject, selectattr, rejectattr: the function applied to each
 * item is resolved here, applied to an N_ITEM placeholder. */
static void parse_higher(Parser *p, Node *fn, const struct Filter *f, const Args *a)
{
    Node *item = seal(p, new_node(p, N_ITEM, fn->pos), fn->pos);
    if (f->id == F_MAP) {
        if (a->n == 0) {
            bind_args(p, fn, f, a, 0);
            if (!fn->argv[0])
                tpl_fail(&p->c, fn->pos, "map needs a filter name or attribute=");
            return;
        }
        const Node *nm = name_arg(p, a->pos[0], "map");
        const struct Filter *sub = tpl_find_filter(nm->s, nm->len);
        if (!sub || sub->id == F_MAP || sub->id == F_SELECT || sub->id == F_REJECT ||
            sub->id == F_SELECTATTR || sub->id == F_REJECTATTR) {
            char buf[100];
            tpl_fail(&p->c, nm->pos, "unknown filter '%s' for map",
                     tpl_excerpt(buf, sizeof buf, nm->s, nm->len));
        }
        Node *sn = new_node(p, N_FILTER, nm->pos);
        sn->op = sub->id;
        sn->s = sub->name;
        sn->a = item;
        bind_args(p, sn, sub, a, 1);
        check_required(p, sn, sub, nm->pos);
        fn->b = seal(p, sn, nm->pos);
        return;
    }
    if (a->nkw)
        tpl_fail(&p->c, a->kwname[0].pos, "%s takes no keyword arguments", f->name);
    int attr = f->id == F_SELECTATTR || f->id == F_REJECTATTR, k = 0;
    if (attr) {
        if (a->n == 0)
            tpl_fail(&p->c, fn->pos, "%s needs an attribute name", f->name);
        fn->argv[0] = a->pos[k++];
    }
    if (k < a->n) {
        const Node *nm = name_arg(p, a->pos[k], f->name);
        fn->b = make_test(p, nm, item, k + 1 < a->n ? a->pos[k + 1] : NULL, a->n - k - 1);
    }
}

static Node *parse_filters(Parser *p, Node *n)
{
    for (;;) {
        size_t start = n->start;
        if (p->tok.type == '|') {
            tpl_next(p);
            Tok t = p->tok;
            if (t.type != T_NAME)
                tpl_unexpected(p, "a filter name");
            const struct Filter *f = tpl_find_filter(t.s, t.len);
            if (!f)
                tpl_fail(&p->c, t.pos, "unknown filter '%.*s'", (int)t.len, t.s);
            Node *fn = new_node(p, N_FILTER, t.pos);
            fn->op = f->id;
            fn->s = f->name;
            fn->a = n;
            tpl_next(p);
            Args a;
            memset(&a, 0, sizeof a);
            if (p->tok.type == '(')
                parse_call_args(p, &a, f->name);
            if (f->id == F_MAP || f->id == F_SELECT || f->id == F_REJECT ||
                f->id == F_SELECTATTR || f->id == F_REJECTATTR)
                parse_higher(p, fn, f, &a);
            else
                bind_args(p, fn, f, &a, 0);
            check_required(p, fn, f, t.pos);
            n = seal(p, fn, start);
        } else if (tpl_tok_is(&p->tok, "is")) {
            tpl_next(p);
            int neg = 0;
            if (tpl_tok_is(&p->tok, "not")) {
                neg = 1;
                tpl_next(p);
            }
            Tok t = p->tok;
            Node nm;
            memset(&nm, 0, sizeof nm);
            nm.kind = N_STR;
            nm.pos = t.pos;
            if (t.type == T_NAME) {
                nm.s = t.s;
                nm.len = t.len;
            } else if (t.type == T_EQ || t.type == T_NE || t.type == '<' || t.type == '>' ||
                       t.type == T_LE || t.type == T_GE) {
                static const char *const ops[] = {"eq", "ne", "lt", "gt", "le", "ge"};
                int k = t.type == T_EQ ? 0 : t.type == T_NE ? 1 : t.type == '<' ? 2
                      : t.type == '>' ? 3 : t.type == T_LE ? 4 : 5;
                nm.s = ops[k];
                nm.len = 2;
            } else {
                tpl_unexpected(p, "a test name");
            }
            tpl_next(p);
            Node *arg = NULL;
            int given = 0;
            if (p->tok.type == '(') {
                Args a;
                parse_call_args(p, &a, "a test");
                if (a.nkw)
                    tpl_fail(&p->c, a.kwname[0].pos, "tests take no keyword arguments");
                given = a.n;
                arg = a.n ? a.pos[0] : NULL;
            } else if ((p->tok.type == T_NAME && !tpl_tok_is(&p->tok, "else") &&
                        !tpl_tok_is(&p->tok, "or") && !tpl_tok_is(&p->tok, "and") &&
                        !tpl_tok_is(&p->tok, "if") && !tpl_tok_is(&p->tok, "is") &&
                        !tpl_tok_is(&p->tok, "in") && !tpl_tok_is(&p->tok, "not")) ||
                       p->tok.type == T_STR || p->tok.type == T_INT ||
                       p->tok.type == T_FLOAT || p->tok.type == '[' || p->tok.type == '{' ||
                       p->tok.type == '-') {
                /* Jinja: `x is divisibleby 3`, one argument without parentheses */
                arg = parse_postfix(p, parse_primary_or_neg(p));
                given = 1;
            }
            Node *tn = make_test(p, &nm, n, arg, given);
            tn->neg = neg;
            tn->start = start;
            tn->end = p->prev_end;
            n = tn;
        } else if (p->tok.type == '(') {
            tpl_fail(&p->c, p->tok.pos, "calling functions is not supported");
        } else {
            return n;
        }
    }
}

/* Jinja's unary: '-' and '+' bind tighter than ** and looser than filters
 * (-1|abs is abs(-1)); a '-' before a number literal folds into it. */
static Node *parse_unary(Parser *p, int with_filter)
{
    Node *n;
    size_t pos = p->tok.pos;
    if (p->tok.type == '-' || p->tok.type == '+') {
        int minus = p->tok.type == '-';
        tpl_next(p);
        enter(p);
        if (minus && (p->tok.type == T_INT || p->tok.type == T_FLOAT) &&
            tpl_lex(p, p->tok.end).type != '.' && tpl_lex(p, p->tok.end).type != '[') {
            n = new_node(p, p->tok.type == T_INT ? N_INT : N_FLOAT, pos);
            n->i = -p->tok.i;
            n->f = -p->tok.f;
            tpl_next(p);
            n = seal(p, n, pos);
        } else {
            n = new_node(p, minus ? N_NEG : N_POS, pos);
            n->a = parse_unary(p, 0);
            n = seal(p, n, pos);
        }
        p->nest--;
    } else {
        n = parse_primary(p);
    }
    n = parse_postfix(p, n);
    return with_filter ? parse_filters(p, n) : n;
}

static Node *parse_primary_or_neg(Parser *p)
{
    return parse_unary(p, 0);
}

static Node *arith(Parser *p, Node *l, int op, Node *(*next)(Parser *))
{
    Node *c = new_node(p, N_ARITH, p->tok.pos);
    tpl_next(p);
    c->op = op;
    c->a = l;
    c->b = next(p);
    return seal(p, c, l->start);
}

static Node *parse_pow(Parser *p)
{
    Node *n = parse_unary(p, 1);
    while (p->tok.type == T_POW) { /* left-associative in Jinja: 2**3**2 is 64 */
        Node *c = new_node(p, N_ARITH, p->tok.pos);
        tpl_next(p);
        c->op = OP_POW;
        c->a = n;
        c->b = parse_unary(p, 1);
        n = seal(p, c, n->start);
    }
    return n;
}

static Node *parse_math2(Parser *p)
{
    Node *n = parse_pow(p);
    for (;;) {
        int ty = p->tok.type;
        if (ty == '*')
            n = arith(p, n, OP_MUL, parse_pow);
        else if (ty == '/')
            n = arith(p, n, OP_DIV, parse_pow);
        else if (ty == T_FLOORDIV)
            n = arith(p, n, OP_FLOORDIV, parse_pow);
        else if (ty == '%')
            n = arith(p, n, OP_MOD, parse_pow);
        else
            return n;
    }
}

static Node *parse_concat(Parser *p)
{
    Node *n = parse_math2(p);
    while (p->tok.type == '~') {
        Node *c = new_node(p, N_CONCAT, p->tok.pos);
        tpl_next(p);
        c->a = n;
        c->b = parse_math2(p);
        n = seal(p, c, n->start);
    }
    return n;
}

static Node *parse_math1(Parser *p)
{
    Node *n = parse_concat(p);
    for (;;) {
        if (p->tok.type == '+')
            n = arith(p, n, OP_ADD, parse_concat);
        else if (p->tok.type == '-')
            n = arith(p, n, OP_SUB, parse_concat);
        else
            return n;
    }
}

/* One comparison operator at the current token: its kind, op and negation,
 * or 0 when the token is none. */
static int cmp_op(Parser *p, int *kind, int *op, int *neg)
{
    *kind = N_CMP;
    *neg = 0;
    switch (p->tok.type) {
    case T_EQ: *op = OP_EQ; return 1;
    case T_NE: *op = OP_NE; return 1;
    case '<': *op = OP_LT; return 1;
    case '>': *op = OP_GT; return 1;
    case T_LE: *op = OP_LE; return 1;
    case T_GE: *op = OP_GE; return 1;
    default:
        break;
    }
    *op = -1;
    if (tpl_tok_is(&p->tok, "in")) {
        *kind = N_IN;
        return 1;
    }
    if (tpl_tok_is(&p->tok, "not")) {
        Tok t2 = tpl_lex(p, p->tok.end);
        if (!tpl_tok_is(&t2, "in"))
            return 0;
        *kind = N_IN;
        *neg = 1;
        tpl_next(p);
        return 1;
    }
    return 0;
}

/* a < b < c is (a < b) and (b < c), b evaluated in both (it has no side
 * effects here) */
static Node *parse_compare(Parser *p)
{
    Node *n = parse_math1(p), *result = NULL;
    int kind, op, neg;
    while (cmp_op(p, &kind, &op, &neg)) {
        Node *c = new_node(p, kind, p->tok.pos);
        tpl_next(p);
        c->op = op;
        c->neg = neg;
        c->a = n;
        c->b = parse_math1(p);
        c = seal(p, c, n->start);
        if (result) {
            Node *both = new_node(p, N_AND, c->pos);
            both->a = result;
            both->b = c;
            result = seal(p, both, result->start);
        } else {
            result = c;
        }
        n = c->b;
    }
    return result ? result : n;
}

static Node *parse_not(Parser *p)
{
    if (!tpl_tok_is(&p->tok, "not"))
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
    while (tpl_tok_is(&p->tok, "and")) {
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
    while (tpl_tok_is(&p->tok, "or")) {
        Node *c = new_node(p, N_OR, p->tok.pos);
        tpl_next(p);
        c->a = n;
        c->b = parse_and(p);
        n = seal(p, c, n->start);
    }
    return n;
}

/* x if c else y; without else, a false c gives an undefined value */
static Node *parse_expr(Parser *p)
{
    enter(p);
    Node *n = parse_or(p);
    while (tpl_tok_is(&p->tok, "if")) {
        Node *c = new_node(p, N_COND, p->tok.pos);
        tpl_next(p);
        c->b = n;
        c->a = parse_or(p);
        if (tpl_tok_is(&p->tok, "else")) {
            tpl_next(p);
            c->c = parse_expr(p);
        }
        n = seal(p, c, n->start);
    }
    p->nest--;
    return n;
}

/* ---- statements ---- */

static void end_tag(Parser *p)
{
    if (p->tok.type != T_BLOCK_END)
        tpl_unexpected(p, "'%}'");
    size_t at = p->tok.end;
    p->lstrip_next = p->tok.mod == '-';
    if (!p->tok.mod) { /* trim_blocks */
        if (tpl_at_lit(&p->c, at, "\n"))
            at++;
        else if (tpl_at_lit(&p->c, at, "\r\n"))
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

/* Template text from b to e; \r\n and \r become \n as in Jinja's lexer
 * (newline_sequence '\n', Ansible's default). */
static Node *text_node(Parser *p, size_t b, size_t e)
{
    Node *t = new_node(p, N_TEXT, b);
    const char *src = p->c.src;
    t->s = src + b;
    t->len = e - b;
    if (!memchr(t->s, '\r', t->len))
        return t;
    char *d = tpl_arena_alloc(p->c.L, p->c.st, t->len);
    size_t n = 0;
    for (size_t k = b; k < e; k++) {
        if (src[k] == '\r') {
            d[n++] = '\n';
            if (k + 1 < e && src[k + 1] == '\n')
                k++;
        } else {
            d[n++] = src[k];
        }
    }
    t->s = d;
    t->len = n;
    return t;
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
    for (;;) {
        Tok t = p->tok;
        if (tpl_tok_is(&t, "loop"))
            tpl_fail(&p->c, t.pos, "cannot assign to 'loop' (Jinja's loop variable)");
        if (tpl_tok_is(&t, "none") || tpl_tok_is(&t, "None") || tpl_tok_is(&t, "true") ||
            tpl_tok_is(&t, "True") || tpl_tok_is(&t, "false") || tpl_tok_is(&t, "False"))
            tpl_fail(&p->c, t.pos, "cannot assign to '%.*s'", (int)t.len, t.s);
        if (t.type != T_NAME || is_reserved(&t))
            tpl_unexpected(p, n->ntg ? "a loop variable name after ','" : "a loop variable name");
        if (n->ntg == MAX_TARGETS)
            tpl_fail(&p->c, t.pos, "more than %d loop variables", MAX_TARGETS);
        for (int k = 0; k < n->ntg; k++)
            if (n->tglen[k] == t.len && memcmp(n->tg[k], t.s, t.len) == 0)
                tpl_fail(&p->c, t.pos, "loop variable '%.*s' given twice", (int)t.len, t.s);
        n->tg[n->ntg] = t.s;
        n->tglen[n->ntg++] = t.len;
        tpl_next(p);
        if (p->tok.type != ',')
            break;
        tpl_next(p);
    }
    if (!tpl_tok_is(&p->tok, "in"))
        tpl_unexpected(p, "'in'");
    tpl_next(p);
    p->nest = 0;
    enter(p);
    n->a = parse_or(p); /* not parse_expr: "for x in y if c" filters the items */
    if (tpl_tok_is(&p->tok, "if")) {
        tpl_next(p);
        n->argv[0] = parse_expr(p);
    }
    if (tpl_tok_is(&p->tok, "recursive"))
        tpl_fail(&p->c, p->tok.pos, "recursive loops are not supported");
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
        tpl_unexpected(p, "'%}'");
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
            if (tpl_at_lit(&p->c, k, "endraw")) {
                p->tok = tpl_lex(p, k + 6);
                size_t e = t;
                if (strip)
                    while (e > p->pos && tpl_is_ws(p->c.src[e - 1]))
                        e--;
                Node *n = text_node(p, p->pos, e);
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
        if (e > b)
            append(&tail, text_node(p, b, e));
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
        p->balance = 0;
        p->tok = tpl_lex(p, at);
        p->nest = 0;
        if (kind == '{') {
            Node *n = new_node(p, N_OUTPUT, q);
            n->a = parse_expr(p);
            if (p->tok.type != T_VAR_END)
                tpl_unexpected(p, "'}}'");
            p->lstrip_next = p->tok.mod == '-';
            p->pos = p->tok.end;
            append(&tail, n);
            continue;
        }
        Tok tag = p->tok;
        if (tag.type != T_NAME)
            tpl_unexpected(p, "a tag name");
        for (int k = 0; stops && stops[k]; k++) {
            if (tpl_tok_is(&tag, stops[k])) {
                *which = k;
                p->tag_pos = q;
                tpl_next(p);
                p->blocks--;
                return head;
            }
        }
        if (tpl_tok_is(&tag, "for")) {
            append(&tail, parse_for(p, q));
        } else if (tpl_tok_is(&tag, "if")) {
            append(&tail, parse_if(p, q));
        } else if (tpl_tok_is(&tag, "raw")) {
            tpl_next(p);
            append(&tail, parse_raw(p, q));
        } else {
            for (int k = 0; end_tags[k]; k++) {
                if (!tpl_tok_is(&tag, end_tags[k]))
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

