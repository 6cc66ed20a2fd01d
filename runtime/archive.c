/*
 * archive.c: the archive primitive (libarchive): list and safely extract
 * tar (plain, gzip, xz, bzip2, zstd) and zip archives.
 *
 * Safety model of archive.extract (every check runs before anything of the
 * entry is written, so a refused entry writes nothing outside the target):
 *   - entry paths and hard-link targets must be relative and free of "..";
 *     "." and empty components are dropped, then strip_components applied;
 *   - a symlink target must be relative, may only climb with leading ".."
 *     components, and may not climb above the target directory; because no
 *     ".." follows a name, no earlier symlink can redirect it outside;
 *   - a hard link must point at a file extracted earlier in the same call;
 *   - nothing is written through a symlink found on disk (our own lstat
 *     walk, and libarchive's ARCHIVE_EXTRACT_SECURE_SYMLINKS as a backstop,
 *     with SECURE_NODOTDOT and SECURE_NOABSOLUTEPATHS);
 *   - device nodes, fifos and sockets are refused; owners are not restored,
 *     set-id bits are dropped.
 * libarchive resolves names relative to the working directory, so extract
 * chdir()s into the target for the duration of the call and returns with
 * fchdir(); no Lua call happens in between (an error there would longjmp
 * past the restore), which is why results are gathered in C first.
 * Files that replace an existing file are written to a temporary name and
 * renamed (ARCHIVE_EXTRACT_SAFE_WRITES); new files are written in place.
 * A failure part-way leaves the entries already extracted in place.
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

#define MSG_MAX 1024

/* Growable array of owned strings, freed by sv_free. */
typedef struct {
    char **v;
    size_t n, cap;
} strvec;

/* What went wrong inside the chdir window, reported after leaving it. */
typedef struct {
    char msg[MSG_MAX];
    const char *code;
} failure;

static void sv_free(strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = sv->cap = 0;
}

static int sv_push(strvec *sv, const char *s)
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

static int sv_contains(const strvec *sv, const char *s)
{
    for (size_t i = 0; i < sv->n; i++)
        if (strcmp(sv->v[i], s) == 0)
            return 1;
    return 0;
}

/* Copy s into a bounded buffer with control bytes replaced: entry names are
 * attacker-chosen and must not forge lines in an error message. */
