/*
 * x509.c: making private keys, CSRs, CA and signed certificates for Lua
 * (etcdrun.core.x509), on OpenSSL 3's EVP/X509 APIs only. Reading and
 * verifying them is x509_inspect.c; this module re-exports its functions.
 *
 * Keys and certificates cross as PEM strings and plain tables. Private key
 * PEM is written into secure-memory BIOs, and EVP_PKEY_free clears key
 * material, so nothing we hold keeps a secret after it is freed.
 *
 * Raising discipline: every Lua call that may raise (option checks, string
 * reads) happens before the first OpenSSL object is allocated, so a misuse
 * error can never leak an object. Build steps after that only read tables
 * already validated, with raw access.
 *
 * CA policy lives here: x509.sign takes the subject, public key and (unless
 * overridden) the SANs from a CSR, and nothing else; basicConstraints is
 * always CA:FALSE, so a CSR can never obtain a CA certificate.
 */
#include "x509_common.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/bn.h>
#include <openssl/rand.h>

/* Certificates start this long before "now": nodes' clocks lag the control host's. */
#define BACKDATE_SECONDS 300
#define MAX_DAYS 36500
#define MAX_EKU 16

/* Subject attributes we accept, in the order they are written into a DN. */
static const char *const subject_keys[] = {
    "DC", "C", "ST", "L", "street", "postalCode", "O", "OU", "title", "CN",
    "serialNumber", "emailAddress", "UID", NULL
};

/* ---- PEM out --------------------------------------------------------- */

/* Push the PKCS#8 PEM of a private key; 0 on failure (reason queued). */
static int push_key_pem(lua_State *L, EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_secmem()); /* cleansed when freed */
    if (!b || !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(b);
        return 0;
    }
    push_bio(L, b);
    BIO_free(b);
    return 1;
}

static int push_cert_pem(lua_State *L, X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || !PEM_write_bio_X509(b, x)) {
        BIO_free(b);
        return 0;
    }
    push_bio(L, b);
    BIO_free(b);
    return 1;
}

/* ---- option parsing (may raise; allocates nothing) -------------------- */

static lua_Integer opt_days(lua_State *L, int idx, const char *fname, lua_Integer def)
{
    lua_Integer d = er_opt_integer(L, idx, "days", def);
    if (d < 1 || d > MAX_DAYS)
        luaL_error(L, "%s: option 'days' must be between 1 and %d", fname, MAX_DAYS);
    return d;
}

static int opt_pathlen(lua_State *L, int idx, const char *fname)
{
    lua_Integer p = er_opt_integer(L, idx, "pathlen", -1);
    if (p < -1 || p > 64)
        luaL_error(L, "%s: option 'pathlen' must be between 0 and 64", fname);
    return (int)p;
}

/* Push t[key] (must be nil or a table) and return its absolute index, or 0 when nil. */
static int opt_table(lua_State *L, int idx, const char *key, const char *fname)
{
    int t = lua_getfield(L, idx, key);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != LUA_TTABLE)
        luaL_error(L, "%s: option '%s' must be a table, got %s", fname, key,
                   lua_typename(L, t));
    return lua_absindex(L, -1);
}

/* Raise unless the table at idx is a list of non-empty strings (no NULs, at most 1 KiB). */
static void check_string_list(lua_State *L, int idx, const char *fname, const char *what)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n)
            luaL_error(L, "%s: '%s' must be a list of strings", fname, what);
    }
    for (lua_Integer i = 1; i <= n; i++) {
        size_t len;
        if (lua_rawgeti(L, idx, i) != LUA_TSTRING)
            luaL_error(L, "%s: '%s' entries must be strings", fname, what);
        const char *s = lua_tolstring(L, -1, &len);
        if (len == 0 || len > 1024 || strlen(s) != len)
            luaL_error(L, "%s: bad '%s' entry", fname, what);
        lua_pop(L, 1);
    }
}

struct exts_opt {
    int san;                  /* stack index of the validated san table; 0: none given */
    int has_ku;
    unsigned ku;              /* bit i = key_usage_names[i] */
    int has_eku;
    int n_eku;
    int eku[MAX_EKU];
};

