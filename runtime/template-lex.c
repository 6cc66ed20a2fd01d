/*
 * template-lex.c: the lexer of the template family (inside {{ }} and
 * {% %}): names, Python's number forms and string escapes, operators, and
 * the tag ends, which do not count inside open brackets as in Jinja.
 */
#include "template-internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tpl_at_lit(const Ctx *c, size_t at, const char *lit)
{
    size_t n = strlen(lit);
    return at <= c->len && c->len - at >= n && memcmp(c->src + at, lit, n) == 0;
}

/* Digits of `base` with single underscores between them (Python 3.6+,
 * Jinja 3): returns the end, or `at` when no digit is there. */
static size_t scan_digits(const Ctx *c, size_t at, int base)
{
    size_t e = at;
    for (;;) {
        size_t k = e;
        if (k > at && k < c->len && c->src[k] == '_')
            k++;
        if (k >= c->len)
            break;
        char ch = c->src[k];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : 99;
        if (d >= base)
            break;
        e = k + 1;
    }
    return e;
}

static void lex_number(Parser *p, Tok *t, size_t at)
{
    const Ctx *c = &p->c;
    const char *s = c->src;
    size_t e;
    int base = 10;
    if (s[at] == '0' && at + 1 < c->len && strchr("xXoObB", s[at + 1])) {
        char k = (char)(s[at + 1] | 0x20);
        base = k == 'x' ? 16 : k == 'o' ? 8 : 2;
        size_t from = at + 2;
        if (from < c->len && s[from] == '_')
            from++; /* 0x_ff is valid Python */
        e = scan_digits(c, from, base);
        if (e == from)
            tpl_fail(c, at, "invalid %s literal", base == 16 ? "hexadecimal" : base == 8 ? "octal"
                                                                           : "binary");
        at = from;
    } else {
        e = scan_digits(c, at, 10);
        /* Jinja's float: not right after a '.', so a.0.0 is two subscripts */
        int after_dot = at > 0 && s[at - 1] == '.';
        int isfloat = 0;
        size_t x = e;
        if (!after_dot && x + 1 < c->len && s[x] == '.' && tpl_is_digit(s[x + 1])) {
            x = scan_digits(c, x + 1, 10);
            isfloat = 1;
        }
        if (!after_dot && x < c->len && (s[x] == 'e' || s[x] == 'E')) {
            size_t y = x + 1;
            if (y < c->len && (s[y] == '+' || s[y] == '-'))
                y++;
            size_t z = scan_digits(c, y, 10);
            if (z > y) {
                x = z;
                isfloat = 1;
            }
        }
        if (isfloat) {
            char buf[80];
            size_t n = 0;
            for (size_t k = at; k < x; k++) {
                if (s[k] == '_')
                    continue;
                if (n + 1 >= sizeof buf)
                    tpl_fail(c, at, "number literal too long");
                buf[n++] = s[k];
            }
            buf[n] = '\0';
            t->type = T_FLOAT;
            t->f = strtod(buf, NULL);
            t->end = x;
            return;
        }
        if (s[at] == '0')
            for (size_t k = at; k < e; k++)
                if (s[k] != '0' && s[k] != '_')
                    tpl_fail(c, at, "leading zeros in decimal integer literals are not "
                                    "permitted; use 0o for octal");
    }
    lua_Integer v = 0;
    for (size_t k = at; k < e; k++) {
        if (s[k] == '_')
            continue;
        char ch = (char)(s[k] | 0x20);
        int d = ch <= '9' ? s[k] - '0' : ch - 'a' + 10;
        if (v > (LUA_MAXINTEGER - d) / base)
            tpl_fail(c, t->pos, "integer literal too large");
        v = v * base + d;
    }
    t->end = e;
    t->type = T_INT;
    t->i = v;
}

