/*
 * util.c: the error and option helpers every primitive family shares
 * (declared in etcdrun.h). Not a Lua module of its own.
 */
#include "etcdrun.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>

#include <openssl/crypto.h>

static volatile sig_atomic_t interrupted;

int er_interrupted(void)
{
    return interrupted != 0;
}

void er_set_interrupted(int on)
{
    interrupted = on ? 1 : 0;
}

int er_fail(lua_State *L, const char *code, const char *fmt, ...)
{
    /* vsnprintf, not lua_pushvfstring: the full printf language (%zu, %.1f,
       %ld) that the format attribute lets the compiler check */
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, code);
    return 3;
}

const char *er_errno_code(int err)
{
    switch (err) {
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ENOSPC: return "ENOSPC";
    case EDQUOT: return "EDQUOT";
    case EROFS: return "EROFS";
    case EIO: return "EIO";
    case EINVAL: return "EINVAL";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EXDEV: return "EXDEV";
    case EBUSY: return "EBUSY";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EINTR: return "EINTR";
    case ENOMEM: return "ENOMEM";
    default: return "EIO";
    }
}

int er_fail_errno(lua_State *L, const char *op, const char *object, int err)
{
    return er_fail(L, er_errno_code(err), "%s: %s (%s)", op, strerror(err), object);
}

void er_check_options(lua_State *L, int idx, const char *fname, const char *const known[])
{
    if (lua_isnoneornil(L, idx))
        return;
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            luaL_error(L, "%s: option keys must be strings", fname);
        }
        const char *key = lua_tostring(L, -1);
        int found = 0;
        for (int i = 0; known[i]; i++) {
            if (strcmp(known[i], key) == 0) {
                found = 1;
                break;
            }
        }
        if (!found) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; known[i]; i++) {
                if (i)
                    luaL_addstring(&b, ", ");
                luaL_addstring(&b, known[i]);
            }
            luaL_pushresult(&b);
            luaL_error(L, "%s: unknown option '%s' (known: %s)", fname, key,
                       lua_tostring(L, -1));
        }
    }
}

/* Push t[key] for an options table at idx (nil when idx is not a table). */
static int push_opt(lua_State *L, int idx, const char *key)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, idx, key);
}

const char *er_opt_string(lua_State *L, int idx, const char *key, const char *def)
{
    idx = lua_absindex(L, idx);
    int t = push_opt(L, idx, key);
    const char *s = def;
    if (t == LUA_TSTRING)
        s = lua_tostring(L, -1); /* anchored in the options table */
    else if (t != LUA_TNIL)
        luaL_error(L, "option '%s' must be a string, got %s", key, lua_typename(L, t));
    lua_pop(L, 1);
    return s;
}

lua_Integer er_opt_integer(lua_State *L, int idx, const char *key, lua_Integer def)
{
    idx = lua_absindex(L, idx);
    int t = push_opt(L, idx, key);
    lua_Integer v = def;
    if (t != LUA_TNIL) {
        int isnum = 0;
        v = lua_tointegerx(L, -1, &isnum);
        if (!isnum)
            luaL_error(L, "option '%s' must be an integer, got %s", key,
                       t == LUA_TNUMBER ? "a fraction" : lua_typename(L, t));
    }
    lua_pop(L, 1);
    return v;
}

int er_opt_boolean(lua_State *L, int idx, const char *key, int def)
{
    idx = lua_absindex(L, idx);
    int t = push_opt(L, idx, key);
    int v = def;
    if (t == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL)
        luaL_error(L, "option '%s' must be a boolean, got %s", key, lua_typename(L, t));
    lua_pop(L, 1);
    return v;
}

static long long seconds_to_ms(lua_State *L, double s, const char *fname, const char *what)
{
    if (s != s || s < 0)
        luaL_error(L, "%s: %s must be a number of seconds >= 0 (math.huge for none), got %g",
                   fname, what, s);
    if (s >= ER_NO_TIMEOUT_S)
        return -1;
    return (long long)(s * 1000.0 + 0.5);
}

long long er_timeout_ms(lua_State *L, int idx, const char *fname, double def_s)
{
    if (lua_isnoneornil(L, idx))
        return def_s < 0 ? -1 : seconds_to_ms(L, def_s, fname, "timeout");
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L, "%s: timeout must be a number of seconds, got %s", fname,
                   luaL_typename(L, idx));
    return seconds_to_ms(L, (double)lua_tonumber(L, idx), fname, "timeout");
}

