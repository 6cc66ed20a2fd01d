/*
 * archive.c: the archive primitive (libarchive): list, digest and safely
 * extract tar (plain, gzip, xz, bzip2, zstd) and zip archives. Reading and
 * the selection and path rules (ar_select) are here; hashing what extract
 * would write, writing nothing, is archive-digest.c; writing the entries
 * under the target is archive-extract.c, whose header gives the safety
 * model: every path resolved from the target's fd with *at() calls and
 * O_NOFOLLOW (the working directory of the process is never
 * changed: SSH worker threads resolve relative paths against it), nothing
 * written through a symlink, no link resolving outside the target, a limit
 * on the expanded size (max_bytes, 4 GiB by default; sparse files count
 * their declared size) and on the number of entries (max_entries, 100000),
 * and on failure everything the call created is removed again.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "etcdrun.h"

#include "archive-internal.h"

void ar_sv_free(strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = sv->cap = 0;
}

int ar_sv_push(strvec *sv, const char *s)
{
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 16;
        char **v = realloc(sv->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        sv->v = v;
        sv->cap = cap;
    }
    if ((sv->v[sv->n] = strdup(s)) == NULL)
        return -1;
    sv->n++;
    return 0;
}

const char *ar_printable(char *buf, size_t size, const char *s)
{
    size_t i = 0;
    for (; s && *s && i + 4 < size; s++)
        buf[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    if (s && *s)
        buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
    buf[i] = '\0';
    return buf;
}

void ar_fail(failure *f, const char *code, const char *fmt, const char *a, const char *b)
{
    char pa[256], pb[256];
    snprintf(f->msg, sizeof f->msg, fmt, ar_printable(pa, sizeof pa, a),
             ar_printable(pb, sizeof pb, b));
    f->code = code;
}

int ar_may_read(long long n, const extract_opts *o, failure *f)
{
    if (n > o->max_entries) {
        char num[64];
        snprintf(num, sizeof num, "%lld", o->max_entries);
        ar_fail(f, "EFBIG", "archive holds more than %s entries (max_entries)%s", num, "");
        return -1;
    }
    if (er_interrupted()) {
        ar_fail(f, "EINTR", "interrupted%s%s", "", "");
        return -1;
    }
    return 0;
}

int ar_read_done(struct archive *in, int r, const extract_opts *o, failure *f)
{
    if (r != ARCHIVE_EOF) {
        ar_fail(f, "EARCHIVE", "%s%s", archive_error_string(in), "");
        return -1;
    }
    for (size_t i = 0; i < o->include.n; i++) {
        if (!o->hits[i]) {
            ar_fail(f, "ENOENT", "no entry matches '%s'%s", o->include.v[i], "");
            return -1;
        }
    }
    return 0;
}

static const char *entry_type(struct archive_entry *e)
{
    if (archive_entry_hardlink(e) != NULL)
        return "hardlink";
    switch (archive_entry_filetype(e)) {
    case AE_IFREG: return "file";
    case AE_IFDIR: return "dir";
    case AE_IFLNK: return "symlink";
    case AE_IFIFO: return "fifo";
    case AE_IFCHR: return "chardev";
    case AE_IFBLK: return "blockdev";
    case AE_IFSOCK: return "socket";
    default: return "unknown";
    }
}

/* Normalise an archive path: drop "." and empty components, then strip
 * `strip` leading components. Returns 1 and the rest in out (possibly ""
 * when the entry is consumed by stripping), 0 when the path is absolute or
 * holds "..". out must hold strlen(path)+1 bytes. */
static int normalise(const char *path, int strip, char *out)
{
    const char *p = path;
    size_t o = 0;
    if (*p == '/')
        return 0;
    while (*p) {
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - s);
        if (*p == '/')
            p++;
        if (len == 0 || (len == 1 && s[0] == '.'))
            continue;
        if (len == 2 && s[0] == '.' && s[1] == '.')
            return 0;
        if (strip > 0) {
            strip--;
            continue;
        }
        if (o > 0)
            out[o++] = '/';
        memcpy(out + o, s, len);
        o += len;
    }
    out[o] = '\0';
    return 1;
}

