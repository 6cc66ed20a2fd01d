/*
 * x509_inspect.c: reading and checking keys, CSRs and certificates
 * (etcdrun.core.x509_inspect; etcdrun.core.x509 re-exports every function,
 * so scripts only ever see one x509 table).
 *
 * Everything comes back as plain tables of strings, integers and booleans.
 * Verification is OpenSSL's own X509_verify_cert with its purpose, host and
 * IP checks, so it answers what a TLS peer using OpenSSL would answer.
 */
#include "x509_common.h"

#include <arpa/inet.h>
#include <time.h>

#include <openssl/bn.h>

/* Every certificate in pem, in order; NULL (reason queued) if there is none or one is bad. */
static STACK_OF(X509) *load_certs(const char *pem, size_t len)
{
    BIO *b = pem_bio(pem, len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    if (!b || !sk)
        goto fail;
    while ((x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) != NULL) {
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            goto fail;
        }
    }
    /* The loop ends at "no start line" when the input is used up: that is success. */
    unsigned long e = ERR_peek_last_error();
    if (sk_X509_num(sk) == 0
        || (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)))
        goto fail;
    ERR_clear_error();
    BIO_free(b);
    return sk;
fail:
    BIO_free(b);
    sk_X509_pop_free(sk, X509_free);
    return NULL;
}

static void push_hex(lua_State *L, const unsigned char *p, size_t n, int colons)
{
    luaL_Buffer b;
    char byte[4];
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++) {
        snprintf(byte, sizeof byte, i && colons ? ":%02X" : "%02X", p[i]);
        luaL_addstring(&b, byte);
    }
    luaL_pushresult(&b);
}

static void push_asn1_utf8(lua_State *L, const ASN1_STRING *s)
{
    unsigned char *u = NULL;
    int n = ASN1_STRING_to_UTF8(&u, s);
    if (n >= 0)
        lua_pushlstring(L, (const char *)u, (size_t)n);
    else
        lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
    OPENSSL_free(u);
}

/* Set t[field] = {attr = value, ...} and t[field.."_dn"] = RFC 2253 string, t at -1. */
static void set_name(lua_State *L, const X509_NAME *name, const char *field)
{
    char key[80];
    lua_newtable(L);
    for (int i = 0; i < X509_NAME_entry_count(name); i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
        int nid = OBJ_obj2nid(obj);
        if (nid != NID_undef)
            snprintf(key, sizeof key, "%s", OBJ_nid2sn(nid));
        else
            OBJ_obj2txt(key, sizeof key, obj, 1);
        push_asn1_utf8(L, X509_NAME_ENTRY_get_data(e));
        /* A repeated attribute (two OUs) becomes a list. */
        int t = lua_getfield(L, -2, key);
        if (t == LUA_TNIL) {
            lua_pop(L, 1);
            lua_setfield(L, -2, key);
        } else {
            if (t == LUA_TSTRING) {
                lua_createtable(L, 2, 0);
                lua_insert(L, -2);
                lua_rawseti(L, -2, 1);
                lua_pushvalue(L, -1);
                lua_setfield(L, -4, key);
            }
            lua_insert(L, -2);
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
            lua_pop(L, 1);
        }
    }
    lua_setfield(L, -2, field);

    BIO *b = BIO_new(BIO_s_mem());
    if (b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0)
        push_bio(L, b);
    else
        lua_pushliteral(L, "");
    BIO_free(b);
    snprintf(key, sizeof key, "%s_dn", field);
    lua_setfield(L, -2, key);
}

static void push_general_names(lua_State *L, const GENERAL_NAMES *gens)
{
    lua_createtable(L, 0, 4);
    for (int k = 0; san_keys[k]; k++) {
        lua_newtable(L);
        lua_setfield(L, -2, san_keys[k]);
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        int type;
        const ASN1_STRING *v = GENERAL_NAME_get0_value(g, &type);
        const char *kind = type == GEN_DNS ? "dns" : type == GEN_IPADD ? "ip"
                         : type == GEN_EMAIL ? "email" : type == GEN_URI ? "uri" : NULL;
        if (!kind)
            continue;
        lua_getfield(L, -1, kind);
        if (type == GEN_IPADD) {
            char buf[INET6_ADDRSTRLEN];
            int n = ASN1_STRING_length(v);
            const unsigned char *p = ASN1_STRING_get0_data(v);
            if ((n == 4 || n == 16) && inet_ntop(n == 4 ? AF_INET : AF_INET6, p, buf, sizeof buf))
                lua_pushstring(L, buf);
            else
                push_hex(L, p, (size_t)n, 1);
        } else {
            lua_pushlstring(L, (const char *)ASN1_STRING_get0_data(v),
                            (size_t)ASN1_STRING_length(v));
        }
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 1);
    }
}

