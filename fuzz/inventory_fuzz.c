/*
 * inventory_fuzz.c: libFuzzer target for the INI and YAML inventory
 * readers, lua/etcdrun/inventory.lua (Lua, with runtime/yaml.c linked in
 * for libyaml).
 *
 * Each input is given to inventory.parse_ini(input, "fuzz") and then to
 * inventory.parse_yaml(input, "fuzz"), with the same contract and checks.
 * The contract: it returns an inventory, or nil, "fuzz:<line>: ...",
 * "EINVENTORY". Any Lua error raised instead is a parser bug and traps, as
 * does an inventory that breaks the invariants the checker below asserts
 * (hosts unique and in order, connection fields normalised, groups
 * consistent, a pattern taken from the input's first line (less a leading
 * comment marker) answered without
 * raising). parse_ini rather than parse: the Lua format runs the input as
 * code, where string.find backtracking inside C escapes the count hook.
 *
 * The module is found through package.path "lua/?.lua": run the fuzzer from
 * the repository root (as `make fuzz` does). One lua_State serves every
 * input; a count hook (INSTRUCTION_LIMIT) and a counting allocator
 * (MEMORY_LIMIT) bound pathological inputs (huge host ranges), and hitting
 * either is not a failure.
 *
 * libFuzzer's own coverage sees only this file (liblua is not instrumented),
 * so a line hook feeds it the Lua side: each (previous line, line, source)
 * step bumps a counter in libFuzzer's extra-counters section.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifndef INVENTORY_LUA_PATH
#define INVENTORY_LUA_PATH "lua/?.lua"
#endif

#define HOOK_EVERY 1000                 /* instructions per hook call */
#define INSTRUCTION_LIMIT 20000000L     /* per input */
#define MEMORY_LIMIT ((size_t)256 << 20)
#define NCOUNTERS (1u << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static int parse_ref = LUA_NOREF, yaml_ref = LUA_NOREF, check_ref = LUA_NOREF;

int luaopen_etcdrun_core_yaml(lua_State *L);
static size_t mem_used;
static long steps;
static int limit_hit;
static unsigned prev_step;

__attribute__((used, section("__libfuzzer_extra_counters")))
static uint8_t lua_coverage[NCOUNTERS];

/* Invariants of a parsed inventory: (inventory, input) -> nothing or raises. */
static const char CHECK[] =
    "local inv, input = ...\n"
    "local all, w = inv:hosts('all')\n"
    "assert(all and (w == nil or type(w) == 'string'), 'hosts(all) failed')\n"
    "local seen = {}\n"
    "for i, h in ipairs(all) do\n"
    "  assert(h.index == i and not seen[h.name], 'order or duplicate: ' .. h.name)\n"
    "  seen[h.name] = true\n"
    "  assert(inv:host(h.name) == h, 'inv:host')\n"
    "  assert(type(h.address) == 'string' and h.address ~= '', 'address')\n"
    "  assert(h.port == nil or math.type(h.port) == 'integer' and h.port >= 1\n"
    "         and h.port <= 65535, 'port')\n"
    "  assert(h.connection == 'ssh' or h.connection == 'local', 'connection')\n"
    "  assert(type(h.become) == 'boolean', 'become')\n"
    "  assert(type(h.vars) == 'table' and type(h.groups) == 'table', 'vars/groups')\n"
    "end\n"
    "for _, g in ipairs(inv:groups()) do\n"
    "  assert(inv.groups[g.name] == g, 'groups map')\n"
    "  for _, n in ipairs(g.hosts) do assert(seen[n], 'group host ' .. n) end\n"
    "end\n"
    "assert(#inv.groups.all.hosts == #all, 'all')\n"
    "local p = input:match('^[#;]?([^\\n]*)')\n"
    "local stars = select(2, p:gsub('[*?]', ''))\n"
    "if p ~= '' and #p <= 40 and not p:find('~', 1, true) and stars <= 2 then\n"
    "  local list, err = inv:hosts(p, p)\n"
    "  assert(list or type(err) == 'string', 'pattern result')\n"
    "  for i = 2, #(list or {}) do\n"
    "    assert(list[i - 1].index < list[i].index, 'pattern order')\n"
    "  end\n"
    "end\n";