/* A symlink at rel (normalised) pointing at target stays inside the root? */
static int symlink_safe(const char *rel, const char *target)
{
    int ups = 0, named = 0, depth = 1;
    for (const char *r = rel; *r; r++)
        depth += *r == '/';
    const char *p = target;
    if (*p == '\0' || *p == '/')
        return 0;
    while (*p) {
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - s);
        if (*p == '/')
            p++;
        if (len == 0 || (len == 1 && s[0] == '.'))
            continue;
        if (len == 2 && s[0] == '.' && s[1] == '.') {
            if (named)
                return 0;
            ups++;
        } else {
            named = 1;
        }
    }
    return ups <= depth - 1;
}

static int match_include(const extract_opts *o, const char *rel)
{
    int any = 0;
    for (size_t i = 0; i < o->include.n; i++) {
        if (strcmp(o->include.v[i], rel) == 0
            || fnmatch(o->include.v[i], rel, FNM_PATHNAME) == 0) {
            o->hits[i] = 1;
            any = 1;
        }
    }
    return any;
}

static const char *entry_kind(struct archive_entry *e)
{
    switch (archive_entry_filetype(e)) {
    case AE_IFIFO: return "fifo";
    case AE_IFCHR: return "chardev";
    case AE_IFBLK: return "blockdev";
    case AE_IFSOCK: return "socket";
    default: return "special file";
    }
}

int ar_select(struct archive_entry *e, const extract_opts *o, ar_selected *s, failure *f)
{
    const char *raw = archive_entry_pathname(e);
    s->hard = archive_entry_hardlink(e);
    s->target = archive_entry_symlink(e);
    s->type = archive_entry_filetype(e);
    s->buf = s->src = NULL;
    if (raw == NULL) {
        ar_fail(f, "EARCHIVE", "entry with an unreadable name%s%s", "", "");
        return -1;
    }
    size_t need = strlen(raw) + (s->hard ? strlen(s->hard) : 0) + 2;
    if ((s->buf = malloc(3 * need)) == NULL) {
        ar_fail(f, "ENOMEM", "out of memory%s%s", "", "");
        return -1;
    }
    s->name = s->buf, s->rel = s->buf + need;
    char *src = s->buf + 2 * need;
    memcpy(s->name, raw, strlen(raw) + 1);

    if (!normalise(s->name, 0, s->rel)) {
        ar_fail(f, "EUNSAFE", "entry '%s' escapes the target directory%s", s->name, "");
        goto refused;
    }
    normalise(s->name, o->strip, s->rel);
    if (*s->rel == '\0' || (o->include.n > 0 && !match_include(o, s->rel))) {
        free(s->buf);
        s->buf = NULL;
        return 0;
    }
    if (s->hard == NULL && s->type != AE_IFREG && s->type != AE_IFDIR && s->type != AE_IFLNK) {
        ar_fail(f, "EUNSUPPORTED", "entry '%s' is a %s; only files, directories and links "
                "are extracted", s->name, entry_kind(e));
        goto refused;
    }
    if (s->hard != NULL) {
        if (!normalise(s->hard, 0, src)) {
            ar_fail(f, "EUNSAFE", "entry '%s' is a hard link to '%s' outside the target "
                    "directory", s->name, s->hard);
            goto refused;
        }
        normalise(s->hard, o->strip, src);
        if (*src == '\0') {
            ar_fail(f, "EUNSAFE", "entry '%s' is a hard link to '%s', which is not a file "
                    "extracted from this archive", s->name, s->hard);
            goto refused;
        }
        s->src = src;
    } else if (s->type == AE_IFLNK && (s->target == NULL || !symlink_safe(s->rel, s->target))) {
        ar_fail(f, "EUNSAFE", "entry '%s' is a symlink to '%s' outside the target "
                "directory", s->name, s->target ? s->target : "");
        goto refused;
    }
    return 1;
refused:
    free(s->buf);
    s->buf = NULL;
    return -1;
}

