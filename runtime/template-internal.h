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

enum { OP_EQ, OP_NE, OP_LT, OP_GT, OP_LE, OP_GE };

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

struct Filter {
    const char *name;
    int id, required;
    const char *params[MAX_ARGS];
};
extern const struct Filter filters[];
extern const size_t n_filters;

void *tpl_arena_alloc(lua_State *L, State *st, size_t n);
const char *tpl_excerpt(char *buf, size_t size, const char *s, size_t len);
__attribute__((noreturn, format(printf, 3, 4)))
void tpl_fail(const Ctx *c, size_t pos, const char *fmt, ...);
int tpl_is_alpha(char ch);
int tpl_is_digit(char ch);
int tpl_is_ws(char ch);
void tpl_line_col(const Ctx *c, size_t pos, int *line, int *col);
void tpl_next(Parser *p);
Node *tpl_parse_body(Parser *p, const char *const *stops, const Node *opener, int *which);
const char *tpl_a_type(lua_State *L, int idx);
void tpl_as_list(Render *r, int idx, const Node *n);
void tpl_eval_strict(Render *r, const Node *n);
int tpl_missing(Render *r, const Node *n, const char *objtype, lua_Integer len);
const char *tpl_src_of(const Render *r, const Node *n, char *buf, size_t size);
void tpl_to_str(Render *r, int idx, const Node *n);
int tpl_truthy(Render *r, int idx, const Node *n);
__attribute__((format(printf, 3, 4)))
int tpl_undefined(Render *r, size_t pos, const char *fmt, ...);

#endif