static const char *printable(char *buf, size_t size, const char *s)
{
    size_t i = 0;
    for (; s && *s && i + 4 < size; s++)
        buf[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    if (s && *s)
        buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
    buf[i] = '\0';
    return buf;
}

static void fail(failure *f, const char *code, const char *fmt, const char *a, const char *b)
{
    char pa[256], pb[256];
    snprintf(f->msg, sizeof f->msg, fmt, printable(pa, sizeof pa, a),
             printable(pb, sizeof pb, b));
    f->code = code;
}

/* libarchive reports errno values and its own negative/format codes. */
static const char *archive_code(struct archive *a)
{
    int e = archive_errno(a);
    if (e == ENOSPC || e == EACCES || e == EPERM || e == EROFS || e == EDQUOT
        || e == ENOENT || e == ENOTDIR || e == EISDIR || e == EEXIST || e == EIO)
        return er_errno_code(e);
    return "EARCHIVE";
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

/*
 * Normalise an archive path: drop "." and empty components, then strip
 * `strip` leading components. Returns 1 and the rest in out (possibly ""
 * when the entry is consumed by stripping), 0 when the path is absolute or
 * holds "..". out must hold strlen(path)+1 bytes.
 */
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

/* Number of components of a normalised relative path. */
static int depth(const char *rel)
{
    int n = *rel ? 1 : 0;
    for (; *rel; rel++)
        n += *rel == '/';
    return n;
}

/* A symlink at rel (normalised) pointing at target stays inside the root? */
static int symlink_safe(const char *rel, const char *target)
{
    int ups = 0, named = 0;
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
    return ups <= depth(rel) - 1;
}

/* Refuse to write rel when one of its parent directories on disk (relative
 * to the working directory, i.e. the target) is a symlink. */
static int through_symlink(const char *rel, char *which)
{
    struct stat st;
    size_t len = strlen(rel);
    for (size_t i = 0; i < len; i++) {
        if (rel[i] != '/')
            continue;
        memcpy(which, rel, i);
        which[i] = '\0';
        if (lstat(which, &st) == 0 && S_ISLNK(st.st_mode))
            return 1;
    }
    return 0;
}

static int match_include(const strvec *inc, int *hits, const char *rel)
{
    int any = 0;
    for (size_t i = 0; i < inc->n; i++) {
        if (strcmp(inc->v[i], rel) == 0 || fnmatch(inc->v[i], rel, FNM_PATHNAME) == 0) {
            hits[i] = 1;
            any = 1;
        }
    }
    return any;
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
    const char *path = luaL_checkstring(L, 1);
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

/* mkdir -p with mode 0755 (umask applies); existing directories are fine. */
static int mkdir_p(const char *path)
{
    char *buf = strdup(path);
    if (buf == NULL)
        return ENOMEM;
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
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

typedef struct {
    int strip;
    int mode;                   /* -1: keep the archive's permission bits */
    strvec include;
    int *hits;
    const char *object;
} extract_opts;

/* Copy one entry's data; libarchive handles sparse blocks by offset. */
static int copy_data(struct archive *in, struct archive *out, failure *f, const char *rel)
{
    const void *buf;
    size_t size;
    la_int64_t off;
    int r;
    while ((r = archive_read_data_block(in, &buf, &size, &off)) == ARCHIVE_OK) {
        if (archive_write_data_block(out, buf, size, off) < ARCHIVE_OK) {
            fail(f, archive_code(out), "cannot write '%s': %s", rel, archive_error_string(out));
            return -1;
        }
    }
    if (r != ARCHIVE_EOF) {
        fail(f, "EARCHIVE", "%s (while reading '%s')", archive_error_string(in), rel);
        return -1;
    }
    return 0;
}

/*
 * Check and write one entry. Returns 0, or -1 with *f filled in. The names
 * are copied first: archive_entry_set_pathname() frees the entry's own.
 */
static int extract_one(struct archive *in, struct archive *out, const extract_opts *o,
                       struct archive_entry *e, strvec *done, strvec *files, failure *f)
{
    const char *raw = archive_entry_pathname(e);
    const char *hard = archive_entry_hardlink(e);
    const char *target = archive_entry_symlink(e);
    int type = archive_entry_filetype(e), rc = -1;
    if (raw == NULL) {
        fail(f, "EARCHIVE", "entry with an unreadable name%s%s", "", "");
        return -1;
    }
    size_t need = strlen(raw) + (hard ? strlen(hard) : 0) + 2;
    char *buf = malloc(4 * need);
    if (buf == NULL) {
        fail(f, "ENOMEM", "out of memory%s%s", "", "");
        return -1;
    }
    char *name = buf, *rel = buf + need, *link = buf + 2 * need, *which = buf + 3 * need;
    memcpy(name, raw, strlen(raw) + 1);
    if (hard != NULL)
        memcpy(link, hard, strlen(hard) + 1);

    if (!normalise(name, 0, rel)) {
        fail(f, "EUNSAFE", "entry '%s' escapes the target directory%s", name, "");
        goto done;
    }
    normalise(name, o->strip, rel);
    if (*rel == '\0' || (o->include.n > 0 && !match_include(&o->include, o->hits, rel))) {
        rc = 0;                 /* not wanted: the reader skips its data by itself */
        goto done;
    }
    if (hard == NULL && type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
        fail(f, "EUNSUPPORTED", "entry '%s' is a %s; only files, directories and links "
             "are extracted", name, entry_type(e));
        goto done;
    }
    if (hard != NULL) {
        char *stripped = which;  /* free until the symlink walk below */
        if (!normalise(link, 0, stripped)) {
            fail(f, "EUNSAFE", "entry '%s' is a hard link to '%s' outside the target "
                 "directory", name, link);
            goto done;
        }
        normalise(link, o->strip, stripped);
        if (!sv_contains(files, stripped)) {
            fail(f, "EUNSAFE", "entry '%s' is a hard link to '%s', which is not a file "
                 "extracted from this archive", name, link);
            goto done;
        }
        archive_entry_set_hardlink(e, stripped);
    } else if (type == AE_IFLNK && (target == NULL || !symlink_safe(rel, target))) {
        fail(f, "EUNSAFE", "entry '%s' is a symlink to '%s' outside the target directory",
             name, target ? target : "");
        goto done;
    }
    if (through_symlink(rel, which)) {
        fail(f, "EUNSAFE", "entry '%s' would be written through the symlink '%s'", name,
             which);
        goto done;
    }
    archive_entry_set_pathname(e, rel);
    if (type == AE_IFREG && hard == NULL && o->mode >= 0)
        archive_entry_set_perm(e, (mode_t)o->mode);
    else
        archive_entry_set_perm(e, archive_entry_perm(e) & 0777);
    if (archive_write_header(out, e) < ARCHIVE_WARN) {
        fail(f, archive_code(out), "cannot extract entry '%s': %s", name,
             archive_error_string(out));
        goto done;
    }
    /* Not keyed on the size: a streamed zip entry may not declare one. */
    if ((type == AE_IFREG || hard != NULL) && copy_data(in, out, f, name) != 0)
        goto done;
    if (archive_write_finish_entry(out) < ARCHIVE_WARN) {
        fail(f, archive_code(out), "cannot extract entry '%s': %s", name,
             archive_error_string(out));
        goto done;
    }
    if (sv_push(done, rel) != 0 || (type == AE_IFREG && sv_push(files, rel) != 0)) {
        fail(f, "ENOMEM", "out of memory%s%s", "", "");
        goto done;
    }
    rc = 0;
done:
    free(buf);
    return rc;
}

/*
 * The body of extract, run with the working directory set to the target.
 * Returns 0, or -1 with *f filled in. Touches no Lua state.
 */
static int extract_entries(struct archive *in, struct archive *out, const extract_opts *o,
                           strvec *done, strvec *files, failure *f)
{
    struct archive_entry *e;
    int r;
    while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        if (extract_one(in, out, o, e, done, files, f) != 0)
            return -1;
    }
    if (r != ARCHIVE_EOF) {
        fail(f, "EARCHIVE", "%s%s", archive_error_string(in), "");
        return -1;
    }
    return 0;
}

static void read_include(lua_State *L, int idx, strvec *inc)
{
    lua_getfield(L, idx, "include");
    if (lua_isstring(L, -1)) {
        if (sv_push(inc, lua_tostring(L, -1)) != 0)
            luaL_error(L, "archive.extract: out of memory");
    } else if (lua_istable(L, -1)) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_type(L, -1) != LUA_TSTRING) {
                sv_free(inc);
                luaL_error(L, "archive.extract: option 'include' must hold strings");
            }
            if (sv_push(inc, lua_tostring(L, -1)) != 0) {
                sv_free(inc);
                luaL_error(L, "archive.extract: out of memory");
            }
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "archive.extract: option 'include' must be a string or a table");
    }
    lua_pop(L, 1);
}