static struct archive *open_reader(const char *path, int *rc)
{
    struct archive *a = archive_read_new();
    if (a == NULL)
        return NULL;
    /* A deliberate short list: no external-program filters, no exotic formats. */
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    archive_read_support_format_zip(a);
    *rc = archive_read_open_filename(a, path, 64 * 1024);
    return a;
}

/* Common prologue: stat the archive (ENOENT and friends are reported as
 * such, not as a format error) and open it. */
static struct archive *prologue(lua_State *L, const char *op, const char *path,
                                const char *object, struct stat *st, int *nret)
{
    struct archive *a;
    int rc = ARCHIVE_FATAL;
    if (stat(path, st) != 0) {
        *nret = er_fail_errno(L, op, object, errno);
        return NULL;
    }
    if (S_ISDIR(st->st_mode)) {
        *nret = er_fail_errno(L, op, object, EISDIR);
        return NULL;
    }
    a = open_reader(path, &rc);
    if (a == NULL) {
        *nret = er_fail(L, "ENOMEM", "%s: out of memory (%s)", op, object);
        return NULL;
    }
    if (rc != ARCHIVE_OK) {
        int e = archive_errno(a);
        if (e == EACCES || e == EPERM)
            *nret = er_fail_errno(L, op, object, e);
        else
            *nret = er_fail(L, "EARCHIVE", "%s: %s (%s)", op, archive_error_string(a), object);
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* archive.list(path, {name=}?)
 *   -> { {path=, type=, size=, mode=, mtime=, link=?}, ... } | nil, err, code */
static int l_list(lua_State *L)
{
    static const char *const known[] = {"name", NULL};
    const char *path = er_checkpath(L, 1, "archive.list");
    struct archive *a;
    struct archive_entry *e;
    struct stat st;
    int nret = 0, r, i = 0;

    er_check_options(L, 2, "archive.list", known);
    const char *object = er_opt_string(L, 2, "name", path);
    if ((a = prologue(L, "archive.list", path, object, &st, &nret)) == NULL)
        return nret;

    lua_newtable(L);
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const char *name = archive_entry_pathname(e);
        const char *link = archive_entry_hardlink(e);
        if (link == NULL && archive_entry_filetype(e) == AE_IFLNK)
            link = archive_entry_symlink(e);
        lua_createtable(L, 0, 6);
        lua_pushstring(L, name ? name : "");
        lua_setfield(L, -2, "path");
        lua_pushstring(L, entry_type(e));
        lua_setfield(L, -2, "type");
        lua_pushinteger(L, archive_entry_size_is_set(e) ? archive_entry_size(e) : 0);
        lua_setfield(L, -2, "size");
        lua_pushinteger(L, archive_entry_perm(e) & 07777);
        lua_setfield(L, -2, "mode");
        lua_pushinteger(L, (lua_Integer)archive_entry_mtime(e));
        lua_setfield(L, -2, "mtime");
        if (link != NULL) {
            lua_pushstring(L, link);
            lua_setfield(L, -2, "link");
        }
        lua_rawseti(L, -2, ++i);
    }
    if (r != ARCHIVE_EOF) {
        nret = er_fail(L, "EARCHIVE", "archive.list: %s (%s)", archive_error_string(a), object);
        archive_read_free(a);
        return nret;
    }
    archive_read_free(a);
    return 1;
}

/* mkdir -p with mode 0777 & ~umask; existing directories are fine. The
 * target is the caller's own path: symlinks in it are followed. */
static int mkdir_p(const char *path)
{
    char *buf = strdup(path);
    if (buf == NULL)
        return ENOMEM;
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                free(buf);
                return e;
            }
            if (c == '\0')
                break;
            *p = c;
        }
    }
    free(buf);
    return 0;
}

