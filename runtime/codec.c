/*
 * codec.c: base64 for Lua (etcdrun.core.codec), on OpenSSL's EVP encoder,
 * for what speaks it: etcd's JSON gateway (keys and values), PEM bodies.
 * Lua has none, and a hand-written one is a bug waiting to happen.
 */
#include "etcdrun.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* codec.base64(data) -> text (standard alphabet, padded, no line breaks) */
static int codec_base64(lua_State *L)
{
    size_t len;
    const unsigned char *data = (const unsigned char *)luaL_checklstring(L, 1, &len);
    if (len > (size_t)1 << 30)
        return luaL_error(L, "codec.base64: input too large");
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, 4 * ((len + 2) / 3) + 1);
    int n = len ? EVP_EncodeBlock((unsigned char *)out, data, (int)len) : 0;
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* codec.unbase64(text) -> data | nil, err, "EBASE64"
 * White space (a PEM body's line breaks) is ignored. */
static int codec_unbase64(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    char *clean = malloc(len + 1);
    if (!clean)
        return luaL_error(L, "codec.unbase64: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\n", text[i]))
            clean[n++] = text[i];
    if (n % 4 != 0 || n > (size_t)1 << 30) {
        free(clean);
        return er_fail(L, "EBASE64", "codec.unbase64: length %zu is not a multiple of 4", n);
    }
    size_t pad = (n >= 1 && clean[n - 1] == '=') + (n >= 2 && clean[n - 2] == '=');
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, 3 * (n / 4) + 1);
    int got = n ? EVP_DecodeBlock(out, (const unsigned char *)clean, (int)n) : 0;
    free(clean);
    if (got < 0)
        return er_fail(L, "EBASE64", "codec.unbase64: not base64");
    luaL_pushresultsize(&b, (size_t)got - pad); /* DecodeBlock counts padding as bytes */
    return 1;
}

int luaopen_etcdrun_core_codec(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"base64", codec_base64}, {"unbase64", codec_unbase64}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
