/*
 * http.c: the http primitive (libcurl): stream a URL to a file while
 * hashing it, and make small requests (the etcd /health check over mutual
 * TLS). Mechanism only: retries, checksum policy, the cache and atomic
 * placement live in lua/etcdrun/http.lua.
 *
 * TLS peers are verified unless insecure=true is passed. cert/key/ca take
 * a file path or the PEM text itself (anything starting "-----BEGIN"),
 * handed to libcurl as blobs without copying. Proxy variables (http_proxy,
 * https_proxy, no_proxy) are honoured as libcurl does by default. A
 * redirect may only go to http(s), and never from https down to http.
 * Every transfer has connect and total timeouts and stops on Ctrl-C
 * (er_interrupted) with code "EINTR".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "etcdrun.h"

#define MSG_MAX 1024
#define HDRS_MAX (256 * 1024)
#define PROGRESS_MIN (1024 * 1024)

/* Options shared by fetch and request, read before any resource exists so
 * a misuse error cannot leak a handle. Strings point into the options
 * table, which stays on the stack for the whole call. */
typedef struct {
    double connect_timeout, timeout;
    lua_Integer stall_timeout, max_bytes;
    int insecure, follow;
    const char *ca, *cert, *key;
    size_t ca_len, cert_len, key_len;
} tls_opts;

typedef struct {
    CURL *curl;
    int fd;                     /* fetch: the destination; request: -1 */
    EVP_MD_CTX *md;
    curl_off_t bytes, max_bytes;
    char *body;                 /* request: the response body */
    size_t body_len, body_cap;
    char *hdrs;                 /* raw header lines of the last response */
    size_t hdrs_len, hdrs_cap;
    char reason[128];
    int http_failed, too_big, write_errno, interrupted;
    int progress;               /* 0 off, 1 auto (TTY and large), 2 always */
    int bar_drawn;
    double last_draw;
    const char *label;
} xfer;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double opt_number(lua_State *L, int idx, const char *fname, const char *key, double def)
{
    double v = def;
    if (!lua_istable(L, idx))
        return def;
    lua_getfield(L, idx, key);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s: option '%s' must be a number", fname, key);
        v = lua_tonumber(L, -1);
        if (!(v >= 0))
            luaL_error(L, "%s: option '%s' must not be negative", fname, key);
        if (v > ER_NO_TIMEOUT_S) /* math.huge: no limit, never an inf cast to long */
            v = ER_NO_TIMEOUT_S;
    }
    lua_pop(L, 1);
    return v;
}

/* A string option, with its length (PEM blobs may be large). */
static const char *opt_lstring(lua_State *L, int idx, const char *fname, const char *key,
                               size_t *len)
{
    const char *s = NULL;
    *len = 0;
    if (!lua_istable(L, idx))
        return NULL;
    lua_getfield(L, idx, key);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option '%s' must be a string", fname, key);
        s = lua_tolstring(L, -1, len);
    }
    lua_pop(L, 1);              /* still referenced by the options table */
    return s;
}

static int is_pem(const char *s)
{
    return strncmp(s, "-----BEGIN", 10) == 0;
}

static void read_tls_opts(lua_State *L, int idx, const char *fname, tls_opts *o,
                          double timeout, int follow, lua_Integer max_bytes)
{
    o->connect_timeout = opt_number(L, idx, fname, "connect_timeout", 10);
    o->timeout = opt_number(L, idx, fname, "timeout", timeout);
    o->stall_timeout = er_opt_integer(L, idx, "stall_timeout", 0);
    o->max_bytes = er_opt_integer(L, idx, "max_bytes", max_bytes);
    o->insecure = er_opt_boolean(L, idx, "insecure", 0);
    o->follow = er_opt_boolean(L, idx, "follow", follow);
    o->ca = opt_lstring(L, idx, fname, "ca", &o->ca_len);
    o->cert = opt_lstring(L, idx, fname, "cert", &o->cert_len);
    o->key = opt_lstring(L, idx, fname, "key", &o->key_len);
    /* a file name is a C string: a NUL inside would name another file */
    const char *paths[] = {o->ca, o->cert, o->key};
    size_t lens[] = {o->ca_len, o->cert_len, o->key_len};
    for (int i = 0; i < 3; i++)
        if (paths[i] && !is_pem(paths[i]) && strlen(paths[i]) != lens[i])
            luaL_error(L, "%s: option '%s' contains a NUL byte", fname,
                       i == 0 ? "ca" : i == 1 ? "cert" : "key");
    if (o->stall_timeout < 0 || o->max_bytes < 0)
        luaL_error(L, "%s: options 'stall_timeout' and 'max_bytes' must not be negative", fname);
}