static void read_include(lua_State *L, int idx, strvec *inc, const char *fname)
{
    lua_getfield(L, idx, "include");
    int t = lua_type(L, -1);
    lua_Integer n = t == LUA_TSTRING ? 1 : t == LUA_TTABLE ? luaL_len(L, -1) : 0;
    if (t != LUA_TSTRING && t != LUA_TTABLE && t != LUA_TNIL)
        luaL_error(L, "%s: option 'include' must be a string or a table", fname);
    for (lua_Integer i = 1; i <= n; i++) {
        if (t == LUA_TTABLE)
            lua_rawgeti(L, -1, i);
        else
            lua_pushvalue(L, -1);
        size_t len = 0;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (s == NULL || strlen(s) != len) {
            ar_sv_free(inc);
            luaL_error(L, "%s: option 'include' must hold strings without NUL bytes", fname);
        }
        if (ar_sv_push(inc, s) != 0) {
            ar_sv_free(inc);
            luaL_error(L, "%s: out of memory", fname);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* archive.extract(path, dest, {strip_components=, include=, mode=, max_bytes=,
 *                 max_entries=, name=}?) -> { paths relative to dest } | nil, err, code
 * mode: "0644" or an integer, for every file; max_bytes: the total apparent
 * size of the files (default 4 GiB); max_entries (default 100000). */
static int l_extract(lua_State *L)
{
    static const char *const known[] = {"strip_components", "include", "mode", "max_bytes",
                                        "max_entries", "name", NULL};
    const char *path = er_checkpath(L, 1, "archive.extract");
    const char *dest = er_checkpath(L, 2, "archive.extract");
    extract_opts o = {0};
    strvec done = {0};
    failure f = {{0}, NULL};
    struct archive *in;
    struct stat st;
    int nret = 0, root, rc, e;

    er_check_options(L, 3, "archive.extract", known);
    lua_Integer strip = er_opt_integer(L, 3, "strip_components", 0);
    const char *object = er_opt_string(L, 3, "name", path);
    int mode = er_opt_mode(L, 3, "mode", -1, "archive.extract", object);
    lua_Integer max_bytes = er_opt_integer(L, 3, "max_bytes", AR_DEFAULT_MAX_BYTES);
    lua_Integer max_entries = er_opt_integer(L, 3, "max_entries", AR_DEFAULT_MAX_ENTRIES);
    if (strip < 0 || strip > 64)
        return luaL_error(L, "archive.extract: option 'strip_components' out of range");
    if (mode > 0777)
        return luaL_error(L, "archive.extract: option 'mode' must be within 0..0777 "
                          "(set-id bits are never restored) (%s)", object);
    if (max_bytes < 0 || max_entries < 0)
        return luaL_error(L, "archive.extract: options 'max_bytes' and 'max_entries' must "
                          "not be negative (%s)", object);
    o.strip = (int)strip;
    o.mode = mode;
    o.max_bytes = (long long)max_bytes;
    o.max_entries = (long long)max_entries;
    if (lua_istable(L, 3))
        read_include(L, 3, &o.include, "archive.extract");

    if ((in = prologue(L, "archive.extract", path, object, &st, &nret)) == NULL) {
        ar_sv_free(&o.include);
        return nret;
    }
    /* never overwrite the archive being read, should it live in dest */
    o.skip_dev = st.st_dev;
    o.skip_ino = st.st_ino;
    int made = stat(dest, &st) != 0; /* st is not needed past the skip file */
    if ((e = mkdir_p(dest)) != 0
        || (root = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        e = e ? e : errno;
        archive_read_free(in);
        ar_sv_free(&o.include);
        return er_fail_errno(L, "archive.extract", dest, e);
    }
    o.hits = calloc(o.include.n + 1, sizeof *o.hits);
    if (o.hits == NULL) {
        close(root);
        archive_read_free(in);
        ar_sv_free(&o.include);
        return er_fail(L, "ENOMEM", "archive.extract: out of memory (%s)", object);
    }
    rc = ar_extract_all(in, root, &o, &done, &f);
    close(root);
    archive_read_free(in);
    free(o.hits);
    ar_sv_free(&o.include);
    if (rc != 0) {
        if (made)
            rmdir(dest);        /* ours and empty again: nothing is left behind */
        ar_sv_free(&done);
        return er_fail(L, f.code, "archive.extract: %s (%s)", f.msg, object);
    }
    lua_createtable(L, (int)done.n, 0);
    for (size_t i = 0; i < done.n; i++) {
        lua_pushstring(L, done.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    ar_sv_free(&done);
    return 1;
}

static void push_digest(lua_State *L, const ar_digest *d)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, d->rel);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, d->type);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, d->mode);
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, d->size);
    lua_setfield(L, -2, "size");
    if (d->sha256[0] != '\0') {
        lua_pushstring(L, d->sha256);
        lua_setfield(L, -2, "sha256");
    }
    if (d->link != NULL) {
        lua_pushstring(L, d->link);
        lua_setfield(L, -2, "link");
    }
}

/* archive.digests(path, {strip_components=, include=, max_bytes=, max_entries=, name=}?)
 *   -> { {path=, type=, mode=, size=, sha256=?, link=?}, ... } | nil, err, code
 * What archive.extract with the same options would write, in archive order,
 * with each file's sha256; reads the archive, writes nothing (check mode's
 * answer to "which files would differ"). See archive-digest.c. */
static int l_digests(lua_State *L)
{
    static const char *const known[] = {"strip_components", "include", "max_bytes",
                                        "max_entries", "name", NULL};
    const char *path = er_checkpath(L, 1, "archive.digests");
    extract_opts o = {0};
    ar_digests out = {0};
    failure f = {{0}, NULL};
    struct archive *in;
    struct stat st;
    int nret = 0, rc;

    er_check_options(L, 2, "archive.digests", known);
    lua_Integer strip = er_opt_integer(L, 2, "strip_components", 0);
    const char *object = er_opt_string(L, 2, "name", path);
    lua_Integer max_bytes = er_opt_integer(L, 2, "max_bytes", AR_DEFAULT_MAX_BYTES);
    lua_Integer max_entries = er_opt_integer(L, 2, "max_entries", AR_DEFAULT_MAX_ENTRIES);
    if (strip < 0 || strip > 64)
        return luaL_error(L, "archive.digests: option 'strip_components' out of range");
    if (max_bytes < 0 || max_entries < 0)
        return luaL_error(L, "archive.digests: options 'max_bytes' and 'max_entries' must "
                          "not be negative (%s)", object);
    o.strip = (int)strip;
    o.mode = -1;
    o.max_bytes = (long long)max_bytes;
    o.max_entries = (long long)max_entries;
    if (lua_istable(L, 2))
        read_include(L, 2, &o.include, "archive.digests");
    if ((in = prologue(L, "archive.digests", path, object, &st, &nret)) == NULL) {
        ar_sv_free(&o.include);
        return nret;
    }
    if ((o.hits = calloc(o.include.n + 1, sizeof *o.hits)) == NULL) {
        archive_read_free(in);
        ar_sv_free(&o.include);
        return er_fail(L, "ENOMEM", "archive.digests: out of memory (%s)", object);
    }
    rc = ar_digest_all(in, &o, &out, &f);
    archive_read_free(in);
    free(o.hits);
    ar_sv_free(&o.include);
    if (rc != 0)
        return er_fail(L, f.code, "archive.digests: %s (%s)", f.msg, object);
    /* lua_createtable may raise (memory): out must not leak then */
    if (!lua_checkstack(L, 4)) {
        ar_digests_free(&out);
        return luaL_error(L, "archive.digests: out of memory");
    }
    lua_createtable(L, (int)out.n, 0);
    for (size_t i = 0; i < out.n; i++) {
        push_digest(L, &out.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    ar_digests_free(&out);
    return 1;
}

int luaopen_etcdrun_core_archive(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"list", l_list},
        {"extract", l_extract},
        {"digests", l_digests},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