/* Validate opts.san ({dns=, ip=, email=, uri=}); leaves it on the stack. */
static void parse_san(lua_State *L, int idx, const char *fname, struct exts_opt *o)
{
    o->san = opt_table(L, idx, "san", fname);
    if (!o->san)
        return;
    er_check_options(L, o->san, fname, san_keys);
    for (int k = 0; san_keys[k]; k++) {
        char what[16];
        snprintf(what, sizeof what, "san.%s", san_keys[k]);
        int t = lua_getfield(L, o->san, san_keys[k]);
        if (t != LUA_TNIL && t != LUA_TTABLE)
            luaL_error(L, "%s: '%s' must be a list of strings", fname, what);
        if (t == LUA_TTABLE) {
            int list = lua_absindex(L, -1);
            check_string_list(L, list, fname, what);
            for (lua_Integer i = 1; lua_rawgeti(L, list, i) == LUA_TSTRING; i++) {
                const char *v = lua_tostring(L, -1);
                unsigned char buf[16];
                if (k == SAN_IP && inet_pton(AF_INET, v, buf) != 1
                    && inet_pton(AF_INET6, v, buf) != 1)
                    luaL_error(L, "%s: bad IP address '%s' in san.ip", fname, v);
                /* IA5String names: no spaces or control characters, no UTF-8 */
                for (const char *p = v; *p; p++)
                    if (*p <= ' ' || *p > '~')
                        luaL_error(L, "%s: '%s' entries must be printable ASCII", fname, what);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
}

/* Validate opts[key] as a list of usage names; absent gives def (NULL: no extension). */
static void parse_usages(lua_State *L, int idx, const char *fname, struct exts_opt *o,
                         const char *const *def_ku, const char *const *def_eku)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *key = pass == 0 ? "key_usage" : "ext_key_usage";
        const char *const *def = pass == 0 ? def_ku : def_eku;
        int list = opt_table(L, idx, key, fname);
        lua_Integer n = 0;
        if (list) {
            check_string_list(L, list, fname, key);
            n = (lua_Integer)lua_rawlen(L, list);
        } else if (def) {
            while (def[n])
                n++;
        }
        if (pass == 0)
            o->has_ku = list || def;
        else
            o->has_eku = list || def;
        for (lua_Integer i = 0; i < n; i++) {
            const char *name;
            if (list) {
                lua_rawgeti(L, list, i + 1);
                name = lua_tostring(L, -1);
                lua_pop(L, 1); /* still anchored in the list */
            } else {
                name = def[i];
            }
            int found = 0;
            if (pass == 0) {
                for (int b = 0; key_usage_names[b] && !found; b++)
                    if (strcmp(key_usage_names[b], name) == 0) {
                        o->ku |= 1u << b;
                        found = 1;
                    }
            } else {
                for (int e = 0; eku_names[e].name && !found; e++)
                    if (strcmp(eku_names[e].name, name) == 0) {
                        if (o->n_eku >= MAX_EKU)
                            luaL_error(L, "%s: too many ext_key_usage entries", fname);
                        o->eku[o->n_eku++] = eku_names[e].nid;
                        found = 1;
                    }
            }
            if (!found)
                luaL_error(L, "%s: unknown %s '%s'", fname, key, name);
        }
        if (list)
            lua_pop(L, 1);
    }
    /* An empty list means "no such extension": an empty KeyUsage is invalid DER. */
    if (o->has_ku && o->ku == 0)
        o->has_ku = 0;
    if (o->has_eku && o->n_eku == 0)
        o->has_eku = 0;
}

/* Add subject attributes from the validated table at idx; the attribute that failed, or NULL. */
static const char *fill_name(lua_State *L, int idx, X509_NAME *name)
{
    for (int k = 0; subject_keys[k]; k++) {
        lua_pushstring(L, subject_keys[k]);
        int t = lua_rawget(L, idx);
        lua_Integer n = t == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, -1) : 1;
        for (lua_Integer i = 1; t != LUA_TNIL && i <= n; i++) {
            size_t len;
            if (t == LUA_TTABLE)
                lua_rawgeti(L, -1, i);
            else
                lua_pushvalue(L, -1);
            const char *v = lua_tolstring(L, -1, &len);
            int ok = X509_NAME_add_entry_by_txt(name, subject_keys[k], MBSTRING_UTF8,
                                                (const unsigned char *)v, (int)len, -1, 0);
            lua_pop(L, 1);
            if (!ok) {
                lua_pop(L, 1);
                return subject_keys[k];
            }
        }
        lua_pop(L, 1);
    }
    return NULL;
}

/*
 * Validate opts.subject and build it. Called last among the raising steps so the
 * returned name (owned by the caller) cannot leak through a later raise.
 */