/* Path or PEM text for one of the three TLS file options. */
static void set_tls_source(CURL *c, CURLoption path_opt, CURLoption blob_opt,
                           const char *s, size_t len)
{
    if (s == NULL)
        return;
    if (is_pem(s)) {
        struct curl_blob blob = {(void *)s, len, CURL_BLOB_NOCOPY};
        curl_easy_setopt(c, blob_opt, &blob);
    } else {
        curl_easy_setopt(c, path_opt, s);
    }
}

/* Drop user:password@ from a URL shown in a message. */
static const char *redact(char *buf, size_t size, const char *url)
{
    const char *scheme = strstr(url, "://");
    snprintf(buf, size, "%s", url);
    if (scheme != NULL) {
        const char *host = scheme + 3;
        const char *end = host + strcspn(host, "/?#");
        const char *at = memchr(host, '@', (size_t)(end - host));
        if (at != NULL)
            snprintf(buf, size, "%.*s***%s", (int)(host - url), url, at);
    }
    return buf;
}

static void draw_bar(xfer *x, curl_off_t total, curl_off_t now, int final)
{
    char line[160];
    double mib = (double)now / 1048576.0;
    int n;
    if (total > 0) {
        int pct = (int)((double)now * 100.0 / (double)total);
        char bar[31];
        int fill = pct * 30 / 100;
        if (pct > 100)
            pct = 100, fill = 30;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(30 - fill));
        bar[30] = '\0';
        n = snprintf(line, sizeof line, "\r%-24.24s [%s] %3d%% %.1f/%.1f MiB%s", x->label, bar,
                     pct, mib, (double)total / 1048576.0, final ? "\n" : "");
    } else {
        n = snprintf(line, sizeof line, "\r%-24.24s %.1f MiB%s", x->label, mib,
                     final ? "\n" : "");
    }
    if (n > 0 && write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) < 0)
        x->progress = 0;        /* stderr gone: stop drawing, keep downloading */
    x->bar_drawn = 1;
}

/* Checks Ctrl-C and draws the progress bar; never calls into Lua. */
static int on_progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    xfer *x = p;
    (void)ultotal, (void)ulnow;
    if (er_interrupted()) {
        x->interrupted = 1;
        return 1;
    }
    if (x->progress == 0 || x->http_failed)
        return 0;
    if (x->progress == 1 && !x->bar_drawn && dltotal <= PROGRESS_MIN && dlnow <= PROGRESS_MIN)
        return 0;
    double t = now_seconds();
    if (t - x->last_draw >= 0.1) {
        x->last_draw = t;
        draw_bar(x, dltotal, dlnow, 0);
    }
    return 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *p)
{
    xfer *x = p;
    size_t len = size * n;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (redirect, 100-continue): forget the previous one. */
        const char *sp = memchr(data, ' ', len);
        x->hdrs_len = 0;
        x->reason[0] = '\0';
        if (sp != NULL && (size_t)(sp - data) + 5 < len) {
            const char *r = sp + 5;
            size_t rl = len - (size_t)(r - data);
            while (rl > 0 && (r[rl - 1] == '\r' || r[rl - 1] == '\n'))
                rl--;
            if (rl >= sizeof x->reason)
                rl = sizeof x->reason - 1;
            memcpy(x->reason, r, rl);
            x->reason[rl] = '\0';
        }
    }
    if (x->hdrs_len + len > HDRS_MAX)
        return 0;
    if (x->hdrs_len + len > x->hdrs_cap) {
        size_t cap = x->hdrs_cap ? x->hdrs_cap * 2 : 4096;
        while (cap < x->hdrs_len + len)
            cap *= 2;
        char *h = realloc(x->hdrs, cap);
        if (h == NULL)
            return 0;
        x->hdrs = h;
        x->hdrs_cap = cap;
    }
    memcpy(x->hdrs + x->hdrs_len, data, len);
    x->hdrs_len += len;
    return len;
}

