/*
 * template-internal.h: what the parts of the template family share
 * (template.c: memory, errors, rendering and the Lua API; template-parse.c:
 * the lexer and parser building the AST; template-eval.c: evaluating
 * expressions against the variables).
 */
#ifndef ETCDRUN_TEMPLATE_INTERNAL_H
#define ETCDRUN_TEMPLATE_INTERNAL_H

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

typedef struct Ctx {
    lua_State *L;
    State *st;
    const char *src;
    size_t len;
    const char *name;
} Ctx;

enum {
    T_EOF = 256, T_NAME, T_INT, T_FLOAT, T_STR, T_VAR_END, T_BLOCK_END,
    T_EQ, T_NE, T_LE, T_GE, T_FLOORDIV, T_POW
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
    int balance; /* open ( [ { : "}}" and "%}" inside them are not tag ends */
} Parser;

enum {
    /* statements */
    N_TEXT, N_OUTPUT, N_FOR, N_IF,
    /* expressions */
    N_NAME, N_STR, N_INT, N_FLOAT, N_BOOL, N_NONE, N_LIST, N_DICT, N_PAIR, N_GETATTR,
    N_GETITEM, N_ITEMS, N_NOT, N_AND, N_OR, N_COND, N_CMP, N_IN, N_CONCAT, N_FILTER, N_TEST,
    N_ARITH, N_NEG, N_POS, N_ITEM, N_SLICE
};

enum { F_DEFAULT, F_JOIN, F_UPPER, F_LOWER, F_INDENT, F_LENGTH, F_STRING, F_TRIM, F_QUOTE,
       F_REPLACE, F_DICTSORT, F_LIST, F_REVERSE, F_FIRST, F_LAST, F_INT, F_FLOAT, F_ABS,
       F_BOOL, F_CAPITALIZE, F_TITLE, F_SORT, F_UNIQUE, F_MIN, F_MAX, F_SUM, F_MAP, F_SELECT,
       F_REJECT, F_SELECTATTR, F_REJECTATTR, F_ITEMS, F_DICT2ITEMS, F_TO_JSON, F_TO_YAML,
       F_B64ENCODE, F_B64DECODE, F_REGEX_REPLACE, F_REGEX_SEARCH, F_ROUND, F_CENTER,
       F_WORDCOUNT, F_SPLIT, F_BASENAME, F_DIRNAME, F_MANDATORY, F_TO_NICE_JSON, F_BATCH };

/* tests: `x is NAME` */
enum { T_DEFINED, T_UNDEFINED, T_NONE, T_BOOLEAN, T_TRUE, T_FALSE, T_INTEGER, T_FLOATT,
       T_NUMBER, T_STRING, T_MAPPING, T_SEQUENCE, T_ITERABLE, T_LOWER, T_UPPER, T_EVEN, T_ODD,
       T_DIVISIBLEBY, T_EQTEST, T_NETEST, T_LTTEST, T_LETEST, T_GTTEST, T_GETEST, T_INTEST,
       T_SAMEAS, T_MATCH, T_SEARCH, T_REGEX, T_TRUTHY, T_FALSY, T_SUBSET, T_SUPERSET,
       T_CONTAINS };

#define MAX_ARGS 4
#define MAX_TARGETS 8

struct Node {
    int kind, op, neg, depth;
    size_t pos;            /* where messages point: the name, key or operator */
    size_t start, end;     /* the whole expression's source span */
    Node *a, *b, *c, *next;
    Node *argv[MAX_ARGS];  /* filter arguments by parameter */
    const char *s;         /* name / literal */
    size_t len;
    const char *tg[MAX_TARGETS]; /* loop targets */
    size_t tglen[MAX_TARGETS];
    int ntg;
    lua_Integer i;
    double f;
};

enum { OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE };
enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW };

typedef struct Scope {
    const char *name;
    size_t len;
    int slot; /* Lua stack index holding the value */
} Scope;

typedef struct Render {
    Ctx c;
    int vars;
    int item; /* stack slot of the item map()/select() apply to, 0 if none */
    int tuples; /* stack slot of a set of the tables that print as tuples (pairs) */
    int nscopes;
    Scope scopes[MAX_BLOCKS * (MAX_TARGETS + 1)];
    long iterations;
    size_t work;
    size_t undef_pos;
    int undef_soft; /* the undefined is an if without else: prints as nothing */
    char undef_msg[400];
} Render;