static X509_NAME *parse_subject(lua_State *L, int idx, const char *fname, int required)
{
    int t = opt_table(L, idx, "subject", fname);
    if (!t) {
        if (required)
            luaL_error(L, "%s: option 'subject' is required", fname);
        lua_pushnil(L);
        t = lua_gettop(L);
    } else {
        er_check_options(L, t, fname, subject_keys);
        lua_pushnil(L);
        while (lua_next(L, t)) {
            const char *key = lua_tostring(L, -2);
            if (lua_type(L, -1) == LUA_TTABLE)
                check_string_list(L, lua_absindex(L, -1), fname, key);
            else if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0)
                luaL_error(L, "%s: subject.%s must be a non-empty string or a list of them",
                           fname, key);
            lua_pop(L, 1);
        }
    }
    X509_NAME *name = X509_NAME_new();
    if (!name)
        luaL_error(L, "%s: out of memory", fname);
    const char *bad = lua_istable(L, t) ? fill_name(L, t, name) : NULL;
    if (bad) {
        char reason[256];
        X509_NAME_free(name);
        ssl_reason(reason, sizeof reason);
        luaL_error(L, "%s: bad subject.%s: %s", fname, bad, reason);
    }
    if (required && X509_NAME_entry_count(name) == 0) {
        X509_NAME_free(name);
        luaL_error(L, "%s: option 'subject' must not be empty", fname);
    }
    return name;
}

/* ---- extension building (never raises) -------------------------------- */

/* Add an extension to a certificate, or to a CSR's pending list when x is NULL. */
static int add_ext(X509 *x, STACK_OF(X509_EXTENSION) **sk, int nid, void *value, int crit)
{
    if (x)
        return X509_add1_ext_i2d(x, nid, value, crit, X509V3_ADD_REPLACE) == 1;
    return X509V3_add1_i2d(sk, nid, value, crit, X509V3_ADD_REPLACE) == 1;
}

static int add_basic_constraints(X509 *x, STACK_OF(X509_EXTENSION) **sk, int ca, int pathlen)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    int ok = bc != NULL;
    if (ok) {
        bc->ca = ca ? 0xFF : 0;
        if (ca && pathlen >= 0)
            ok = (bc->pathlen = ASN1_INTEGER_new()) && ASN1_INTEGER_set(bc->pathlen, pathlen);
    }
    ok = ok && add_ext(x, sk, NID_basic_constraints, bc, 1);
    BASIC_CONSTRAINTS_free(bc);
    return ok;
}

static int add_key_usage(X509 *x, STACK_OF(X509_EXTENSION) **sk, unsigned ku)
{
    ASN1_BIT_STRING *bits = ASN1_BIT_STRING_new();
    int ok = bits != NULL;
    for (int b = 0; ok && key_usage_names[b]; b++)
        if (ku & (1u << b))
            ok = ASN1_BIT_STRING_set_bit(bits, b, 1);
    ok = ok && add_ext(x, sk, NID_key_usage, bits, 1);
    ASN1_BIT_STRING_free(bits);
    return ok;
}

static int add_ext_key_usage(X509 *x, STACK_OF(X509_EXTENSION) **sk, const struct exts_opt *o)
{
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    int ok = eku != NULL;
    for (int i = 0; ok && i < o->n_eku; i++)
        ok = sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(o->eku[i])) > 0;
    ok = ok && add_ext(x, sk, NID_ext_key_usage, eku, 0);
    sk_ASN1_OBJECT_free(eku); /* OBJ_nid2obj objects are static */
    return ok;
}

/* Append a name of kind SAN_* (already validated) to gens. */
static int push_general_name(GENERAL_NAMES *gens, int kind, const char *s)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_STRING *v = NULL;
    int type;
    if (!g)
        return 0;
    if (kind == SAN_IP) {
        unsigned char buf[16];
        int n = inet_pton(AF_INET, s, buf) == 1 ? 4 : 16;
        if (n == 16 && inet_pton(AF_INET6, s, buf) != 1)
            goto fail;
        type = GEN_IPADD;
        v = ASN1_OCTET_STRING_new();
        if (!v || !ASN1_OCTET_STRING_set(v, buf, n))
            goto fail;
    } else {
        type = kind == SAN_DNS ? GEN_DNS : kind == SAN_EMAIL ? GEN_EMAIL : GEN_URI;
        v = ASN1_IA5STRING_new();
        if (!v || !ASN1_STRING_set(v, s, -1))
            goto fail;
    }
    GENERAL_NAME_set0_value(g, type, v);
    if (!sk_GENERAL_NAME_push(gens, g)) {
        GENERAL_NAME_free(g);
        return 0;
    }
    return 1;
fail:
    ASN1_STRING_free(v);
    GENERAL_NAME_free(g);
    return 0;
}

/* Add subjectAltName from the validated san table at o->san (nothing if it lists no name). */
static int add_san(lua_State *L, X509 *x, STACK_OF(X509_EXTENSION) **sk,
                   const struct exts_opt *o, int critical)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int ok = gens != NULL;
    for (int k = 0; ok && san_keys[k]; k++) {
        lua_pushstring(L, san_keys[k]);
        if (lua_rawget(L, o->san) == LUA_TTABLE) {
            for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
                ok = ok && push_general_name(gens, k, lua_tostring(L, -1));
                lua_pop(L, 1);
            }
            lua_pop(L, 1); /* the nil that ended the list */
        }
        lua_pop(L, 1);
    }
    if (ok && sk_GENERAL_NAME_num(gens) > 0)
        ok = add_ext(x, sk, NID_subject_alt_name, gens, critical);
    GENERAL_NAMES_free(gens);
    return ok;
}