static size_t on_data(char *data, size_t size, size_t n, void *p)
{
    xfer *x = p;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    if (x->fd >= 0 && status >= 400) {
        x->http_failed = 1;     /* an error page is not the artifact */
        return 0;
    }
    if (x->max_bytes > 0 && x->bytes + (curl_off_t)len > x->max_bytes) {
        x->too_big = 1;
        return 0;
    }
    if (x->fd >= 0) {
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(x->fd, data + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                x->write_errno = errno;
                return 0;
            }
            off += (size_t)w;
        }
        EVP_DigestUpdate(x->md, data, len);
    } else {
        if (x->body_len + len > x->body_cap) {
            size_t cap = x->body_cap ? x->body_cap * 2 : 16384;
            while (cap < x->body_len + len)
                cap *= 2;
            char *b = realloc(x->body, cap);
            if (b == NULL) {
                x->write_errno = ENOMEM;
                return 0;
            }
            x->body = b;
            x->body_cap = cap;
        }
        memcpy(x->body + x->body_len, data, len);
        x->body_len += len;
    }
    x->bytes += (curl_off_t)len;
    return len;
}

static void setup(CURL *c, xfer *x, const char *url, const tls_opts *o)
{
    x->curl = c;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "etcdrun/" ETCDRUN_VERSION);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* main.c ignores SIGPIPE */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR,
                     strncasecmp(url, "https:", 6) == 0 ? "https" : "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, (long)o->follow);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(o->connect_timeout * 1000) + 1);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(o->timeout * 1000) + 1);
    if (o->stall_timeout > 0) {
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)o->stall_timeout);
    }
    if (o->max_bytes > 0)
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
    set_tls_source(c, CURLOPT_CAINFO, CURLOPT_CAINFO_BLOB, o->ca, o->ca_len);
    set_tls_source(c, CURLOPT_SSLCERT, CURLOPT_SSLCERT_BLOB, o->cert, o->cert_len);
    set_tls_source(c, CURLOPT_SSLKEY, CURLOPT_SSLKEY_BLOB, o->key, o->key_len);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    x->max_bytes = (curl_off_t)o->max_bytes;
}

static const char *curl_code(CURL *c, CURLcode rc)
{
    long oserr = 0;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
        return oserr != 0 && oserr != ECONNREFUSED ? er_errno_code((int)oserr) : "ECONNREFUSED";
    case CURLE_OPERATION_TIMEDOUT:
        return "ETIMEDOUT";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "ERESOLVE";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return "ETLS";
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return "ECONNRESET";
    case CURLE_FILE_COULDNT_READ_FILE:
        return "ENOENT";
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return "EURL";
    case CURLE_TOO_MANY_REDIRECTS:
        return "EREDIRECT";
    case CURLE_FILESIZE_EXCEEDED:
        return "ETOOBIG";
    case CURLE_OUT_OF_MEMORY:
        return "ENOMEM";
    default:
        return "ECURL";
    }
}

/*
 * Turn the outcome of a transfer into a message and code. Returns NULL on
 * success. HTTP statuses >= 400 fail only when fail_http is set (fetch).
 */