/* Counts live bytes and refuses to grow past MEMORY_LIMIT (Lua then raises
   "not enough memory", which the harness accepts). */
static void *fuzz_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    size_t old = ptr ? osize : 0;
    (void)ud;
    if (nsize == 0) {
        free(ptr);
        mem_used -= old;
        return NULL;
    }
    if (nsize > old && mem_used + (nsize - old) > MEMORY_LIMIT) {
        limit_hit = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p)
        mem_used = mem_used - old + nsize;
    return p;
}

static void hook(lua_State *l, lua_Debug *ar)
{
    if (ar->event == LUA_HOOKLINE) {
        /* The source string of a chunk is interned: its address names the file. */
        lua_getinfo(l, "S", ar);
        unsigned step = (unsigned)ar->currentline * 2654435761u
                        ^ (unsigned)(uintptr_t)ar->source;
        lua_coverage[(step ^ (prev_step >> 1)) & (NCOUNTERS - 1)]++;
        prev_step = step;
        return;
    }
    if (++steps > INSTRUCTION_LIMIT / HOOK_EVERY) {
        limit_hit = 1;
        luaL_error(l, "fuzz: instruction limit reached");
    }
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "inventory_fuzz: %s: %s\n", what, msg ? msg : "(no message)");
    __builtin_trap();
}

static void setup(void)
{
    L = lua_newstate(fuzz_alloc, NULL);
    if (!L)
        die("setup", "lua_newstate failed");
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushliteral(L, INVENTORY_LUA_PATH);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    luaL_requiref(L, "etcdrun.core.yaml", luaopen_etcdrun_core_yaml, 0);
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "etcdrun.inventory");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        die("require etcdrun.inventory (run from the repository root)", lua_tostring(L, -1));
    lua_getfield(L, -1, "parse_ini");
    if (!lua_isfunction(L, -1))
        die("setup", "inventory.parse_ini is not a function");
    parse_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "parse_yaml");
    if (!lua_isfunction(L, -1))
        die("setup", "inventory.parse_yaml is not a function");
    yaml_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    if (luaL_loadbuffer(L, CHECK, sizeof CHECK - 1, "=check") != LUA_OK)
        die("checker", lua_tostring(L, -1));
    check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_sethook(L, hook, LUA_MASKCOUNT | LUA_MASKLINE, HOOK_EVERY);
}

/* "fuzz:<digits>: " */
static int well_formed(const char *msg)
{
    if (!msg || strncmp(msg, "fuzz:", 5) != 0)
        return 0;
    msg += 5;
    if (*msg < '0' || *msg > '9')
        return 0;
    while (*msg >= '0' && *msg <= '9')
        msg++;
    return msg[0] == ':' && msg[1] == ' ';
}

/* One reader (registry ref) on the input: its contract and the invariants. */
static void one(int ref, const char *what, const uint8_t *data, size_t size)
{
    steps = 0;
    limit_hit = 0;
    prev_step = 0;
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushlstring(L, (const char *)data, size);
    lua_pushliteral(L, "fuzz");
    int rc = lua_pcall(L, 2, 3, 0);
    if (rc != LUA_OK) {
        if (!limit_hit)
            die(what, lua_tostring(L, -1));
    } else if (lua_isnil(L, 1)) {
        const char *msg = lua_tostring(L, 2), *code = lua_tostring(L, 3);
        if (!well_formed(msg) || !code || strcmp(code, "EINVENTORY") != 0)
            die("bad error", msg);
    } else if (lua_istable(L, 1)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
        lua_pushvalue(L, 1);
        lua_pushlstring(L, (const char *)data, size);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK && !limit_hit)
            die("invariant broken", lua_tostring(L, -1));
    } else {
        die(what, luaL_typename(L, 1));
    }
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L)
        setup();
    one(parse_ref, "parse_ini raised", data, size);
    one(yaml_ref, "parse_yaml raised", data, size);
    return 0;
}