static ASN1_OCTET_STRING *key_id(const X509 *x)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    ASN1_OCTET_STRING *id = NULL;
    /* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
    if (X509_pubkey_digest(x, EVP_sha1(), md, &n) && (id = ASN1_OCTET_STRING_new()))
        if (!ASN1_OCTET_STRING_set(id, md, (int)n)) {
            ASN1_OCTET_STRING_free(id);
            id = NULL;
        }
    return id;
}

/* subjectKeyIdentifier of x, and authorityKeyIdentifier naming issuer's key. */
static int add_key_ids(X509 *x, X509 *issuer)
{
    ASN1_OCTET_STRING *ski = key_id(x);
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    const ASN1_OCTET_STRING *issuer_ski = X509_get0_subject_key_id(issuer);
    int ok = ski && akid;
    if (ok && issuer == x)
        akid->keyid = ASN1_OCTET_STRING_dup(ski);
    else if (ok && issuer_ski)
        akid->keyid = ASN1_OCTET_STRING_dup(issuer_ski);
    else if (ok)
        akid->keyid = key_id(issuer);
    ok = ok && akid->keyid;
    ok = ok && add_ext(x, NULL, NID_subject_key_identifier, ski, 0);
    ok = ok && add_ext(x, NULL, NID_authority_key_identifier, akid, 0);
    ASN1_OCTET_STRING_free(ski);
    AUTHORITY_KEYID_free(akid);
    return ok;
}

/* ---- certificates ----------------------------------------------------- */

/* Ed25519 signs the message itself; ECDSA uses the digest matching its curve size. */
static const EVP_MD *digest_for(EVP_PKEY *k)
{
    if (EVP_PKEY_is_a(k, "ED25519") || EVP_PKEY_is_a(k, "ED448"))
        return NULL;
    if (EVP_PKEY_is_a(k, "EC")) {
        int bits = EVP_PKEY_get_bits(k);
        if (bits > 384)
            return EVP_sha512();
        if (bits > 256)
            return EVP_sha384();
    }
    return EVP_sha256();
}

/* A v3 certificate with a random serial and a validity of days; NULL on failure. */
static X509 *new_cert(const X509_NAME *subject, const X509_NAME *issuer, EVP_PKEY *pub,
                      lua_Integer days)
{
    unsigned char rnd[16];
    BIGNUM *bn = NULL;
    X509 *x = X509_new();
    if (!x || !X509_set_version(x, X509_VERSION_3) || RAND_bytes(rnd, sizeof rnd) != 1)
        goto fail;
    /* Top bit set: always a positive 128-bit number, so always 16 octets of serial. */
    rnd[0] |= 0x80;
    if (!(bn = BN_bin2bn(rnd, sizeof rnd, NULL))
        || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        goto fail;
    BN_free(bn);
    bn = NULL;
    if (!X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECONDS)
        || !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL)
        || !X509_set_subject_name(x, subject) || !X509_set_issuer_name(x, issuer)
        || !X509_set_pubkey(x, pub))
        goto fail;
    return x;
fail:
    BN_free(bn);
    X509_free(x);
    return NULL;
}

/* What key to make, validated from Lua options before any work starts. */
struct keyspec {
    const char *type; /* "rsa", "ec", "ed25519" (static strings) */
    size_t bits;
    const char *group;
};

/* Check x509.key's options (raises on misuse). */
static void parse_keyspec(lua_State *L, int idx, const char *fname, struct keyspec *ks)
{
    static const char *const known[] = {"type", "bits", "curve", NULL};
    luaL_checktype(L, idx, LUA_TTABLE);
    er_check_options(L, idx, fname, known);
    const char *type = er_opt_string(L, idx, "type", NULL);
    lua_Integer bits = er_opt_integer(L, idx, "bits", 0);
    const char *curve = er_opt_string(L, idx, "curve", NULL);
    memset(ks, 0, sizeof *ks);
    if (!type)
        luaL_error(L, "%s: option 'type' is required", fname);
    if (strcmp(type, "rsa") == 0) {
        if (bits == 0)
            bits = 2048;
        if (bits != 2048 && bits != 3072 && bits != 4096)
            luaL_error(L, "%s: rsa bits must be 2048, 3072 or 4096", fname);
        ks->type = "rsa";
    } else if (strcmp(type, "ec") == 0) {
        if (!curve)
            curve = "P-256";
        for (int i = 0; curves[i].nist && !ks->group; i++)
            if (strcmp(curves[i].nist, curve) == 0)
                ks->group = curves[i].group;
        if (!ks->group)
            luaL_error(L, "%s: unknown curve '%s' (P-256, P-384, P-521)", fname, curve);
        ks->type = "ec";
    } else if (strcmp(type, "ed25519") == 0) {
        ks->type = "ed25519";
    } else {
        luaL_error(L, "%s: unknown key type '%s' (rsa, ec, ed25519)", fname, type);
    }
    if (bits && strcmp(type, "rsa") != 0)
        luaL_error(L, "%s: option 'bits' is for type rsa", fname);
    if (curve && strcmp(type, "ec") != 0)
        luaL_error(L, "%s: option 'curve' is for type ec", fname);
    ks->bits = (size_t)bits;
}

