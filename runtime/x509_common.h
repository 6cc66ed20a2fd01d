/*
 * x509_common.h: what the two x509 families share (x509.c makes keys and
 * certificates, x509_inspect.c reads and verifies them): name tables, PEM
 * loading and OpenSSL error reasons. Static inline, so each family stays a
 * self-contained object with only its luaopen_* exported.
 */
#ifndef ETCDRUN_X509_COMMON_H
#define ETCDRUN_X509_COMMON_H

#include "etcdrun.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* ---- names ------------------------------------------------------------ */

/* KeyUsage bit i is key_usage_names[i] (RFC 5280 4.2.1.3). */
static const char *const key_usage_names[] = {
    "digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
    "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly", NULL
};

static const struct { const char *name; int nid; } eku_names[] = {
    {"serverAuth", NID_server_auth},
    {"clientAuth", NID_client_auth},
    {"codeSigning", NID_code_sign},
    {"emailProtection", NID_email_protect},
    {"timeStamping", NID_time_stamp},
    {"OCSPSigning", NID_OCSP_sign},
    {NULL, 0}
};

static const char *const san_keys[] = {"dns", "ip", "email", "uri", NULL};
enum { SAN_DNS, SAN_IP, SAN_EMAIL, SAN_URI };

static const struct { const char *nist; const char *group; } curves[] = {
    {"P-256", "prime256v1"},
    {"P-384", "secp384r1"},
    {"P-521", "secp521r1"},
    {NULL, NULL}
};

/* ---- errors ----------------------------------------------------------- */

/* Wrapper reasons that only say "a lower layer failed": never the most useful one. */
static inline int generic_reason(unsigned long e)
{
    int r = ERR_GET_REASON(e);
    return r == ERR_R_ASN1_LIB || r == ERR_R_PEM_LIB || r == ERR_R_X509_LIB
           || r == ERR_R_EVP_LIB || r == ERR_R_NESTED_ASN1_ERROR;
}

/*
 * The most telling reason OpenSSL queued for the last failure (the newest one
 * that is not a generic wrapper), or our own words from load_key; empties the
 * queue for the next call.
 */
static inline const char *ssl_reason(char *buf, size_t n)
{
    unsigned long e, best = 0;
    const char *data;
    int flags;
    snprintf(buf, n, "unknown error");
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        if (best && generic_reason(e) && !generic_reason(best))
            continue;
        best = e;
        const char *r = ERR_reason_error_string(e);
        if (ERR_GET_LIB(e) == ERR_LIB_USER && data && (flags & ERR_TXT_STRING))
            snprintf(buf, n, "%s", data);
        else if (r)
            snprintf(buf, n, "%s", r);
        else
            ERR_error_string_n(e, buf, n);
    }
    return buf;
}

/* nil, "<op>: <what>: <openssl reason> (<obj>)", code */
static inline int fail_ssl(lua_State *L, const char *code, const char *op, const char *what,
                    const char *obj)
{
    char reason[256];
    ssl_reason(reason, sizeof reason);
    return er_fail(L, code, "%s: %s: %s (%s)", op, what, reason, obj);
}

/* ---- PEM in and out --------------------------------------------------- */

/* Never prompt on the terminal for an encrypted key: that would block a run. */
static inline int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static inline BIO *pem_bio(const char *pem, size_t len)
{
    return BIO_new_mem_buf(pem, (int)len); /* read-only view, no copy */
}

static inline EVP_PKEY *load_key(const char *pem, size_t len)
{
    BIO *b = pem_bio(pem, len);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    /* The decoder only says "unsupported": tell the user which of the usual mistakes it is. */
    unsigned long e = ERR_peek_last_error();
    if (k)
        return k;
    if (memmem(pem, len, "ENCRYPTED", 9)) {
        ERR_clear_error();
        ERR_raise_data(ERR_LIB_USER, 1, "the key is encrypted: its passphrase is needed");
    } else if (ERR_GET_LIB(e) == ERR_LIB_OSSL_DECODER && ERR_GET_REASON(e) == ERR_R_UNSUPPORTED) {
        ERR_clear_error();
        if (!memmem(pem, len, "-----BEGIN ", 11))
            ERR_raise(ERR_LIB_PEM, PEM_R_NO_START_LINE);
        else
            ERR_raise_data(ERR_LIB_USER, 1, "no private key in the PEM data");
    }
    return k;
}

static inline X509 *load_cert(const char *pem, size_t len)
{
    BIO *b = pem_bio(pem, len);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    return x;
}

static inline X509_REQ *load_csr(const char *pem, size_t len)
{
    BIO *b = pem_bio(pem, len);
    X509_REQ *r = b ? PEM_read_bio_X509_REQ(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    return r;
}

/* Push a memory BIO's contents as a string. */
static inline void push_bio(lua_State *L, BIO *b)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    lua_pushlstring(L, p ? p : "", n > 0 ? (size_t)n : 0);
}

/* A required PEM string option; raises when absent. */
static inline const char *opt_pem(lua_State *L, int idx, const char *key, const char *fname,
                                  size_t *len)
{
    const char *s = er_opt_string(L, idx, key, NULL);
    if (!s)
        luaL_error(L, "%s: option '%s' is required", fname, key);
    *len = strlen(s);
    if (*len > INT_MAX)
        luaL_error(L, "%s: option '%s' is too large", fname, key);
    return s;
}

/* A positional PEM string argument. */
static inline const char *arg_pem(lua_State *L, int arg, size_t *len)
{
    const char *s = luaL_checklstring(L, arg, len);
    luaL_argcheck(L, *len <= INT_MAX, arg, "too large");
    return s;
}

/* The CN of a name for messages, else its one-line form. */
static inline const char *name_label(const X509_NAME *name, char *buf, size_t n)
{
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    buf[0] = '\0';
    if (i >= 0) {
        unsigned char *u = NULL;
        int len = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
        if (len >= 0)
            snprintf(buf, n, "%.*s", len, (const char *)u);
        OPENSSL_free(u);
    }
    if (!buf[0])
        X509_NAME_oneline(name, buf, (int)n);
    return buf;
}

#endif