static size_t put_utf8(char *d, unsigned long cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static unsigned long hex_escape(const Ctx *c, size_t k, size_t end, int digits, size_t at)
{
    unsigned long v = 0;
    for (int j = 0; j < digits; j++) {
        char ch = k + (size_t)j < end ? c->src[k + (size_t)j] : 0;
        int d = ch >= '0' && ch <= '9' ? ch - '0' : (ch | 0x20) >= 'a' && (ch | 0x20) <= 'f'
              ? (ch | 0x20) - 'a' + 10 : -1;
        if (d < 0)
            tpl_fail(c, at, "truncated \\%c escape in string literal (%d hex digits expected)",
                     digits == 2 ? 'x' : digits == 4 ? 'u' : 'U', digits);
        v = v * 16 + (unsigned long)d;
    }
    return v;
}

/* Python's string escapes, as Jinja decodes literals (unicode-escape):
 * \\ \' \" \a \b \f \n \r \t \v \ooo \xhh \uhhhh \Uhhhhhhhh \N{name} and
 * backslash-newline; any other backslash stays. */
static void lex_string(Parser *p, Tok *t, size_t at)
{
    const Ctx *c = &p->c;
    const char *s = c->src;
    char q = s[at];
    size_t e = at + 1;
    int escapes = 0;
    while (e < c->len && s[e] != q) {
        if (s[e] == '\\' || s[e] == '\r') {
            escapes = 1;
            if (s[e] == '\\')
                e++;
        }
        e++;
    }
    if (e >= c->len)
        tpl_fail(c, at, "unterminated string literal");
    t->type = T_STR;
    t->end = e + 1;
    if (!escapes) {
        t->s = s + at + 1;
        t->len = e - at - 1;
        return;
    }
    /* every escape decodes to no more bytes than its source (\N{...} too:
     * the shortest name is 2 letters, the longest UTF-8 4 bytes) */
    char *d = tpl_arena_alloc(c->L, c->st, e - at + 4);
    size_t n = 0;
    for (size_t k = at + 1; k < e; k++) {
        if (s[k] == '\r') { /* Jinja normalizes newlines inside literals too */
            d[n++] = '\n';
            if (k + 1 < e && s[k + 1] == '\n')
                k++;
            continue;
        }
        if (s[k] != '\\') {
            d[n++] = s[k];
            continue;
        }
        size_t esc = k;
        char x = s[++k];
        unsigned long cp;
        switch (x) {
        case 'n': d[n++] = '\n'; break;
        case 't': d[n++] = '\t'; break;
        case 'r': d[n++] = '\r'; break;
        case 'a': d[n++] = '\a'; break;
        case 'b': d[n++] = '\b'; break;
        case 'f': d[n++] = '\f'; break;
        case 'v': d[n++] = '\v'; break;
        case '\n': break;
        case '\\': case '\'': case '"': d[n++] = x; break;
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
            cp = 0;
            for (int j = 0; j < 3 && k < e && s[k] >= '0' && s[k] <= '7'; j++, k++)
                cp = cp * 8 + (unsigned long)(s[k] - '0');
            k--;
            n += put_utf8(d + n, cp);
            break;
        case 'x': case 'u': case 'U': {
            int digits = x == 'x' ? 2 : x == 'u' ? 4 : 8;
            cp = hex_escape(c, k + 1, e, digits, esc);
            k += (size_t)digits;
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                tpl_fail(c, esc, "\\%c escape is not a Unicode scalar value", x);
            n += put_utf8(d + n, cp);
            break;
        }
        case 'N': {
            size_t b = k + 1, m = b + 1;
            while (m < e && s[m] != '}')
                m++;
            if (b >= e || s[b] != '{' || m >= e || m - b - 1 == 0 || m - b - 1 > 100)
                tpl_fail(c, esc, "malformed \\N character escape");
            char name[104];
            memcpy(name, s + b + 1, m - b - 1);
            name[m - b - 1] = '\0';
            long u = tpl_unicode_lookup(name);
            if (u < 0)
                tpl_fail(c, esc, "unknown Unicode character name '%s'", name);
            n += put_utf8(d + n, (unsigned long)u);
            k = m;
            break;
        }
        default: d[n++] = '\\'; d[n++] = x; break; /* Python keeps unknown escapes */
        }
    }
    t->s = d;
    t->len = n;
}

Tok tpl_lex(Parser *p, size_t at)
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
    /* as in Jinja's lexer, no tag ends inside open brackets: {{ {'a': 1}}} */
    if (p->balance == 0 && (tpl_at_lit(c, at, "-}}") || tpl_at_lit(c, at, "-%}") ||
                            tpl_at_lit(c, at, "+%}"))) {
        t.type = s[at + 1] == '}' ? T_VAR_END : T_BLOCK_END;
        t.mod = ch;
        t.end = at + 3;
    } else if (p->balance == 0 && (tpl_at_lit(c, at, "}}") || tpl_at_lit(c, at, "%}"))) {
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
    } else if (tpl_at_lit(c, at, "==") || tpl_at_lit(c, at, "!=") || tpl_at_lit(c, at, "<=") ||
               tpl_at_lit(c, at, ">=")) {
        t.type = ch == '=' ? T_EQ : ch == '!' ? T_NE : ch == '<' ? T_LE : T_GE;
        t.end = at + 2;
    } else if (tpl_at_lit(c, at, "//") || tpl_at_lit(c, at, "**")) {
        t.type = ch == '/' ? T_FLOORDIV : T_POW;
        t.end = at + 2;
    } else if (ch && strchr(".[](){}:,|<>~=-+*/%", ch)) {
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
    int ty = p->tok.type;
    if (ty == '(' || ty == '[' || ty == '{')
        p->balance++;
    else if ((ty == ')' || ty == ']' || ty == '}') && p->balance > 0)
        p->balance--;
    p->prev_end = p->tok.end;
    p->tok = tpl_lex(p, p->tok.end);
}

int tpl_tok_is(const Tok *t, const char *name)
{
    return t->type == T_NAME && t->len == strlen(name) && memcmp(t->s, name, t->len) == 0;
}

__attribute__((noreturn))
void tpl_unexpected(Parser *p, const char *expected)
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