static const char *outcome(xfer *x, CURLcode rc, const char *errbuf, int fail_http,
                           char *msg, size_t size)
{
    long status = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    if (x->interrupted) {
        snprintf(msg, size, "interrupted");
        return "EINTR";
    }
    if (fail_http && (x->http_failed || (rc == CURLE_OK && status >= 400))) {
        snprintf(msg, size, "HTTP %ld%s%s", status, x->reason[0] ? " " : "", x->reason);
        return "EHTTP";
    }
    if (x->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(msg, size, "response larger than max_bytes (%lld bytes)",
                 (long long)x->max_bytes);
        return "ETOOBIG";
    }
    if (x->write_errno != 0) {
        snprintf(msg, size, "cannot store the response: %s", strerror(x->write_errno));
        return er_errno_code(x->write_errno);
    }
    if (rc != CURLE_OK) {
        snprintf(msg, size, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return curl_code(x->curl, rc);
    }
    return NULL;
}

static void xfer_free(xfer *x)
{
    if (x->curl != NULL)
        curl_easy_cleanup(x->curl);
    if (x->md != NULL)
        EVP_MD_CTX_free(x->md);
    if (x->fd >= 0)
        close(x->fd);
    free(x->body);
    free(x->hdrs);
    memset(x, 0, sizeof *x);
    x->fd = -1;
}

static const char *basename_of(const char *url)
{
    const char *end = url + strcspn(url, "?#");
    const char *b = end;
    while (b > url && b[-1] != '/')
        b--;
    return b;
}

/* http.fetch(url, dest, {connect_timeout=10, timeout=600, stall_timeout=, max_bytes=,
 *            insecure=, follow=true, ca=, cert=, key=, mode=, exclusive=, progress=, name=})
 *   -> {status=, bytes=, sha256=, content_type=, url=} | nil, err, code[, status]
 * dest is created (exclusive=true: must not exist) or truncated, and removed on any
 * failure, so a caller that must keep an old copy fetches to a temporary name (http.lua).
 * progress: nil draws a bar on stderr when it is a TTY and the body exceeds 1 MiB. */
static int l_fetch(lua_State *L)
{
    static const char *const known[] = {
        "connect_timeout", "timeout", "stall_timeout", "max_bytes", "insecure", "follow",
        "ca", "cert", "key", "mode", "exclusive", "progress", "name", NULL};
    size_t url_len;
    const char *url = luaL_checklstring(L, 1, &url_len);
    if (strlen(url) != url_len)
        return luaL_error(L, "http.fetch: the URL contains a NUL byte");
    const char *dest = er_checkpath(L, 2, "http.fetch");
    char errbuf[CURL_ERROR_SIZE] = "", msg[MSG_MAX], shown[512], label[64];
    const char *code = NULL;
    xfer x = {0};
    tls_opts o;
    CURLcode rc;
    int e;

    er_check_options(L, 3, "http.fetch", known);
    read_tls_opts(L, 3, "http.fetch", &o, 600, 1, 0);
    int mode = er_opt_mode(L, 3, "mode", -1, "http.fetch", dest);
    int exclusive = er_opt_boolean(L, 3, "exclusive", 0);
    const char *name = er_opt_string(L, 3, "name", NULL);
    x.progress = 1;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "progress");
        if (lua_isboolean(L, -1))
            x.progress = lua_toboolean(L, -1) ? 2 : 0;
        else if (!lua_isnil(L, -1))
            return luaL_error(L, "http.fetch: option 'progress' must be a boolean");
        lua_pop(L, 1);
    }
    if (x.progress == 1 && !isatty(2))
        x.progress = 0;
    snprintf(label, sizeof label, "%s", name ? name : basename_of(url));
    x.label = label;
    redact(shown, sizeof shown, url);

    x.fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (exclusive ? O_EXCL : 0),
                mode >= 0 ? 0600 : 0666);
    if (x.fd < 0) {
        e = errno;
        return er_fail(L, er_errno_code(e), "http.fetch: cannot create %s: %s (%s)", dest,
                       strerror(e), shown);
    }
    x.md = EVP_MD_CTX_new();
    x.curl = curl_easy_init();
    if (x.md == NULL || x.curl == NULL || !EVP_DigestInit_ex(x.md, EVP_sha256(), NULL)) {
        xfer_free(&x);
        unlink(dest);
        return er_fail(L, "ENOMEM", "http.fetch: out of memory (%s)", shown);
    }
    setup(x.curl, &x, url, &o);
    curl_easy_setopt(x.curl, CURLOPT_ERRORBUFFER, errbuf);
    rc = curl_easy_perform(x.curl);
    if (x.progress && (x.bar_drawn || (x.progress == 2 && rc == CURLE_OK))) {
        curl_off_t total = -1;
        curl_easy_getinfo(x.curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &total);
        draw_bar(&x, total, x.bytes, 1);
    }
    code = outcome(&x, rc, errbuf, 1, msg, sizeof msg);
    if (code == NULL && fsync(x.fd) != 0) {
        snprintf(msg, sizeof msg, "cannot sync %s: %s", dest, strerror(errno));
        code = er_errno_code(errno);
    }
    if (code == NULL && mode >= 0 && fchmod(x.fd, (mode_t)mode) != 0) {
        snprintf(msg, sizeof msg, "cannot chmod %s: %s", dest, strerror(errno));
        code = er_errno_code(errno);
    }
    if (code == NULL) {
        e = close(x.fd);
        x.fd = -1;
        if (e != 0) {
            snprintf(msg, sizeof msg, "cannot close %s: %s", dest, strerror(errno));
            code = er_errno_code(errno);
        }
    }
    if (code != NULL) {
        long status = 0;
        curl_easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, &status);
        xfer_free(&x);
        unlink(dest);           /* never leave a partial or error page behind */
        er_fail(L, code, "http.fetch: %s (%s)", msg, shown);
        lua_pushinteger(L, status);
        return 4;
    }

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    long status = 0;
    char *ctype = NULL, *eff = NULL;
    EVP_DigestFinal_ex(x.md, md, &mdlen);
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[2 * mdlen] = '\0';
    curl_easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x.curl, CURLINFO_CONTENT_TYPE, &ctype);
    curl_easy_getinfo(x.curl, CURLINFO_EFFECTIVE_URL, &eff);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, (lua_Integer)x.bytes);
    lua_setfield(L, -2, "bytes");
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "sha256");
    if (ctype != NULL) {
        lua_pushstring(L, ctype);
        lua_setfield(L, -2, "content_type");
    }
    lua_pushstring(L, redact(shown, sizeof shown, eff ? eff : url));
    lua_setfield(L, -2, "url");
    xfer_free(&x);
    return 1;
}

