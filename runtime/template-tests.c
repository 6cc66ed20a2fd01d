/*
 * template-tests.c: the names the parser knows (the filters with their
 * parameters, the tests) and the tests themselves (`x is name`).
 */
#include "template-internal.h"

#include <string.h>

#define eval tpl_eval

#define P0 {NULL, NULL, NULL, NULL}
const struct Filter filters[] = {
    {"default", F_DEFAULT, 0, {"default_value", "boolean", NULL, NULL}},
    {"d", F_DEFAULT, 0, {"default_value", "boolean", NULL, NULL}},
    {"join", F_JOIN, 0, {"d", "attribute", NULL, NULL}},
    {"upper", F_UPPER, 0, P0},
    {"lower", F_LOWER, 0, P0},
    {"capitalize", F_CAPITALIZE, 0, P0},
    {"title", F_TITLE, 0, P0},
    {"indent", F_INDENT, 0, {"width", "first", "blank", NULL}},
    {"length", F_LENGTH, 0, P0},
    {"count", F_LENGTH, 0, P0},
    {"string", F_STRING, 0, P0},
    {"trim", F_TRIM, 0, {"chars", NULL, NULL, NULL}},
    {"quote", F_QUOTE, 0, P0},
    {"replace", F_REPLACE, 2, {"old", "new", "count", NULL}},
    {"dictsort", F_DICTSORT, 0, {"case_sensitive", "by", "reverse", NULL}},
    {"list", F_LIST, 0, P0},
    {"reverse", F_REVERSE, 0, P0},
    {"first", F_FIRST, 0, P0},
    {"last", F_LAST, 0, P0},
    {"int", F_INT, 0, {"default", "base", NULL, NULL}},
    {"float", F_FLOAT, 0, {"default", NULL, NULL, NULL}},
    {"abs", F_ABS, 0, P0},
    {"bool", F_BOOL, 0, P0},
    {"sort", F_SORT, 0, {"reverse", "case_sensitive", "attribute", NULL}},
    {"unique", F_UNIQUE, 0, {"case_sensitive", "attribute", NULL, NULL}},
    {"min", F_MIN, 0, {"case_sensitive", "attribute", NULL, NULL}},
    {"max", F_MAX, 0, {"case_sensitive", "attribute", NULL, NULL}},
    {"sum", F_SUM, 0, {"attribute", "start", NULL, NULL}},
    {"map", F_MAP, 0, {"attribute", "default", NULL, NULL}},
    {"select", F_SELECT, 0, P0},
    {"reject", F_REJECT, 0, P0},
    {"selectattr", F_SELECTATTR, 0, P0},
    {"rejectattr", F_REJECTATTR, 0, P0},
    {"items", F_ITEMS, 0, P0},
    {"dict2items", F_DICT2ITEMS, 0, {"key_name", "value_name", NULL, NULL}},
    {"to_json", F_TO_JSON, 0, {"indent", "sort_keys", NULL, NULL}},
    {"to_nice_json", F_TO_NICE_JSON, 0, {"indent", "sort_keys", NULL, NULL}},
    {"to_yaml", F_TO_YAML, 0, P0},
    {"b64encode", F_B64ENCODE, 0, P0},
    {"b64decode", F_B64DECODE, 0, P0},
    {"regex_replace", F_REGEX_REPLACE, 1, {"pattern", "replacement", "ignorecase", "multiline"}},
    {"regex_search", F_REGEX_SEARCH, 1, {"pattern", "ignorecase", "multiline", NULL}},
    {"round", F_ROUND, 0, {"precision", "method", NULL, NULL}},
    {"center", F_CENTER, 0, {"width", NULL, NULL, NULL}},
    {"wordcount", F_WORDCOUNT, 0, P0},
    {"basename", F_BASENAME, 0, P0},
    {"dirname", F_DIRNAME, 0, P0},
    {"mandatory", F_MANDATORY, 0, {"msg", NULL, NULL, NULL}},
};