/* Generate a key; touches no Lua state, so it may run on any thread. */
static EVP_PKEY *generate(const struct keyspec *ks)
{
    if (ks->group)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", ks->group);
    if (strcmp(ks->type, "rsa") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", ks->bits);
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

/* x509.key{type="rsa"|"ec"|"ed25519", bits=, curve=} -> pem | nil, err, code */
static int l_key(lua_State *L)
{
    struct keyspec ks;
    parse_keyspec(L, 1, "x509.key", &ks);
    ERR_clear_error();
    EVP_PKEY *k = generate(&ks);
    int ok = k && push_key_pem(L, k);
    EVP_PKEY_free(k);
    if (!ok)
        return fail_ssl(L, "EKEYGEN", "x509.key", "cannot generate key", ks.type);
    return 1;
}

/* ---- key generation off the Lua thread --------------------------------
 * An RSA-4096 key costs seconds of one core. A key job generates it on a
 * thread of its own, so the scheduler keeps the other hosts (and the other
 * core) busy meanwhile: several members' keys are made at once. */

#define KEYJOB_MT "etcdrun.x509.KeyJob"

struct keyjob {
    pthread_t thread;
    int joined;
    int done; /* set by the thread, read with __atomic loads */
    struct keyspec ks;
    char *pem;
    size_t len;
    char err[256];
};

static void *keyjob_main(void *arg)
{
    struct keyjob *j = arg;
    EVP_PKEY *k = generate(&j->ks);
    BIO *b = k ? BIO_new(BIO_s_secmem()) : NULL;
    if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) {
        char *data = NULL;
        long n = BIO_get_mem_data(b, &data);
        j->pem = n > 0 ? malloc((size_t)n) : NULL;
        if (j->pem) {
            memcpy(j->pem, data, (size_t)n);
            j->len = (size_t)n;
        }
    }
    if (!j->pem) {
        unsigned long e = ERR_get_error();
        snprintf(j->err, sizeof j->err, "%s", e ? ERR_reason_error_string(e) : "out of memory");
    }
    BIO_free(b);
    EVP_PKEY_free(k);
    ERR_clear_error();
    __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static struct keyjob *check_keyjob(lua_State *L)
{
    return luaL_checkudata(L, 1, KEYJOB_MT);
}

static void keyjob_join(struct keyjob *j)
{
    if (!j->joined) {
        pthread_join(j->thread, NULL);
        j->joined = 1;
    }
}

/* x509.key_job(opts) -> KeyJob: x509.key's work on a thread of its own */
static int l_key_job(lua_State *L)
{
    struct keyspec ks;
    parse_keyspec(L, 1, "x509.key_job", &ks);
    struct keyjob *j = lua_newuserdatauv(L, sizeof *j, 0);
    memset(j, 0, sizeof *j);
    j->joined = 1; /* nothing to join until the thread exists */
    j->ks = ks;
    luaL_setmetatable(L, KEYJOB_MT);
    if (pthread_create(&j->thread, NULL, keyjob_main, j) != 0)
        return luaL_error(L, "x509.key_job: cannot start a thread");
    j->joined = 0;
    return 1;
}

/* KeyJob:done() -> boolean */
static int l_keyjob_done(lua_State *L)
{
    lua_pushboolean(L, __atomic_load_n(&check_keyjob(L)->done, __ATOMIC_ACQUIRE));
    return 1;
}

/* KeyJob:result() / KeyJob:wait() -> pem | nil, err, "EKEYGEN" (waits for the thread) */
static int l_keyjob_result(lua_State *L)
{
    struct keyjob *j = check_keyjob(L);
    keyjob_join(j);
    if (!j->pem)
        return er_fail(L, "EKEYGEN", "x509.key: cannot generate key: %s (%s)", j->err, j->ks.type);
    lua_pushlstring(L, j->pem, j->len);
    return 1;
}

static int l_keyjob_gc(lua_State *L)
{
    struct keyjob *j = check_keyjob(L);
    keyjob_join(j);
    er_secure_free(j->pem, j->len);
    j->pem = NULL;
    j->len = 0;
    return 0;
}

/* x509.public_key(pem [, name]) -> pub_pem | nil, err, "EPEM"
 * The public key of a private key, a CSR or a certificate, as PEM: the same
 * key gives the same text, so "is this CSR for this key" is a comparison. */
static int l_public_key(lua_State *L)
{
    size_t len;
    const char *pem = arg_pem(L, 1, &len);
    const char *obj = luaL_optstring(L, 2, "key");
    ERR_clear_error();
    EVP_PKEY *k = NULL;
    if (strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----")) {
        X509_REQ *req = load_csr(pem, len);
        k = req ? X509_REQ_get_pubkey(req) : NULL;
        X509_REQ_free(req);
    } else if (strstr(pem, "-----BEGIN CERTIFICATE-----")) {
        X509 *x = load_cert(pem, len);
        k = x ? X509_get_pubkey(x) : NULL;
        X509_free(x);
    } else {
        k = load_key(pem, len);
    }
    if (!k)
        return fail_ssl(L, "EPEM", "x509.public_key", "cannot parse a key, CSR or certificate", obj);
    BIO *b = BIO_new(BIO_s_mem());
    int ok = b && PEM_write_bio_PUBKEY(b, k);
    EVP_PKEY_free(k);
    if (ok)
        push_bio(L, b);
    BIO_free(b);
    if (!ok)
        return fail_ssl(L, "EPEM", "x509.public_key", "cannot write public key", obj);
    return 1;
}

/* x509.csr{key=, subject=, san=, key_usage=, ext_key_usage=, ca=, pathlen=, name=}
 *   -> pem | nil, err, code */
static int l_csr(lua_State *L)
{
    static const char *const known[] = {"key", "subject", "san", "key_usage",
                                        "ext_key_usage", "ca", "pathlen", "name", NULL};
    static const char *const fname = "x509.csr";
    struct exts_opt o = {0};
    size_t keylen;
    char label[256];
    luaL_checktype(L, 1, LUA_TTABLE);
    er_check_options(L, 1, fname, known);
    const char *key = opt_pem(L, 1, "key", fname, &keylen);
    const char *obj = er_opt_string(L, 1, "name", NULL);
    int ca_given = lua_getfield(L, 1, "ca") != LUA_TNIL;
    lua_pop(L, 1);
    int ca = er_opt_boolean(L, 1, "ca", 0);
    int pathlen = opt_pathlen(L, 1, fname);
    if (pathlen >= 0 && !ca)
        return luaL_error(L, "%s: option 'pathlen' needs ca=true", fname);
    parse_san(L, 1, fname, &o);
    parse_usages(L, 1, fname, &o, NULL, NULL);
    X509_NAME *subject = parse_subject(L, 1, fname, 0);
    if (!obj)
        obj = X509_NAME_entry_count(subject) ? name_label(subject, label, sizeof label) : "key";

    STACK_OF(X509_EXTENSION) *exts = NULL;
    X509_REQ *req = NULL;
    ERR_clear_error();
    EVP_PKEY *k = load_key(key, keylen);
    if (!k) {
        X509_NAME_free(subject);
        return fail_ssl(L, "EPEM", fname, "cannot parse private key", obj);
    }
    int ok = (req = X509_REQ_new()) && X509_REQ_set_version(req, X509_REQ_VERSION_1)
             && X509_REQ_set_subject_name(req, subject) && X509_REQ_set_pubkey(req, k);
    ok = ok && (!ca_given || add_basic_constraints(NULL, &exts, ca, pathlen));
    ok = ok && (!o.has_ku || add_key_usage(NULL, &exts, o.ku));
    ok = ok && (!o.has_eku || add_ext_key_usage(NULL, &exts, &o));
    ok = ok && (!o.san || add_san(L, NULL, &exts, &o, X509_NAME_entry_count(subject) == 0));
    ok = ok && (!exts || X509_REQ_add_extensions(req, exts));
    ok = ok && X509_REQ_sign(req, k, digest_for(k)) > 0;
    BIO *b = ok ? BIO_new(BIO_s_mem()) : NULL;
    ok = ok && b && PEM_write_bio_X509_REQ(b, req);
    if (ok)
        push_bio(L, b);
    BIO_free(b);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    EVP_PKEY_free(k);
    X509_NAME_free(subject);
    if (!ok)
        return fail_ssl(L, "ESSL", fname, "cannot build CSR", obj);
    return 1;
}

/* x509.ca{key=, subject=, days=3650, pathlen=, name=} -> cert_pem | nil, err, code */
static int l_ca(lua_State *L)
{
    static const char *const known[] = {"key", "subject", "days", "pathlen", "name", NULL};
    static const char *const fname = "x509.ca";
    size_t keylen;
    char label[256];
    luaL_checktype(L, 1, LUA_TTABLE);
    er_check_options(L, 1, fname, known);
    const char *key = opt_pem(L, 1, "key", fname, &keylen);
    const char *obj = er_opt_string(L, 1, "name", NULL);
    lua_Integer days = opt_days(L, 1, fname, 3650);
    int pathlen = opt_pathlen(L, 1, fname);
    X509_NAME *subject = parse_subject(L, 1, fname, 1);
    if (!obj)
        obj = name_label(subject, label, sizeof label);

    ERR_clear_error();
    EVP_PKEY *k = load_key(key, keylen);
    if (!k) {
        X509_NAME_free(subject);
        return fail_ssl(L, "EPEM", fname, "cannot parse private key", obj);
    }
    X509 *x = new_cert(subject, subject, k, days);
    int ok = x && add_basic_constraints(x, NULL, 1, pathlen)
             && add_key_usage(x, NULL, (1u << 5) | (1u << 6)) /* keyCertSign, cRLSign */
             && add_key_ids(x, x) && X509_sign(x, k, digest_for(k)) > 0
             && push_cert_pem(L, x);
    X509_free(x);
    EVP_PKEY_free(k);
    X509_NAME_free(subject);
    if (!ok)
        return fail_ssl(L, "ESSL", fname, "cannot build CA certificate", obj);
    return 1;
}

/* ---- a key's passphrase ------------------------------------------------ */

/* The passphrase of x509.encrypt_key/decrypt_key: a Lua string without NUL. */
static const char *check_passphrase(lua_State *L, int idx, const char *fname)
{
    size_t len;
    const char *p = luaL_checklstring(L, idx, &len);
    if (len == 0)
        luaL_error(L, "%s: the passphrase is empty", fname);
    if (strlen(p) != len)
        luaL_error(L, "%s: the passphrase contains a NUL byte", fname);
    return p;
}

static int give_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    size_t n = strlen(u);
    if (n > (size_t)size)
        return -1;
    memcpy(buf, u, n);
    return (int)n;
}

/* x509.encrypt_key(pem, passphrase, name?) -> PKCS#8 PEM encrypted with
 * AES-256-CBC (scrypt-free PBKDF2, OpenSSL's default) | nil, err, "EPEM" */
static int l_encrypt_key(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    const char *pass = check_passphrase(L, 2, "x509.encrypt_key");
    const char *name = luaL_optstring(L, 3, "key");
    ERR_clear_error();
    EVP_PKEY *k = load_key(pem, len);
    if (!k)
        return fail_ssl(L, "EPEM", "x509.encrypt_key", "cannot parse key", name);
    BIO *b = BIO_new(BIO_s_secmem());
    int ok = b && PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_256_cbc(), NULL, 0, give_passphrase,
                                                (void *)pass);
    EVP_PKEY_free(k);
    if (!ok) {
        BIO_free(b);
        return fail_ssl(L, "EPEM", "x509.encrypt_key", "cannot encrypt key", name);
    }
    push_bio(L, b);
    BIO_free(b);
    return 1;
}

