/*
 * template_fuzz.c: libFuzzer target for runtime/template.c.
 *
 * Each input is a template rendered against a fixed variables table shaped
 * like Ansible's (hostvars, groups) plus values of every type a template can
 * meet, a function included (it must be refused, never called). Any outcome
 * is fine (a string, or nil + message + "ETEMPLATE") except a crash, a
 * sanitizer report, a leak, or a Lua error that is not the template's fault.
 * A fresh lua_State per input, closed after, so LeakSanitizer sees every
 * allocation the engine failed to free.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcdrun.h"

#include <lualib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char VARS[] =
    "local hv = {}\n"
    "local names = {'etcd1', 'etcd2', 'etcd3'}\n"
    "for i, h in ipairs(names) do\n"
    "  hv[h] = {ansible_facts = {hostname = h, eth1 = {ipv4 = {address = '10.0.0.' .. i}}}}\n"
    "end\n"
    "return {\n"
    "  inventory_hostname = 'etcd1', hostvars = hv, groups = {etcd = names, all = names},\n"
    "  list = {1, 2, 3}, words = {'a', 'B', 'c d', \"it's\"}, empty = {},\n"
    "  map = {b = 1, A = 2, c = {d = 'x'}, [1.5] = 'f', [7] = 'seven'},\n"
    "  text = 'line1\\nline2\\n\\nline4\\n', num = 42, float = 2.5, big = 1e300,\n"
    "  yes = true, no = false, zero = 0, nan = 0/0, inf = 1/0,\n"
    "  pairs = {{'k1', 'v1'}, {'k2', 'v2'}}, nested = {{1, 2}, {3, {4, 5}}},\n"
    "  holes = {1, nil, 3}, tkey = {[{}] = 1}, bkey = {[true] = 1},\n"
    "}\n";

/* Lua chunks cannot make functions without the base library's help, so the
 * function value is set from C. */
static int never_called(lua_State *L)
{
    (void)L;
    abort(); /* a template reached a Lua function: the sandbox is broken */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return 0;
    luaL_requiref(L, "_G", luaopen_base, 1); /* ipairs for VARS */
    lua_pop(L, 1);
    lua_pushcfunction(L, luaopen_etcdrun_core_template);
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "render");
    lua_pushlstring(L, (const char *)data, size);
    if (luaL_loadstring(L, VARS) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
        abort();
    lua_pushcfunction(L, never_called);
    lua_setfield(L, -2, "fn");
    lua_newtable(L);
    lua_pushliteral(L, "fuzz.j2");
    lua_setfield(L, -2, "name");
    if (lua_pcall(L, 3, 3, 0) != LUA_OK) {
        /* only resource exhaustion may raise; anything else is a bug */
        const char *msg = lua_tostring(L, -1);
        if (!msg || (!strstr(msg, "not enough memory") && !strstr(msg, "out of memory"))) {
            fprintf(stderr, "template.render raised: %s\n", msg ? msg : "(not a string)");
            abort();
        }
    } else if (lua_isnil(L, -3)) {
        const char *code = lua_tostring(L, -1);
        const char *msg = lua_tostring(L, -2);
        if (!code || strcmp(code, "ETEMPLATE") != 0 || !msg ||
            strncmp(msg, "template.render: fuzz.j2:", 25) != 0) {
            fprintf(stderr, "bad failure: %s %s\n", msg ? msg : "?", code ? code : "?");
            abort();
        }
    } else if (!lua_isstring(L, -3)) {
        abort();
    }
    lua_close(L);
    return 0;
}