/* Request headers: {["Name"]="value"} and/or {"Name: value", ...}. */
static struct curl_slist *read_headers(lua_State *L, int idx)
{
    struct curl_slist *list = NULL, *next;
    if (!lua_istable(L, idx))
        return NULL;
    lua_getfield(L, idx, "headers");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        const char *line;
        if (lua_type(L, -1) != LUA_TSTRING
            || (lua_type(L, -2) != LUA_TSTRING && !lua_isinteger(L, -2))) {
            curl_slist_free_all(list);
            luaL_error(L, "http.request: headers must map names to strings");
        }
        if (lua_type(L, -2) == LUA_TSTRING)
            line = lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
        else
            line = lua_pushstring(L, lua_tostring(L, -1));
        if (strpbrk(line, "\r\n") != NULL) {
            curl_slist_free_all(list);
            luaL_error(L, "http.request: header holds a line break");
        }
        next = curl_slist_append(list, line);
        if (next == NULL) {
            curl_slist_free_all(list);
            luaL_error(L, "http.request: out of memory");
        }
        list = next;
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    return list;
}

/* Headers of the final response as {lower-case name = value}; repeats are
 * joined with ", " as RFC 9110 allows. */
static void push_headers(lua_State *L, const char *h, size_t len)
{
    const char *end = h + len;
    lua_newtable(L);
    while (h < end) {
        const char *eol = memchr(h, '\n', (size_t)(end - h));
        const char *next = eol ? eol + 1 : end;
        const char *colon;
        if (eol == NULL)
            eol = end;
        while (eol > h && (eol[-1] == '\r' || eol[-1] == '\n'))
            eol--;
        colon = memchr(h, ':', (size_t)(eol - h));
        if (colon != NULL && colon > h && memcmp(h, "HTTP/", 5) != 0) {
            luaL_Buffer b;
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            luaL_buffinit(L, &b);
            for (const char *p = h; p < colon; p++)
                luaL_addchar(&b, (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
            luaL_pushresult(&b);
            lua_pushvalue(L, -1);
            if (lua_rawget(L, -3) == LUA_TSTRING) {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(eol - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(eol - v));
            }
            lua_rawset(L, -3);
        }
        h = next;
    }
}

/* http.request{url=, method="GET", body=, headers=, cert=, key=, ca=, insecure=,
 *              connect_timeout=10, timeout=30, max_bytes=16 MiB, follow=false}
 *   -> {status=, headers={name=value}, body=, url=} | nil, err, code
 * Any HTTP status is a result here; the caller decides what is a failure. */
/* The chain the server presented, leaf first, as PEM strings in the
 * table on top of the stack's field "peer_certs" (certinfo = true). */
static void push_peer_certs(lua_State *L, CURL *curl)
{
    struct curl_certinfo *ci = NULL;
    lua_newtable(L);
    if (curl_easy_getinfo(curl, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci != NULL) {
        for (int i = 0; i < ci->num_of_certs; i++) {
            for (struct curl_slist *f = ci->certinfo[i]; f != NULL; f = f->next) {
                if (strncmp(f->data, "Cert:", 5) == 0) {
                    lua_pushstring(L, f->data + 5);
                    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
                }
            }
        }
    }
    lua_setfield(L, -2, "peer_certs");
}

static int l_request(lua_State *L)
{
    static const char *const known[] = {
        "url", "method", "body", "headers", "connect_timeout", "timeout", "stall_timeout",
        "max_bytes", "insecure", "follow", "ca", "cert", "key", "certinfo", NULL};
    char errbuf[CURL_ERROR_SIZE] = "", msg[MSG_MAX], shown[512];
    const char *code;
    struct curl_slist *hdrs;
    size_t body_len = 0;
    xfer x = {0};
    tls_opts o;
    CURLcode rc;

    luaL_checktype(L, 1, LUA_TTABLE);
    er_check_options(L, 1, "http.request", known);
    const char *url = er_opt_string(L, 1, "url", NULL);
    if (url != NULL) {
        lua_getfield(L, 1, "url");
        if (strlen(url) != lua_rawlen(L, -1))
            return luaL_error(L, "http.request: the URL contains a NUL byte");
        lua_pop(L, 1);
    }
    const char *body = opt_lstring(L, 1, "http.request", "body", &body_len);
    const char *method = er_opt_string(L, 1, "method", body ? "POST" : "GET");
    if (url == NULL)
        return luaL_error(L, "http.request: option 'url' is required");
    if (method[0] == '\0' || method[strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")] != '\0')
        return luaL_error(L, "http.request: option 'method' must be an upper-case token");
    read_tls_opts(L, 1, "http.request", &o, 30, 0, 16 * 1024 * 1024);
    int certinfo = er_opt_boolean(L, 1, "certinfo", 0);
    hdrs = read_headers(L, 1);  /* last: it owns memory from here on */
    x.fd = -1;
    redact(shown, sizeof shown, url);

    if ((x.curl = curl_easy_init()) == NULL) {
        curl_slist_free_all(hdrs);
        return er_fail(L, "ENOMEM", "http.request: out of memory (%s)", shown);
    }
    setup(x.curl, &x, url, &o);
    curl_easy_setopt(x.curl, CURLOPT_ERRORBUFFER, errbuf);
    if (hdrs != NULL)
        curl_easy_setopt(x.curl, CURLOPT_HTTPHEADER, hdrs);
    if (certinfo) {
        /* the handshake is the point; etcd's peer port answers HTTP/1.1
         * plainly but cuts an HTTP/2 GET short */
        curl_easy_setopt(x.curl, CURLOPT_CERTINFO, 1L);
        curl_easy_setopt(x.curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(x.curl, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0 || body != NULL) {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(x.curl, CURLOPT_CUSTOMREQUEST, method);
        if (body != NULL || strcmp(method, "POST") == 0) {
            curl_easy_setopt(x.curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            curl_easy_setopt(x.curl, CURLOPT_POSTFIELDS, body ? body : "");
        }
    }
    rc = curl_easy_perform(x.curl);
    code = outcome(&x, rc, errbuf, 0, msg, sizeof msg);
    curl_slist_free_all(hdrs);
    if (code != NULL) {
        xfer_free(&x);
        return er_fail(L, code, "http.request: %s (%s)", msg, shown);
    }
    long status = 0;
    char *eff = NULL;
    curl_easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x.curl, CURLINFO_EFFECTIVE_URL, &eff);
    /* Copy what Lua needs so that an allocation error cannot leak x. */
    lua_createtable(L, 0, 4);
    lua_pushstring(L, redact(shown, sizeof shown, eff ? eff : url));
    lua_setfield(L, -2, "url");
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    if (certinfo)
        push_peer_certs(L, x.curl);
    {
        char *b = x.body, *h = x.hdrs;
        size_t bl = x.body_len, hl = x.hdrs_len;
        x.body = x.hdrs = NULL;
        curl_easy_cleanup(x.curl);
        x.curl = NULL;
        /* lua_pushlstring may raise only on OOM; accept that narrow leak
         * rather than juggling a userdata for two buffers. */
        lua_pushlstring(L, b ? b : "", bl);
        free(b);
        lua_setfield(L, -2, "body");
        push_headers(L, h ? h : "", hl);
        free(h);
        lua_setfield(L, -2, "headers");
    }
    return 1;
}

/* http.sleep(seconds) -> true | nil, err, "EINTR" (the retry policy's backoff; Ctrl-C ends it) */
static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    if (!(s >= 0 && s <= 3600))
        return luaL_error(L, "http.sleep: seconds must be within 0..3600");
    double end = now_seconds() + s;
    for (;;) {
        double left = end - now_seconds();
        if (er_interrupted())
            return er_fail(L, "EINTR", "http.sleep: interrupted (%g s)", s);
        if (left <= 0)
            break;
        if (left > 0.05)
            left = 0.05;
        struct timespec ts = {0, (long)(left * 1e9)};
        nanosleep(&ts, NULL);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* curl_global_init is done once by main.c, before any thread exists. */
int luaopen_etcdrun_core_http(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"fetch", l_fetch},
        {"request", l_request},
        {"sleep", l_sleep},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