/* x509.decrypt_key(pem, passphrase, name?) -> the key as plain PKCS#8 PEM
 *   | nil, err, "EPASSPHRASE" (a wrong passphrase) | nil, err, "EPEM" */
static int l_decrypt_key(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    const char *pass = check_passphrase(L, 2, "x509.decrypt_key");
    const char *name = luaL_optstring(L, 3, "key");
    ERR_clear_error();
    BIO *in = pem_bio(pem, len);
    EVP_PKEY *k = in ? PEM_read_bio_PrivateKey(in, NULL, give_passphrase, (void *)pass) : NULL;
    BIO_free(in);
    if (!k) {
        ERR_clear_error();
        if (memmem(pem, len, "ENCRYPTED", 9))
            return er_fail(L, "EPASSPHRASE", "x509.decrypt_key: wrong passphrase (%s)", name);
        return er_fail(L, "EPEM", "x509.decrypt_key: not a private key (%s)", name);
    }
    int ok = push_key_pem(L, k);
    EVP_PKEY_free(k);
    if (!ok)
        return fail_ssl(L, "EPEM", "x509.decrypt_key", "cannot write key", name);
    return 1;
}

/* x509.sign{csr=, ca_cert=, ca_key=, days=365, key_usage=, ext_key_usage=, san=, name=}
 *   -> cert_pem | nil, err, code */