/* san, key_usage, ext_key_usage, is_ca, pathlen, from an extension list; table at -1. */
static void set_extensions(lua_State *L, const STACK_OF(X509_EXTENSION) *exts)
{
    GENERAL_NAMES *gens = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
    push_general_names(L, gens);
    GENERAL_NAMES_free(gens);
    lua_setfield(L, -2, "san");

    ASN1_BIT_STRING *ku = X509V3_get_d2i(exts, NID_key_usage, NULL, NULL);
    lua_newtable(L);
    for (int b = 0; ku && key_usage_names[b]; b++)
        if (ASN1_BIT_STRING_get_bit(ku, b)) {
            lua_pushstring(L, key_usage_names[b]);
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        }
    ASN1_BIT_STRING_free(ku);
    lua_setfield(L, -2, "key_usage");

    EXTENDED_KEY_USAGE *eku = X509V3_get_d2i(exts, NID_ext_key_usage, NULL, NULL);
    lua_newtable(L);
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
        const ASN1_OBJECT *obj = sk_ASN1_OBJECT_value(eku, i);
        const char *name = NULL;
        char oid[80];
        for (int e = 0; eku_names[e].name && !name; e++)
            if (OBJ_obj2nid(obj) == eku_names[e].nid)
                name = eku_names[e].name;
        if (!name) {
            OBJ_obj2txt(oid, sizeof oid, obj, 1);
            name = oid;
        }
        lua_pushstring(L, name);
        lua_rawseti(L, -2, i + 1);
    }
    EXTENDED_KEY_USAGE_free(eku);
    lua_setfield(L, -2, "ext_key_usage");

    BASIC_CONSTRAINTS *bc = X509V3_get_d2i(exts, NID_basic_constraints, NULL, NULL);
    int64_t pathlen;
    lua_pushboolean(L, bc && bc->ca);
    lua_setfield(L, -2, "is_ca");
    if (bc && bc->ca && bc->pathlen && ASN1_INTEGER_get_int64(&pathlen, bc->pathlen)) {
        lua_pushinteger(L, (lua_Integer)pathlen);
        lua_setfield(L, -2, "pathlen");
    }
    BASIC_CONSTRAINTS_free(bc);
}

/* Key type name, size in bits and NIST curve name (NULL if not EC). */
static const char *key_type(EVP_PKEY *k, int *bits, const char **curve, char *buf, size_t n)
{
    size_t len = 0;
    *curve = NULL;
    *bits = EVP_PKEY_get_bits(k);
    if (EVP_PKEY_is_a(k, "RSA"))
        return "rsa";
    if (EVP_PKEY_is_a(k, "ED25519")) {
        *bits = 256; /* get_bits says 253, the group order; users think of 256-bit keys */
        return "ed25519";
    }
    if (EVP_PKEY_is_a(k, "EC")) {
        if (EVP_PKEY_get_group_name(k, buf, n, &len)) {
            *curve = buf;
            for (int i = 0; curves[i].nist; i++)
                if (strcmp(curves[i].group, buf) == 0)
                    *curve = curves[i].nist;
        }
        return "ec";
    }
    snprintf(buf, n, "%s", EVP_PKEY_get0_type_name(k) ? EVP_PKEY_get0_type_name(k) : "unknown");
    for (char *p = buf; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return buf;
}

/* t[prefix.."type"], t[prefix.."bits"], t["curve"] for key k; table at -1. */
static void set_key_fields(lua_State *L, EVP_PKEY *k, const char *type_key, const char *bits_key)
{
    char buf[64];
    const char *curve;
    int bits;
    lua_pushstring(L, key_type(k, &bits, &curve, buf, sizeof buf));
    lua_setfield(L, -2, type_key);
    lua_pushinteger(L, bits);
    lua_setfield(L, -2, bits_key);
    if (curve) {
        lua_pushstring(L, curve);
        lua_setfield(L, -2, "curve");
    }
}

static lua_Integer unix_time(const ASN1_TIME *t)
{
    int days = 0, secs = 0;
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int ok = epoch && ASN1_TIME_diff(&days, &secs, epoch, t);
    ASN1_TIME_free(epoch);
    return ok ? (lua_Integer)days * 86400 + secs : 0;
}

static void set_key_id(lua_State *L, const ASN1_OCTET_STRING *id, const char *field)
{
    if (!id)
        return;
    push_hex(L, ASN1_STRING_get0_data(id), (size_t)ASN1_STRING_length(id), 1);
    lua_setfield(L, -2, field);
}

/* x509.info(cert_pem [, name]) -> table | nil, err, "EPEM" */
static int l_info(lua_State *L)
{
    size_t len;
    const char *pem = arg_pem(L, 1, &len);
    const char *obj = luaL_optstring(L, 2, "cert");
    ERR_clear_error();
    X509 *x = load_cert(pem, len);
    if (!x)
        return fail_ssl(L, "EPEM", "x509.info", "cannot parse certificate", obj);

    lua_createtable(L, 0, 24);
    set_name(L, X509_get_subject_name(x), "subject");
    set_name(L, X509_get_issuer_name(x), "issuer");
    set_extensions(L, X509_get0_extensions(x));

    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    lua_pushstring(L, hex ? hex : "");
    lua_setfield(L, -2, "serial");
    OPENSSL_free(hex);
    BN_free(bn);

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_digest(x, EVP_sha256(), md, &mdlen)) {
        push_hex(L, md, mdlen, 1);
        lua_setfield(L, -2, "fingerprint_sha256");
    }
    lua_pushinteger(L, unix_time(X509_get0_notBefore(x)));
    lua_setfield(L, -2, "not_before");
    lua_pushinteger(L, unix_time(X509_get0_notAfter(x)));
    lua_setfield(L, -2, "not_after");
    lua_pushinteger(L, X509_get_version(x) + 1);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, OBJ_nid2sn(X509_get_signature_nid(x)));
    lua_setfield(L, -2, "signature_algorithm");
    lua_pushboolean(L, X509_self_signed(x, 0) == 1);
    lua_setfield(L, -2, "self_signed");
    set_key_id(L, X509_get0_subject_key_id(x), "ski");
    set_key_id(L, X509_get0_authority_key_id(x), "aki");
    EVP_PKEY *k = X509_get0_pubkey(x);
    if (k)
        set_key_fields(L, k, "key_type", "key_bits");
    X509_free(x);
    ERR_clear_error();
    return 1;
}