const struct Test tests[] = {
    {"defined", T_DEFINED, 0}, {"undefined", T_UNDEFINED, 0}, {"none", T_NONE, 0},
    {"boolean", T_BOOLEAN, 0}, {"true", T_TRUE, 0}, {"false", T_FALSE, 0},
    {"integer", T_INTEGER, 0}, {"float", T_FLOATT, 0}, {"number", T_NUMBER, 0},
    {"string", T_STRING, 0}, {"mapping", T_MAPPING, 0}, {"sequence", T_SEQUENCE, 0},
    {"iterable", T_ITERABLE, 0}, {"lower", T_LOWER, 0}, {"upper", T_UPPER, 0},
    {"even", T_EVEN, 0}, {"odd", T_ODD, 0}, {"divisibleby", T_DIVISIBLEBY, 1},
    {"eq", T_EQTEST, 1}, {"equalto", T_EQTEST, 1}, {"ne", T_NETEST, 1},
    {"lt", T_LTTEST, 1}, {"lessthan", T_LTTEST, 1}, {"le", T_LETEST, 1},
    {"gt", T_GTTEST, 1}, {"greaterthan", T_GTTEST, 1}, {"ge", T_GETEST, 1},
    {"in", T_INTEST, 1}, {"sameas", T_SAMEAS, 1}, {"match", T_MATCH, 1},
    {"search", T_SEARCH, 1}, {"regex", T_REGEX, 1}, {"truthy", T_TRUTHY, 0},
    {"falsy", T_FALSY, 0}, {"subset", T_SUBSET, 1}, {"superset", T_SUPERSET, 1},
    {"contains", T_CONTAINS, 1},
};
const size_t n_tests = sizeof tests / sizeof tests[0];

const struct Filter *tpl_find_filter(const char *s, size_t len)
{
    for (size_t k = 0; k < n_filters; k++)
        if (strlen(filters[k].name) == len && memcmp(filters[k].name, s, len) == 0)
            return &filters[k];
    return NULL;
}

const struct Test *tpl_find_test(const char *s, size_t len)
{
    for (size_t k = 0; k < n_tests; k++)
        if (strlen(tests[k].name) == len && memcmp(tests[k].name, s, len) == 0)
            return &tests[k];
    return NULL;
}

const size_t n_filters = sizeof filters / sizeof filters[0];

/* ---- tests ---- */