/* archive.extract(path, dest, {strip_components=, include=, mode=, name=}?)
 *   -> { paths relative to dest } | nil, err, code */
static int l_extract(lua_State *L)
{
    static const char *const known[] = {"strip_components", "include", "mode", "name", NULL};
    const char *path = luaL_checkstring(L, 1);
    const char *dest = luaL_checkstring(L, 2);
    extract_opts o = {0};
    strvec done = {0}, files = {0};
    failure f = {{0}, NULL};
    struct archive *in, *out;
    struct stat st;
    int nret = 0, cwd, rc, e;

    er_check_options(L, 3, "archive.extract", known);
    lua_Integer strip = er_opt_integer(L, 3, "strip_components", 0);
    lua_Integer mode = er_opt_integer(L, 3, "mode", -1);
    if (strip < 0 || strip > 64)
        return luaL_error(L, "archive.extract: option 'strip_components' out of range");
    if (mode < -1 || mode > 0777)
        return luaL_error(L, "archive.extract: option 'mode' must be within 0..0777");
    o.strip = (int)strip;
    o.mode = (int)mode;
    o.object = er_opt_string(L, 3, "name", path);
    if (lua_istable(L, 3))
        read_include(L, 3, &o.include);

    if ((in = prologue(L, "archive.extract", path, o.object, &st, &nret)) == NULL) {
        sv_free(&o.include);
        return nret;
    }
    if ((e = mkdir_p(dest)) != 0) {
        archive_read_free(in);
        sv_free(&o.include);
        return er_fail_errno(L, "archive.extract", dest, e);
    }
    out = archive_write_disk_new();
    o.hits = calloc(o.include.n + 1, sizeof *o.hits);
    if (out == NULL || o.hits == NULL) {
        archive_read_free(in);
        archive_write_free(out);
        free(o.hits);
        sv_free(&o.include);
        return er_fail(L, "ENOMEM", "archive.extract: out of memory (%s)", o.object);
    }
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME
                                   | ARCHIVE_EXTRACT_SECURE_NODOTDOT
                                   | ARCHIVE_EXTRACT_SECURE_SYMLINKS
                                   | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS
                                   | ARCHIVE_EXTRACT_SAFE_WRITES);
    /* Never overwrite the archive being read, should it live in dest. */
    archive_write_disk_set_skip_file(out, (la_int64_t)st.st_dev, (la_int64_t)st.st_ino);

    cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
#ifdef O_PATH
    if (cwd < 0)
        cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
#endif
    if (cwd < 0 || chdir(dest) != 0) {
        e = errno;
        if (cwd >= 0)
            close(cwd);
        archive_read_free(in);
        archive_write_free(out);
        free(o.hits);
        sv_free(&o.include);
        return er_fail_errno(L, "archive.extract", dest, e);
    }
    rc = extract_entries(in, out, &o, &done, &files, &f);
    /* Directory permissions and times are applied on close. */
    if (archive_write_close(out) != ARCHIVE_OK && rc == 0) {
        fail(&f, archive_code(out), "%s%s", archive_error_string(out), "");
        rc = -1;
    }
    if (fchdir(cwd) != 0 && rc == 0) {
        fail(&f, er_errno_code(errno), "cannot return to the working directory%s%s", "", "");
        rc = -1;
    }
    close(cwd);
    archive_write_free(out);
    archive_read_free(in);
    sv_free(&files);

    if (rc == 0) {
        for (size_t i = 0; i < o.include.n; i++) {
            if (!o.hits[i]) {
                char pb[256];
                snprintf(f.msg, sizeof f.msg, "no entry matches '%s'",
                         printable(pb, sizeof pb, o.include.v[i]));
                f.code = "ENOENT";
                rc = -1;
                break;
            }
        }
    }
    free(o.hits);
    sv_free(&o.include);
    if (rc != 0) {
        sv_free(&done);
        return er_fail(L, f.code, "archive.extract: %s (%s)", f.msg, o.object);
    }
    lua_createtable(L, (int)done.n, 0);
    for (size_t i = 0; i < done.n; i++) {
        lua_pushstring(L, done.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    sv_free(&done);
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
