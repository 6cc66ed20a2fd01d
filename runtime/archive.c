/*
 * archive.c: the archive primitive (libarchive): list and safely extract
 * tar (plain, gzip, xz, bzip2, zstd) and zip archives. Reading is here;
 * writing the entries under the target is archive-extract.c, whose header
 * gives the safety model: every path resolved from the target's fd with
 * *at() calls and O_NOFOLLOW (the working directory of the process is never
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

static void read_include(lua_State *L, int idx, strvec *inc)
{
    lua_getfield(L, idx, "include");
    int t = lua_type(L, -1);
    lua_Integer n = t == LUA_TSTRING ? 1 : t == LUA_TTABLE ? luaL_len(L, -1) : 0;
    if (t != LUA_TSTRING && t != LUA_TTABLE && t != LUA_TNIL)
        luaL_error(L, "archive.extract: option 'include' must be a string or a table");
    for (lua_Integer i = 1; i <= n; i++) {
        if (t == LUA_TTABLE)
            lua_rawgeti(L, -1, i);
        else
            lua_pushvalue(L, -1);
        size_t len = 0;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (s == NULL || strlen(s) != len) {
            ar_sv_free(inc);
            luaL_error(L, "archive.extract: option 'include' must hold strings without NUL "
                       "bytes");
        }
        if (ar_sv_push(inc, s) != 0) {
            ar_sv_free(inc);
            luaL_error(L, "archive.extract: out of memory");
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
        read_include(L, 3, &o.include);

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

int luaopen_etcdrun_core_archive(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"list", l_list},
        {"extract", l_extract},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