int tpl_eval_test(Render *r, const Node *n)
{
    lua_State *L = r->c.L;
    int top = lua_gettop(L), res = 0;
    luaL_checkstack(L, 10, "template test");
    if (n->op == T_DEFINED || n->op == T_UNDEFINED) {
        int defined = eval(r, n->a);
        lua_settop(L, top);
        lua_pushboolean(L, (defined == (n->op == T_DEFINED)) != n->neg);
        return 1;
    }
    tpl_eval_strict(r, n->a);
    int v = top + 1, t = lua_type(L, v);
    if (n->argv[0])
        tpl_eval_strict(r, n->argv[0]);
    int a = v + 1;
    switch (n->op) {
    case T_NONE: res = tpl_is_none(L, v); break;
    case T_BOOLEAN: res = t == LUA_TBOOLEAN; break;
    case T_TRUE: res = t == LUA_TBOOLEAN && lua_toboolean(L, v); break;
    case T_FALSE: res = t == LUA_TBOOLEAN && !lua_toboolean(L, v); break;
    case T_INTEGER: res = t == LUA_TNUMBER && lua_isinteger(L, v); break;
    case T_FLOATT: res = t == LUA_TNUMBER && !lua_isinteger(L, v); break;
    case T_NUMBER: res = t == LUA_TNUMBER || t == LUA_TBOOLEAN; break;
    case T_STRING: res = t == LUA_TSTRING; break;
    case T_MAPPING: res = t == LUA_TTABLE && !tpl_is_list(L, v); break;
    case T_SEQUENCE:
    case T_ITERABLE: res = t == LUA_TTABLE || t == LUA_TSTRING; break;
    case T_LOWER:
    case T_UPPER: {
        /* Python's islower/isupper: some cased character, and mapping to
         * the case asked for changes nothing while the other case would */
        size_t len, ll, ul;
        tpl_to_str(r, v, n->a);
        const char *s = lua_tolstring(L, v, &len);
        tpl_push_case(r, n, s, len, 0);
        tpl_push_case(r, n, s, len, 1);
        const char *lo = lua_tolstring(L, -2, &ll), *up = lua_tolstring(L, -1, &ul);
        int is_lo = ll == len && memcmp(lo, s, len) == 0;
        int is_up = ul == len && memcmp(up, s, len) == 0;
        res = n->op == T_LOWER ? is_lo && !is_up : is_up && !is_lo;
        break;
    }
    case T_EVEN:
    case T_ODD:
    case T_DIVISIBLEBY: {
        Node m = *n;
        if (n->op == T_DIVISIBLEBY)
            lua_pushvalue(L, a);
        else
            lua_pushinteger(L, 2);
        lua_pushvalue(L, v);
        lua_insert(L, -2);
        m.op = OP_MOD;
        tpl_arith(r, &m);
        lua_pushinteger(L, n->op == T_ODD);
        res = tpl_py_eq(L, -2, -1, 0);
        break;
    }
    case T_EQTEST: res = tpl_py_eq(L, v, a, 0); break;
    case T_NETEST: res = !tpl_py_eq(L, v, a, 0); break;
    case T_LTTEST:
    case T_LETEST:
    case T_GTTEST:
    case T_GETEST: {
        int c;
        if (!tpl_py_cmp(r, n, v, a, &c))
            tpl_fail(&r->c, n->pos, "cannot compare %s with %s", tpl_a_type(L, v),
                     tpl_a_type(L, a));
        res = c != 2 && (n->op == T_LTTEST ? c < 0 : n->op == T_LETEST ? c <= 0
                         : n->op == T_GTTEST ? c > 0 : c >= 0);
        break;
    }
    case T_INTEST:
    case T_CONTAINS: {
        if (n->op == T_CONTAINS) {
            lua_pushvalue(L, a);
            lua_pushvalue(L, v);
        } else {
            lua_pushvalue(L, v);
            lua_pushvalue(L, a);
        }
        res = tpl_contains(r, n);
        break;
    }
    case T_SAMEAS:
        res = lua_type(L, v) == lua_type(L, a) && lua_rawequal(L, v, a) &&
              (t != LUA_TNUMBER || lua_isinteger(L, v) == lua_isinteger(L, a));
        break;
    case T_MATCH:
    case T_SEARCH:
    case T_REGEX:
        tpl_to_str(r, v, n->a);
        tpl_to_str(r, a, n->argv[0]);
        res = tpl_regex_search(r, n, v, a, 0, 0, n->op == T_MATCH, 0);
        break;
    case T_TRUTHY: res = tpl_truthy(r, v, n->a); break;
    case T_FALSY: res = !tpl_truthy(r, v, n->a); break;
    case T_SUBSET:
    case T_SUPERSET: {
        int small = n->op == T_SUBSET ? v : a, big = n->op == T_SUBSET ? a : v;
        tpl_need_list(r, n, small);
        tpl_need_list(r, n, big);
        lua_Integer ls = (lua_Integer)lua_rawlen(L, small);
        res = 1;
        for (lua_Integer k = 1; k <= ls && res; k++) {
            lua_rawgeti(L, small, k);
            lua_pushvalue(L, big);
            res = tpl_contains(r, n);
            lua_pop(L, 2);
        }
        break;
    }
    default:
        return luaL_error(L, "template: test %d not implemented", n->op);
    }
    lua_settop(L, top);
    lua_pushboolean(L, res != n->neg);
    return 1;
}
