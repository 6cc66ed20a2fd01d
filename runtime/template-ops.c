/*
 * template-ops.c: Python's operators on the template family's values:
 * + - * / // % ** with Python's results (true division, floored division
 * and modulo, integral powers, string and list repetition), and slices.
 */
#include "template-internal.h"

#include <math.h>
#include <string.h>

/* Python's slice bounds for a length, start/stop/step given or not */
static lua_Integer clamp(lua_Integer v, lua_Integer len, int neg_step)
{
    if (v < 0)
        v += len;
    if (v < 0)
        return neg_step ? -1 : 0;
    if (v >= len)
        return neg_step ? len - 1 : len;
    return v;
}

/* obj[a:b:c] on a list or a string (by character) */
int tpl_slice(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    lua_Integer bound[3] = {0, 0, 1};
    int given[3] = {0, 0, 0};
    tpl_eval_strict(r, n->a);
    int obj = lua_gettop(L), str = lua_type(L, obj) == LUA_TSTRING;
    for (int k = 0; k < 3; k++) {
        const Node *x = n->argv[k];
        if (!x)
            continue;
        tpl_eval_strict(r, x);
        if (tpl_is_none(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        int isint;
        bound[k] = lua_tointegerx(L, -1, &isint);
        if (!isint)
            tpl_fail(&r->c, x->start, "slice indices must be integers, got %s", tpl_a_type(L, -1));
        given[k] = 1;
        lua_pop(L, 1);
    }
    if (bound[2] == 0)
        tpl_fail(&r->c, n->pos, "slice step cannot be zero");
    if (str)
        tpl_utf8_chars(r, obj, n->a);
    else if (!tpl_is_list(L, obj)) {
        char s[100];
        tpl_fail(&r->c, n->pos, "cannot slice %s (%s)", tpl_src_of(r, n->a, s, sizeof s),
                 tpl_a_type(L, obj));
    }
    lua_Integer len = (lua_Integer)lua_rawlen(L, obj), step = bound[2], out = 0;
    int neg = step < 0;
    lua_Integer start = given[0] ? clamp(bound[0], len, neg) : neg ? len - 1 : 0;
    lua_Integer stop = given[1] ? clamp(bound[1], len, neg) : neg ? -1 : len;
    lua_newtable(L);
    for (lua_Integer i = start; neg ? i > stop : i < stop; i += step) {
        if (++r->iterations > MAX_ITERATIONS)
            tpl_fail(&r->c, n->pos, "more than %ld loop iterations", MAX_ITERATIONS);
        lua_rawgeti(L, obj, i + 1);
        lua_rawseti(L, -2, ++out);
        if ((step > 0 && i > LUA_MAXINTEGER - step) || (step < 0 && i < LUA_MININTEGER - step))
            break;
    }
    if (str) {
        luaL_Buffer b;
        lua_replace(L, obj);
        luaL_buffinit(L, &b);
        for (lua_Integer k = 1; k <= out; k++) {
            lua_rawgeti(L, obj, k);
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
    }
    lua_replace(L, obj);
    lua_settop(L, obj);
    return 1;
}

__attribute__((noreturn))
static void bad_operands(Render *r, const Node *n, const char *op)
{
    lua_State *L = r->c.L;
    tpl_fail(&r->c, n->pos, "unsupported operand types for %s: %s and %s", op,
             tpl_a_type(L, -2), tpl_a_type(L, -1));
}

/* list (or string) at -2 repeated by the count at -1 or the reverse */
static void repeat(Render *r, const Node *n, int seq, lua_Integer times)
{
    lua_State *L = r->c.L;
    if (times < 0)
        times = 0;
    if (lua_type(L, seq) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, seq, &len);
        if (len && (size_t)times > MAX_OUTPUT / len)
            tpl_fail(&r->c, n->pos, "string longer than %zu MiB", MAX_OUTPUT >> 20);
        tpl_add_work(r, n, len * (size_t)times);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (lua_Integer k = 0; k < times; k++)
            luaL_addlstring(&b, s, len);
        luaL_pushresult(&b);
        return;
    }
    lua_Integer len = (lua_Integer)lua_rawlen(L, seq);
    if (len && times > (MAX_ITERATIONS - r->iterations) / len)
        tpl_fail(&r->c, n->pos, "list longer than %ld items", MAX_ITERATIONS);
    r->iterations += len * times;
    lua_createtable(L, (int)(len * times), 0);
    for (lua_Integer t = 0; t < times; t++)
        for (lua_Integer k = 1; k <= len; k++) {
            lua_rawgeti(L, seq, k);
            lua_rawseti(L, -2, t * len + k);
        }
}

/* operands at -2 and -1: replace both with the result (Python's rules:
 * / always gives a float, // and % floor, ** of integers stays integral) */
void tpl_arith(Render *r, const Node *n)
{
    static const char *const names[] = {"+", "-", "*", "/", "//", "%", "**"};
    lua_State *L = r->c.L;
    int top = lua_gettop(L), ia, ib;
    lua_Integer xa, xb;
    double da, db;
    int na = tpl_as_num(L, -2, &ia, &xa, &da), nb = tpl_as_num(L, -1, &ib, &xb, &db);
    if (!na || !nb) {
        int ta = lua_type(L, -2), tb = lua_type(L, -1);
        if (n->op == OP_ADD && ta == LUA_TSTRING && tb == LUA_TSTRING) {
            size_t la = lua_rawlen(L, -2), lb = lua_rawlen(L, -1);
            tpl_add_work(r, n, la + lb);
            lua_concat(L, 2);
            return;
        }
        if (n->op == OP_ADD && tpl_is_list(L, -2) && tpl_is_list(L, -1) && ta == LUA_TTABLE) {
            lua_Integer la = (lua_Integer)lua_rawlen(L, -2), lb = (lua_Integer)lua_rawlen(L, -1);
            r->iterations += la + lb;
            if (r->iterations > MAX_ITERATIONS)
                tpl_fail(&r->c, n->pos, "list longer than %ld items", MAX_ITERATIONS);
            lua_createtable(L, (int)(la + lb), 0);
            for (lua_Integer k = 1; k <= la; k++) {
                lua_rawgeti(L, top - 1, k);
                lua_rawseti(L, -2, k);
            }
            for (lua_Integer k = 1; k <= lb; k++) {
                lua_rawgeti(L, top, k);
                lua_rawseti(L, -2, la + k);
            }
            lua_replace(L, top - 1);
            lua_settop(L, top - 1);
            return;
        }
        if (n->op == OP_MUL && (ta == LUA_TSTRING || tpl_is_list(L, -2)) && nb && ib) {
            repeat(r, n, top - 1, xb);
            lua_replace(L, top - 1);
            lua_settop(L, top - 1);
            return;
        }
        if (n->op == OP_MUL && (tb == LUA_TSTRING || tpl_is_list(L, -1)) && na && ia) {
            repeat(r, n, top, xa);
            lua_replace(L, top - 1);
            lua_settop(L, top - 1);
            return;
        }
        if (n->op == OP_MOD && ta == LUA_TSTRING)
            tpl_fail(&r->c, n->pos, "string formatting with %% is not supported; use ~ or join");
        bad_operands(r, n, names[n->op]);
    }
    lua_pop(L, 2);
    int both = ia && ib;
    switch (n->op) {
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
        if (both) {
            lua_Integer v;
            int ovf = n->op == OP_ADD ? __builtin_add_overflow(xa, xb, &v)
                    : n->op == OP_SUB ? __builtin_sub_overflow(xa, xb, &v)
                    : __builtin_mul_overflow(xa, xb, &v);
            if (ovf)
                tpl_fail(&r->c, n->pos, "integer overflow in %s", names[n->op]);
            lua_pushinteger(L, v);
        } else {
            lua_pushnumber(L, n->op == OP_ADD ? da + db : n->op == OP_SUB ? da - db : da * db);
        }
        return;
    case OP_DIV:
        if (db == 0)
            tpl_fail(&r->c, n->pos, "division by zero");
        lua_pushnumber(L, da / db);
        return;
    case OP_FLOORDIV:
    case OP_MOD:
        if (both ? xb == 0 : db == 0)
            tpl_fail(&r->c, n->pos, "%s by zero", n->op == OP_MOD ? "modulo" : "division");
        if (both) {
            if (xb == -1) { /* LUA_MININTEGER // -1 overflows */
                if (n->op == OP_FLOORDIV && xa == LUA_MININTEGER)
                    tpl_fail(&r->c, n->pos, "integer overflow in //");
                lua_pushinteger(L, n->op == OP_MOD ? 0 : -xa);
                return;
            }
            lua_Integer q = xa / xb, m = xa % xb;
            if (m != 0 && ((m < 0) != (xb < 0))) {
                q--;
                m += xb;
            }
            lua_pushinteger(L, n->op == OP_MOD ? m : q);
        } else {
            /* CPython's float divmod */
            double m = fmod(da, db), div = (da - m) / db;
            if (m != 0 && ((db < 0) != (m < 0))) {
                m += db;
                div -= 1.0;
            }
            double fl = floor(div);
            if (div - fl > 0.5)
                fl += 1.0;
            if (m == 0)
                m = copysign(0.0, db);
            lua_pushnumber(L, n->op == OP_MOD ? m : fl);
        }
        return;
    default: /* OP_POW */
        if (both && xb >= 0) {
            lua_Integer v = 1, base = xa, e = xb;
            while (e > 0) {
                if ((e & 1) && __builtin_mul_overflow(v, base, &v))
                    tpl_fail(&r->c, n->pos, "integer overflow in **");
                e >>= 1;
                if (e > 0 && __builtin_mul_overflow(base, base, &base))
                    tpl_fail(&r->c, n->pos, "integer overflow in **");
            }
            lua_pushinteger(L, v);
            return;
        }
        if (da == 0 && db < 0)
            tpl_fail(&r->c, n->pos, "0 cannot be raised to a negative power");
        if (da < 0 && db != floor(db))
            tpl_fail(&r->c, n->pos, "a negative number to a fractional power is complex");
        lua_pushnumber(L, pow(da, db));
        return;
    }
}