long long er_opt_timeout_ms(lua_State *L, int idx, const char *fname, const char *key,
                            double def_s)
{
    idx = lua_absindex(L, idx);
    int t = push_opt(L, idx, key);
    long long ms = def_s < 0 ? -1 : seconds_to_ms(L, def_s, fname, key);
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER)
            luaL_error(L, "%s: option '%s' must be a number of seconds, got %s", fname, key,
                       lua_typename(L, t));
        ms = seconds_to_ms(L, (double)lua_tonumber(L, -1), fname, key);
    }
    lua_pop(L, 1);
    return ms;
}

void er_secure_free(void *p, size_t n)
{
    if (!p)
        return;
    OPENSSL_cleanse(p, n);
    free(p);
}

/* A path for an error message: the bytes up to a NUL, then "\0..." so the
 * reader sees where the path was cut. */
static const char *shown_path(lua_State *L, const char *p, size_t len)
{
    size_t n = strlen(p);
    if (n == len)
        return p;
    return lua_pushfstring(L, "%s\\0%s", p, p + n + 1 < p + len ? "..." : "");
}

const char *er_checkpath(lua_State *L, int idx, const char *fname)
{
    size_t len;
    const char *p = luaL_checklstring(L, idx, &len);
    if (strlen(p) != len)
        luaL_error(L, "%s: path contains a NUL byte (%s)", fname, shown_path(L, p, len));
    return p;
}

const char *er_opt_path(lua_State *L, int idx, const char *key, const char *def,
                        const char *fname)
{
    idx = lua_absindex(L, idx);
    int t = push_opt(L, idx, key);
    const char *p = def;
    if (t == LUA_TSTRING) {
        size_t len;
        p = lua_tolstring(L, -1, &len); /* anchored in the options table */
        if (strlen(p) != len)
            luaL_error(L, "%s: option '%s' contains a NUL byte (%s)", fname, key,
                       shown_path(L, p, len));
    } else if (t != LUA_TNIL) {
        luaL_error(L, "%s: option '%s' must be a path string, got %s", fname, key,
                   lua_typename(L, t));
    }
    lua_pop(L, 1);
    return p;
}

/*
 * A mode as an octal string ("0644", "644", "01777", "0o600") or an integer
 * within 0..07777. Returns the mode, or -1 with why filled in.
 */
static int parse_mode(lua_State *L, int idx, const char **why)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        int isint = 0;
        lua_Integer m = lua_tointegerx(L, idx, &isint);
        if (!isint) {
            *why = "is not an integer";
            return -1;
        }
        if (m < 0 || m > 07777) {
            *why = "is out of range 0..07777";
            return -1;
        }
        return (int)m;
    }
    if (lua_type(L, idx) != LUA_TSTRING) {
        *why = "must be an octal string like \"0644\" or an integer";
        return -1;
    }
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (len > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'O'))
        s += 2, len -= 2;
    /* 3 or 4 digits, or 5 with a leading 0 ("01777"): a one-digit typo is
       not silently a mode */
    int ok = len >= 3 && len <= 5 && (len < 5 || s[0] == '0');
    int m = 0;
    for (size_t i = 0; ok && i < len; i++) {
        if (s[i] < '0' || s[i] > '7')
            ok = 0;
        else
            m = m * 8 + (s[i] - '0');
    }
    if (!ok) {
        *why = "is not an octal mode like \"0644\"";
        return -1;
    }
    return m;
}

static void mode_error(lua_State *L, int idx, const char *fname, const char *what,
                       const char *object, const char *why)
{
    const char *v = lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER
        ? lua_pushfstring(L, lua_type(L, idx) == LUA_TSTRING ? "'%s'" : "%s",
                          luaL_tolstring(L, idx, NULL))
        : luaL_typename(L, idx);
    luaL_error(L, "%s: %s %s %s (%s)", fname, what, v, why, object ? object : "?");
}

int er_checkmode(lua_State *L, int idx, const char *fname, const char *object)
{
    const char *why = NULL;
    idx = lua_absindex(L, idx);
    int m = parse_mode(L, idx, &why);
    if (m < 0)
        mode_error(L, idx, fname, "mode", object, why);
    return m;
}

int er_opt_mode(lua_State *L, int idx, const char *key, int def, const char *fname,
                const char *object)
{
    idx = lua_absindex(L, idx);
    int m = def;
    if (push_opt(L, idx, key) != LUA_TNIL) {
        const char *why = NULL;
        m = parse_mode(L, -1, &why);
        if (m < 0) {
            int vidx = lua_gettop(L);
            const char *what = lua_pushfstring(L, "option '%s'", key);
            mode_error(L, vidx, fname, what, object, why);
        }
    }
    lua_pop(L, 1);
    return m;
}