struct Filter {
    const char *name;
    int id, required;
    const char *params[MAX_ARGS];
};
extern const struct Filter filters[];
extern const size_t n_filters;

struct Test {
    const char *name;
    int id, nargs; /* nargs: 0 none, 1 one required, -1 one optional */
};
extern const struct Test tests[];
extern const size_t n_tests;
const struct Filter *tpl_find_filter(const char *s, size_t len);
const struct Test *tpl_find_test(const char *s, size_t len);

void *tpl_arena_alloc(lua_State *L, State *st, size_t n);
const char *tpl_excerpt(char *buf, size_t size, const char *s, size_t len);
__attribute__((noreturn, format(printf, 3, 4)))
void tpl_fail(const Ctx *c, size_t pos, const char *fmt, ...);
int tpl_is_alpha(char ch);
int tpl_is_digit(char ch);
int tpl_is_ws(char ch);
void tpl_line_col(const Ctx *c, size_t pos, int *line, int *col);
void tpl_next(Parser *p);
Tok tpl_lex(Parser *p, size_t at);
int tpl_tok_is(const Tok *t, const char *name);
int tpl_at_lit(const Ctx *c, size_t at, const char *lit);
__attribute__((noreturn))
void tpl_unexpected(Parser *p, const char *expected);
Node *tpl_parse_body(Parser *p, const char *const *stops, const Node *opener, int *which);
const char *tpl_a_type(lua_State *L, int idx);
void tpl_as_list(Render *r, int idx, const Node *n);
void tpl_eval_strict(Render *r, const Node *n);
int tpl_missing(Render *r, const Node *n, const char *objtype, lua_Integer len);
const char *tpl_src_of(const Render *r, const Node *n, char *buf, size_t size);
void tpl_to_str(Render *r, int idx, const Node *n);
int tpl_truthy(Render *r, int idx, const Node *n);
int tpl_eval(Render *r, const Node *n);
void tpl_add_work(Render *r, const Node *n, size_t bytes);
int tpl_py_eq(lua_State *L, int a, int b, int depth);
int tpl_py_cmp(Render *r, const Node *n, int a, int b, int *res);
int tpl_is_list(lua_State *L, int idx);
extern const char tpl_orders_key; /* registry: table -> its keys in literal order */
int tpl_is_none(lua_State *L, int idx);
void tpl_repr(Render *r, int idx, const Node *n, luaL_Buffer *b, int depth);
void tpl_fmt_float(double d, char *buf, size_t size);
void tpl_sorted_keys(Render *r, int idx, int fold, const Node *n);
int tpl_eval_filter(Render *r, const Node *n);
int tpl_eval_test(Render *r, const Node *n);
void tpl_utf8_chars(Render *r, int idx, const Node *n);
size_t tpl_utf8_len(const char *s, size_t len, size_t k);
unsigned long tpl_utf8_cp(const char *s, size_t n);
lua_Integer tpl_utf8_count(const char *s, size_t len);
void tpl_check_out(Render *r, const Node *n, luaL_Buffer *b);
void tpl_need_list(Render *r, const Node *n, int idx);
void tpl_to_json(Render *r, int idx, const Node *n, luaL_Buffer *b, int depth, int indent,
                 int level);
void tpl_to_yaml(Render *r, int idx, const Node *n);
void tpl_sorted_pairs(Render *r, int idx, int fold, const Node *n);
int tpl_contains(Render *r, const Node *n);
void tpl_arith(Render *r, const Node *n);
int tpl_slice(Render *r, const Node *n);
int tpl_as_num(lua_State *L, int idx, int *isint, lua_Integer *i, double *d);
long tpl_unicode_lookup(const char *name);
int tpl_py_printable(unsigned long cp);
int tpl_py_space(unsigned long cp);
void tpl_push_case(Render *r, const Node *n, const char *s, size_t len, int upper);
void tpl_regex_replace(Render *r, const Node *n, int s, int pat, int rep, int icase, int ml,
                       lua_Integer count);
int tpl_regex_search(Render *r, const Node *n, int s, int pat, int icase, int ml, int anchored,
                     int push);
__attribute__((format(printf, 3, 4)))
int tpl_undefined(Render *r, size_t pos, const char *fmt, ...);

#endif