/* x509.csr_info(csr_pem [, name]) -> table | nil, err, "EPEM" */
static int l_csr_info(lua_State *L)
{
    size_t len;
    const char *pem = arg_pem(L, 1, &len);
    const char *obj = luaL_optstring(L, 2, "csr");
    ERR_clear_error();
    X509_REQ *req = load_csr(pem, len);
    if (!req)
        return fail_ssl(L, "EPEM", "x509.csr_info", "cannot parse CSR", obj);
    lua_createtable(L, 0, 12);
    set_name(L, X509_REQ_get_subject_name(req), "subject");
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    set_extensions(L, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    EVP_PKEY *k = X509_REQ_get0_pubkey(req);
    if (k)
        set_key_fields(L, k, "key_type", "key_bits");
    lua_pushboolean(L, k && X509_REQ_verify(req, k) == 1);
    lua_setfield(L, -2, "signature_valid");
    X509_REQ_free(req);
    ERR_clear_error();
    return 1;
}

/* x509.key_info(key_pem [, name]) -> {type=, bits=, curve=} | nil, err, "EPEM" */
static int l_key_info(lua_State *L)
{
    size_t len;
    const char *pem = arg_pem(L, 1, &len);
    const char *obj = luaL_optstring(L, 2, "key");
    ERR_clear_error();
    EVP_PKEY *k = load_key(pem, len);
    if (!k)
        return fail_ssl(L, "EPEM", "x509.key_info", "cannot parse private key", obj);
    lua_createtable(L, 0, 3);
    set_key_fields(L, k, "type", "bits");
    EVP_PKEY_free(k);
    return 1;
}

/* x509.key_matches(key_pem, cert_pem [, name]) -> boolean | nil, err, "EPEM" */
static int l_key_matches(lua_State *L)
{
    size_t klen, clen;
    const char *kpem = arg_pem(L, 1, &klen);
    const char *cpem = arg_pem(L, 2, &clen);
    const char *name = luaL_optstring(L, 3, NULL);
    ERR_clear_error();
    EVP_PKEY *k = load_key(kpem, klen);
    if (!k)
        return fail_ssl(L, "EPEM", "x509.key_matches", "cannot parse private key",
                        name ? name : "key");
    X509 *x = load_cert(cpem, clen);
    if (!x) {
        EVP_PKEY_free(k);
        return fail_ssl(L, "EPEM", "x509.key_matches", "cannot parse certificate",
                        name ? name : "cert");
    }
    lua_pushboolean(L, EVP_PKEY_eq(X509_get0_pubkey(x), k) == 1);
    X509_free(x);
    EVP_PKEY_free(k);
    ERR_clear_error();
    return 1;
}

/* x509.verify{cert=, ca=, purpose="any"|"server"|"client", host=, ip=, at=, name=}
 *   -> true | nil, err, "EVERIFY" | nil, err, "EPEM" */
static int l_verify(lua_State *L)
{
    static const char *const known[] = {"cert", "ca", "purpose", "host", "ip", "at", "name",
                                        NULL};
    static const char *const fname = "x509.verify";
    size_t certlen, calen;
    unsigned char ipbuf[16];
    char label[256];
    luaL_checktype(L, 1, LUA_TTABLE);
    er_check_options(L, 1, fname, known);
    const char *cert_pem = opt_pem(L, 1, "cert", fname, &certlen);
    const char *ca_pem = opt_pem(L, 1, "ca", fname, &calen);
    const char *purpose = er_opt_string(L, 1, "purpose", "any");
    const char *host = er_opt_string(L, 1, "host", NULL);
    const char *ip = er_opt_string(L, 1, "ip", NULL);
    const char *name = er_opt_string(L, 1, "name", NULL);
    int has_at = lua_getfield(L, 1, "at") != LUA_TNIL;
    lua_pop(L, 1);
    lua_Integer at = er_opt_integer(L, 1, "at", 0);
    int purpose_id = 0;
    if (strcmp(purpose, "server") == 0)
        purpose_id = X509_PURPOSE_SSL_SERVER;
    else if (strcmp(purpose, "client") == 0)
        purpose_id = X509_PURPOSE_SSL_CLIENT;
    else if (strcmp(purpose, "any") != 0)
        return luaL_error(L, "%s: unknown purpose '%s' (server, client, any)", fname, purpose);
    if (ip && inet_pton(AF_INET, ip, ipbuf) != 1 && inet_pton(AF_INET6, ip, ipbuf) != 1)
        return luaL_error(L, "%s: bad IP address '%s'", fname, ip);
    if (host && !*host)
        return luaL_error(L, "%s: option 'host' must not be empty", fname);

    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *cas = NULL;
    X509 *leaf = NULL;
    int ret;
    ERR_clear_error();
    /* cert may carry its chain: the leaf first, then untrusted intermediates. */
    STACK_OF(X509) *chain = load_certs(cert_pem, certlen);
    if (!chain) {
        ret = fail_ssl(L, "EPEM", fname, "cannot parse certificate", name ? name : "cert");
        goto done;
    }
    leaf = sk_X509_shift(chain);
    const char *obj = name ? name : name_label(X509_get_subject_name(leaf), label, sizeof label);
    if (!(cas = load_certs(ca_pem, calen))) {
        ret = fail_ssl(L, "EPEM", fname, "cannot parse CA bundle", obj);
        goto done;
    }
    int ok = (store = X509_STORE_new()) && (ctx = X509_STORE_CTX_new());
    for (int i = 0; ok && i < sk_X509_num(cas); i++)
        ok = X509_STORE_add_cert(store, sk_X509_value(cas, i));
    ok = ok && X509_STORE_CTX_init(ctx, store, leaf, chain);
    ok = ok && (!purpose_id || X509_STORE_CTX_set_purpose(ctx, purpose_id));
    X509_VERIFY_PARAM *param = ok ? X509_STORE_CTX_get0_param(ctx) : NULL;
    if (ok && host) {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = X509_VERIFY_PARAM_set1_host(param, host, 0);
    }
    ok = ok && (!ip || X509_VERIFY_PARAM_set1_ip_asc(param, ip));
    if (ok && has_at)
        X509_VERIFY_PARAM_set_time(param, (time_t)at);
    if (!ok) {
        ret = fail_ssl(L, "ESSL", fname, "cannot set up verification", obj);
        goto done;
    }
    int rc = X509_verify_cert(ctx);
    if (rc == 1) {
        lua_pushboolean(L, 1);
        ret = 1;
    } else if (X509_STORE_CTX_get_error(ctx) != X509_V_OK) {
        ret = er_fail(L, "EVERIFY", "%s: %s (%s)", fname,
                      X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)), obj);
    } else {
        ret = fail_ssl(L, "EVERIFY", fname, "verification failed", obj);
    }
done:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(cas, X509_free);
    return ret;
}

static const luaL_Reg inspect_funcs[] = {
    {"info", l_info},
    {"csr_info", l_csr_info},
    {"key_info", l_key_info},
    {"key_matches", l_key_matches},
    {"verify", l_verify},
    {NULL, NULL}
};

int luaopen_etcdrun_core_x509_inspect(lua_State *L)
{
    luaL_newlib(L, inspect_funcs);
    return 1;
}