static int l_sign(lua_State *L)
{
    static const char *const known[] = {"csr", "ca_cert", "ca_key", "days", "key_usage",
                                        "ext_key_usage", "san", "name", NULL};
    static const char *const def_ku[] = {"digitalSignature", "keyEncipherment", NULL};
    static const char *const def_eku[] = {"serverAuth", NULL};
    static const char *const fname = "x509.sign";
    struct exts_opt o = {0};
    size_t csrlen, certlen, keylen;
    char label[256];
    luaL_checktype(L, 1, LUA_TTABLE);
    er_check_options(L, 1, fname, known);
    const char *csr_pem = opt_pem(L, 1, "csr", fname, &csrlen);
    const char *cert_pem = opt_pem(L, 1, "ca_cert", fname, &certlen);
    const char *key_pem = opt_pem(L, 1, "ca_key", fname, &keylen);
    const char *name = er_opt_string(L, 1, "name", NULL);
    lua_Integer days = opt_days(L, 1, fname, 365);
    parse_san(L, 1, fname, &o);
    parse_usages(L, 1, fname, &o, def_ku, def_eku);

    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *ca_key = NULL;
    X509_REQ *req = NULL;
    int ret;
    ERR_clear_error();
    if (!(ca = load_cert(cert_pem, certlen))) {
        ret = fail_ssl(L, "EPEM", fname, "cannot parse CA certificate", name ? name : "ca_cert");
        goto done;
    }
    const char *ca_obj = name ? name : name_label(X509_get_subject_name(ca), label, sizeof label);
    if (!(ca_key = load_key(key_pem, keylen))) {
        ret = fail_ssl(L, "EPEM", fname, "cannot parse CA key", ca_obj);
        goto done;
    }
    if (!(req = load_csr(csr_pem, csrlen))) {
        ret = fail_ssl(L, "EPEM", fname, "cannot parse CSR", name ? name : "csr");
        goto done;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(ca), ca_key) != 1) {
        ERR_clear_error();
        ret = er_fail(L, "EKEYMISMATCH", "%s: CA key does not match CA certificate (%s)",
                      fname, ca_obj);
        goto done;
    }
    if (X509_check_ca(ca) == 0) {
        ret = er_fail(L, "ENOTCA", "%s: CA certificate is not a CA (%s)", fname, ca_obj);
        goto done;
    }
    const X509_NAME *subject = X509_REQ_get_subject_name(req);
    const char *obj = name ? name : X509_NAME_entry_count(subject)
                                        ? name_label(subject, label, sizeof label) : "csr";
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    if (!pub || X509_REQ_verify(req, pub) != 1) {
        ret = fail_ssl(L, "EBADCSR", fname, "CSR signature does not verify", obj);
        goto done;
    }

    int ok = (x = new_cert(subject, X509_get_subject_name(ca), pub, days)) != NULL;
    ok = ok && add_basic_constraints(x, NULL, 0, -1);
    ok = ok && (!o.has_ku || add_key_usage(x, NULL, o.ku));
    ok = ok && (!o.has_eku || add_ext_key_usage(x, NULL, &o));
    if (ok && o.san) {
        ok = add_san(L, x, NULL, &o, X509_NAME_entry_count(subject) == 0);
    } else if (ok) {
        /* The CSR's SANs are the one thing the requester may choose. */
        STACK_OF(X509_EXTENSION) *req_exts = X509_REQ_get_extensions(req);
        int i = X509v3_get_ext_by_NID(req_exts, NID_subject_alt_name, -1);
        if (i >= 0)
            ok = X509_add_ext(x, X509v3_get_ext(req_exts, i), -1);
        sk_X509_EXTENSION_pop_free(req_exts, X509_EXTENSION_free);
    }
    ok = ok && add_key_ids(x, ca) && X509_sign(x, ca_key, digest_for(ca_key)) > 0;
    ok = ok && push_cert_pem(L, x);
    ret = ok ? 1 : fail_ssl(L, "ESSL", fname, "cannot build certificate", obj);
done:
    X509_free(x);
    X509_REQ_free(req);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    return ret;
}

static const luaL_Reg x509_funcs[] = {
    {"key", l_key},
    {"key_job", l_key_job},
    {"public_key", l_public_key},
    {"csr", l_csr},
    {"ca", l_ca},
    {"sign", l_sign},
    {"encrypt_key", l_encrypt_key},
    {"decrypt_key", l_decrypt_key},
    {NULL, NULL}
};

/* The Lua API is one table: the inspection functions live in etcdrun.core.x509_inspect
 * only to keep files small, and are merged in here. */
int luaopen_etcdrun_core_x509(lua_State *L)
{
    static const luaL_Reg keyjob_methods[] = {
        {"done", l_keyjob_done}, {"result", l_keyjob_result}, {"wait", l_keyjob_result}, {NULL, NULL}};
    luaL_newmetatable(L, KEYJOB_MT);
    luaL_newlib(L, keyjob_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_keyjob_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, x509_funcs);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "etcdrun.core.x509_inspect");
    lua_call(L, 1, 1);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, -5);
    }
    lua_pop(L, 1);
    return 1;
}
