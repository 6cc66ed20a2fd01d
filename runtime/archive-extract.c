/*
 * archive-extract.c: write an archive's entries under a target directory
 * without ever changing the process's working directory (SSH worker threads
 * resolve relative paths against it at the same moment) and without
 * libarchive's archive_write_disk, which resolves names against the cwd.
 *
 * Safety model (see also the header of archive.c):
 *   - entry paths and hard-link targets must be relative and free of "..";
 *     "." and empty components are dropped, then strip_components applied;
 *   - a symlink target must be relative, may only climb with leading ".."
 *     components, and may not climb above the target directory; because no
 *     ".." follows a name and nothing is written through a symlink, no link
 *     of the archive can be made to resolve outside;
 *   - every path is resolved component by component from the target's fd
 *     with O_NOFOLLOW|O_DIRECTORY, and every entry made with an *at() call
 *     relative to its parent's fd (openat, mkdirat, symlinkat, linkat,
 *     renameat, fchmod, futimens, utimensat with AT_SYMLINK_NOFOLLOW): a
 *     symlink found on disk, the archive's own or one that was there, is
 *     never followed;
 *   - a hard link must name a regular file this call wrote (checked by
 *     inode on disk at the time of the link, so a file later replaced by a
 *     symlink, or a file that was there before, cannot be linked);
 *   - device nodes, fifos and sockets are refused; owners are not restored,
 *     set-id bits are dropped;
 *   - the apparent size of the files (a sparse file counts its declared
 *     size) and the number of entries are limited (EFBIG).
 * A file is written to a temporary name in its directory and renamed over
 * the old one, so a hard link to the old file keeps the old bytes. On any
 * failure, every file, link and directory this call created is removed
 * again; a file that replaced an existing one stays replaced.
 */
#include "archive-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive_entry.h>

/* Directory whose mode and times are set once everything under it is in. */
typedef struct {
    char *rel;
    mode_t mode;
    struct timespec mtime;
} dirmeta;

/* Inodes of the regular files this call wrote (open addressing). */
typedef struct {
    struct {
        dev_t dev;
        ino_t ino;
        int used;
    } *slot;
    size_t n, cap;
} inoset;

typedef struct {
    struct archive *in;
    int root;
    const extract_opts *o;
    failure *f;
    strvec *done;
    strvec created;             /* in creation order, removed backwards on failure */
    dirmeta *dirs;
    size_t ndirs, capdirs;
    inoset files;
    long long bytes, entries;
} xstate;

static size_t ino_hash(dev_t dev, ino_t ino, size_t cap)
{
    unsigned long long h = (unsigned long long)ino * 0x9E3779B97F4A7C15ULL ^ (unsigned long long)dev;
    return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static int ino_has(const inoset *s, dev_t dev, ino_t ino)
{
    if (s->cap == 0)
        return 0;
    for (size_t i = ino_hash(dev, ino, s->cap); s->slot[i].used; i = (i + 1) & (s->cap - 1))
        if (s->slot[i].dev == dev && s->slot[i].ino == ino)
            return 1;
    return 0;
}

static int ino_add(inoset *s, dev_t dev, ino_t ino)
{
    if (ino_has(s, dev, ino))
        return 0;
    if (2 * (s->n + 1) > s->cap) {
        inoset g = {NULL, 0, s->cap ? 2 * s->cap : 64};
        if ((g.slot = calloc(g.cap, sizeof *g.slot)) == NULL)
            return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i].used)
                ino_add(&g, s->slot[i].dev, s->slot[i].ino);
        free(s->slot);
        *s = g;
    }
    size_t i = ino_hash(dev, ino, s->cap);
    while (s->slot[i].used)
        i = (i + 1) & (s->cap - 1);
    s->slot[i].dev = dev, s->slot[i].ino = ino, s->slot[i].used = 1;
    s->n++;
    return 0;
}

static int oom(xstate *x)
{
    ar_fail(x->f, "ENOMEM", "out of memory%s%s", "", "");
    return -1;
}

static int record_created(xstate *x, const char *rel, size_t len)
{
    char *s = strndup(rel, len);
    int rc = s ? ar_sv_push(&x->created, s) : -1;
    free(s);
    return rc == 0 ? 0 : oom(x);
}

/*
 * Open the parent directory of rel (a normalised relative path) from the
 * root, one component at a time, never following a symlink; missing
 * directories are made (mode 0777 & ~umask, as tar does) when create is
 * set. Returns the fd (the caller closes it unless it is x->root) and the
 * last component in *leaf, or -1 with x->f filled in for the entry name.
 */
static int open_parent(xstate *x, const char *rel, int create, const char *name,
                       const char **leaf)
{
    int fd = x->root;
    const char *p = rel;
    char comp[NAME_MAX + 1];
    for (const char *slash; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
        size_t len = (size_t)(slash - p);
        if (len > NAME_MAX) {
            ar_fail(x->f, "ENAMETOOLONG", "cannot extract entry '%s': a name is too long%s",
                    name, "");
            goto fail;
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, comp, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                ar_fail(x->f, er_errno_code(e), "cannot extract entry '%s': %s", name,
                        strerror(e));
                goto fail;
            }
            if (record_created(x, rel, (size_t)(slash - rel)) != 0)
                goto fail;
            next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int e = errno;
            struct stat st;
            char which[PATH_MAX];
            snprintf(which, sizeof which, "%.*s", (int)(slash - rel), rel);
            if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                ar_fail(x->f, "EUNSAFE", "entry '%s' would be written through the symlink '%s'",
                        name, which);
            else if (e == ENOTDIR || (e == ELOOP))
                ar_fail(x->f, "ENOTDIR", "cannot extract entry '%s': '%s' is not a directory",
                        name, which);
            else
                ar_fail(x->f, er_errno_code(e), "cannot extract entry '%s': %s", name,
                        strerror(e));
            goto fail;
        }
        if (fd != x->root)
            close(fd);
        fd = next;
    }
    *leaf = p;
    return fd;
fail:
    if (fd != x->root)
        close(fd);
    return -1;
}

static void close_parent(xstate *x, int fd)
{
    if (fd >= 0 && fd != x->root)
        close(fd);
}

/* Make room for a new entry at leaf: an existing file or link is removed
 * (by rename for files, see write_file), an empty directory too; a
 * non-empty one is an error. Returns 1 when something was there, 0 when
 * not, -1 with x->f filled. */
static int clear_leaf(xstate *x, int dfd, const char *leaf, const char *name, int keep_files)
{
    struct stat st;
    if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;
    if (st.st_dev == x->o->skip_dev && st.st_ino == x->o->skip_ino) {
        ar_fail(x->f, "EUNSAFE", "entry '%s' would replace the archive being extracted%s",
                name, "");
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        if (unlinkat(dfd, leaf, AT_REMOVEDIR) != 0) {
            int e = errno == ENOTEMPTY || errno == EEXIST ? EISDIR : errno;
            ar_fail(x->f, er_errno_code(e), "cannot extract entry '%s': a directory is in "
                    "the way%s", name, "");
            return -1;
        }
    } else if (!keep_files && unlinkat(dfd, leaf, 0) != 0) {
        int e = errno;
        ar_fail(x->f, er_errno_code(e), "cannot extract entry '%s': %s", name, strerror(e));
        return -1;
    }
    return 1;
}

static int efbig_bytes(xstate *x, const char *name)
{
    char n[64];
    snprintf(n, sizeof n, "%lld", x->o->max_bytes);
    ar_fail(x->f, "EFBIG", "archive expands beyond %s bytes (max_bytes), at entry '%s'", n,
            name);
    return -1;
}

/* Copy the entry's data into fd at its offsets (sparse holes stay holes),
 * within the size limit. */
static int copy_data(xstate *x, int fd, const char *name, long long declared)
{
    const void *buf;
    size_t size;
    la_int64_t off;
    long long end = 0;
    int r;
    while ((r = archive_read_data_block(x->in, &buf, &size, &off)) == ARCHIVE_OK) {
        if (er_interrupted()) {
            ar_fail(x->f, "EINTR", "interrupted at entry '%s'%s", name, "");
            return -1;
        }
        if (off < 0 || (long long)size > LLONG_MAX - off)
            return efbig_bytes(x, name);
        if ((long long)(off + (la_int64_t)size) > end)
            end = (long long)off + (long long)size;
        if (end > declared && x->bytes + end > x->o->max_bytes)
            return efbig_bytes(x, name);
        for (size_t done = 0; done < size;) {
            ssize_t w = pwrite(fd, (const char *)buf + done, size - done,
                               (off_t)(off + (la_int64_t)done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                int e = errno;
                ar_fail(x->f, er_errno_code(e), "cannot write '%s': %s", name, strerror(e));
                return -1;
            }
            done += (size_t)w;
        }
    }
    if (r != ARCHIVE_EOF) {
        ar_fail(x->f, "EARCHIVE", "%s (while reading '%s')", archive_error_string(x->in), name);
        return -1;
    }
    long long apparent = end > declared ? end : declared;
    if (ftruncate(fd, (off_t)apparent) != 0) {  /* a trailing hole */
        int e = errno;
        ar_fail(x->f, er_errno_code(e), "cannot write '%s': %s", name, strerror(e));
        return -1;
    }
    x->bytes += apparent;
    return 0;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
    ts[1].tv_sec = archive_entry_mtime(e);
    ts[1].tv_nsec = archive_entry_mtime_nsec(e);
    if (archive_entry_atime_is_set(e)) {
        ts[0].tv_sec = archive_entry_atime(e);
        ts[0].tv_nsec = archive_entry_atime_nsec(e);
    } else {
        ts[0] = ts[1];
    }
    if (!archive_entry_mtime_is_set(e))
        ts[0].tv_nsec = ts[1].tv_nsec = UTIME_NOW;
}

static int write_file(xstate *x, struct archive_entry *e, const char *rel, const char *name)
{
    const char *leaf;
    char tmp[NAME_MAX + 1];
    struct timespec ts[2];
    struct stat st;
    long long declared = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    mode_t mode = x->o->mode >= 0 ? (mode_t)x->o->mode : archive_entry_perm(e) & 0777;
    if (declared < 0 || declared > x->o->max_bytes - x->bytes)
        return efbig_bytes(x, name);
    int dfd = open_parent(x, rel, 1, name, &leaf);
    if (dfd < 0)
        return -1;
    int had = clear_leaf(x, dfd, leaf, name, 1);
    int fd = had < 0 ? -1 : er_temp_open(dfd, leaf, 0600, tmp, sizeof tmp);
    if (had >= 0 && fd < 0) {
        int err = errno;
        ar_fail(x->f, er_errno_code(err), "cannot extract entry '%s': %s", name, strerror(err));
    }
    if (fd < 0) {
        close_parent(x, dfd);
        return -1;
    }
    entry_times(e, ts);
    int rc = copy_data(x, fd, name, declared);
    if (rc == 0 && (fchmod(fd, mode) != 0 || futimens(fd, ts) != 0 || fstat(fd, &st) != 0)) {
        int err = errno;
        ar_fail(x->f, er_errno_code(err), "cannot extract entry '%s': %s", name, strerror(err));
        rc = -1;
    }
    if (close(fd) != 0 && rc == 0) {
        int err = errno;
        ar_fail(x->f, er_errno_code(err), "cannot write '%s': %s", name, strerror(err));
        rc = -1;
    }
    if (rc == 0 && renameat(dfd, tmp, dfd, leaf) != 0) {
        int err = errno;
        ar_fail(x->f, er_errno_code(err), "cannot extract entry '%s': %s", name, strerror(err));
        rc = -1;
    }
    if (rc != 0)
        unlinkat(dfd, tmp, 0);
    close_parent(x, dfd);
    if (rc == 0 && ino_add(&x->files, st.st_dev, st.st_ino) != 0)
        return oom(x);
    if (rc == 0 && !had)
        rc = record_created(x, rel, strlen(rel));
    return rc;
}

static int write_dir(xstate *x, struct archive_entry *e, const char *rel, const char *name)
{
    const char *leaf;
    struct stat st;
    int dfd = open_parent(x, rel, 1, name, &leaf);
    if (dfd < 0)
        return -1;
    int rc = 0;
    if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
        /* a file or link in the way is replaced, as tar does */
        rc = clear_leaf(x, dfd, leaf, name, 0) < 0 ? -1 : 0;
        /* 0700 until the end: files still go in a directory the archive makes 0555 */
        if (rc == 0 && mkdirat(dfd, leaf, 0700) != 0) {
            int err = errno;
            ar_fail(x->f, er_errno_code(err), "cannot extract entry '%s': %s", name,
                    strerror(err));
            rc = -1;
        }
        if (rc == 0)
            rc = record_created(x, rel, strlen(rel));
    }
    close_parent(x, dfd);
    if (rc != 0)
        return rc;
    if (x->ndirs == x->capdirs) {
        size_t cap = x->capdirs ? 2 * x->capdirs : 16;
        dirmeta *d = realloc(x->dirs, cap * sizeof *d);
        if (d == NULL)
            return oom(x);
        x->dirs = d, x->capdirs = cap;
    }
    struct timespec ts[2];
    entry_times(e, ts);
    if ((x->dirs[x->ndirs].rel = strdup(rel)) == NULL)
        return oom(x);
    x->dirs[x->ndirs].mode = archive_entry_perm(e) & 0777;
    x->dirs[x->ndirs].mtime = ts[1];
    x->ndirs++;
    return 0;
}

/* A symlink (target != NULL) or a hard link to the file at src (normalised). */
static int write_link(xstate *x, struct archive_entry *e, const char *rel, const char *name,
                      const char *target, const char *src, const char *src_raw)
{
    const char *leaf, *sleaf = NULL;
    int sfd = -1, rc = 0;
    struct stat st;
    if (src != NULL) {
        if ((sfd = open_parent(x, src, 0, name, &sleaf)) < 0
            || fstatat(sfd, sleaf, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)
            || !ino_has(&x->files, st.st_dev, st.st_ino)) {
            close_parent(x, sfd);
            ar_fail(x->f, "EUNSAFE", "entry '%s' is a hard link to '%s', which is not a file "
                    "extracted from this archive", name, src_raw);
            return -1;
        }
    }
    int dfd = open_parent(x, rel, 1, name, &leaf);
    if (dfd < 0) {
        close_parent(x, sfd);
        return -1;
    }
    struct stat cur;
    if (src != NULL && fstatat(dfd, leaf, &cur, AT_SYMLINK_NOFOLLOW) == 0
        && cur.st_dev == st.st_dev && cur.st_ino == st.st_ino)
        goto out;               /* already this very file */
    int had = clear_leaf(x, dfd, leaf, name, 0);
    if (had < 0) {
        rc = -1;
        goto out;
    }
    if (src != NULL ? linkat(sfd, sleaf, dfd, leaf, 0) : symlinkat(target, dfd, leaf)) {
        int err = errno;
        ar_fail(x->f, er_errno_code(err), "cannot extract entry '%s': %s", name, strerror(err));
        rc = -1;
        goto out;
    }
    if (src == NULL) {
        struct timespec ts[2];
        entry_times(e, ts);
        utimensat(dfd, leaf, ts, AT_SYMLINK_NOFOLLOW);
    }
    if (!had)
        rc = record_created(x, rel, strlen(rel));
out:
    close_parent(x, dfd);
    close_parent(x, sfd);
    return rc;
}

/* Check (ar_select: the rules archive.digests shares) and write one entry. */
static int extract_one(xstate *x, struct archive_entry *e)
{
    ar_selected s;
    int rc = ar_select(e, x->o, &s, x->f);
    if (rc <= 0)
        return rc;              /* refused, or not wanted: the reader skips its data */
    if (s.src != NULL)
        rc = write_link(x, e, s.rel, s.name, NULL, s.src, s.hard);
    else if (s.type == AE_IFLNK)
        rc = write_link(x, e, s.rel, s.name, s.target, NULL, NULL);
    else if (s.type == AE_IFDIR)
        rc = write_dir(x, e, s.rel, s.name);
    else
        rc = write_file(x, e, s.rel, s.name);
    if (rc == 0 && ar_sv_push(x->done, s.rel) != 0)
        rc = oom(x);
    free(s.buf);
    return rc;
}

/* Directory modes and times, deepest (latest listed) first, once nothing
 * more is written into them. */
static int finish_dirs(xstate *x)
{
    for (size_t i = x->ndirs; i-- > 0;) {
        const char *leaf;
        int dfd = open_parent(x, x->dirs[i].rel, 0, x->dirs[i].rel, &leaf);
        if (dfd < 0)
            return -1;
        int fd = openat(dfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct timespec ts[2] = {x->dirs[i].mtime, x->dirs[i].mtime};
        int rc = fd < 0 || fchmod(fd, x->dirs[i].mode) != 0 || futimens(fd, ts) != 0 ? -1 : 0;
        int err = errno;
        if (fd >= 0)
            close(fd);
        close_parent(x, dfd);
        if (rc != 0) {
            ar_fail(x->f, er_errno_code(err), "cannot extract entry '%s': %s", x->dirs[i].rel,
                    strerror(err));
            return -1;
        }
    }
    return 0;
}

/* Undo: remove what this call created, newest first (children before their
 * directories); directories only when empty. */
static void remove_created(xstate *x)
{
    for (size_t i = x->created.n; i-- > 0;) {
        const char *leaf;
        failure ignored;
        failure *keep = x->f;
        x->f = &ignored;
        int dfd = open_parent(x, x->created.v[i], 0, "", &leaf);
        x->f = keep;
        if (dfd < 0)
            continue;
        if (unlinkat(dfd, leaf, 0) != 0 && (errno == EISDIR || errno == EPERM))
            unlinkat(dfd, leaf, AT_REMOVEDIR);
        close_parent(x, dfd);
    }
}

int ar_extract_all(struct archive *in, int root, const extract_opts *o, strvec *done,
                   failure *f)
{
    xstate x = {.in = in, .root = root, .o = o, .f = f, .done = done};
    struct archive_entry *e;
    int r, rc = 0;
    while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        if ((rc = ar_may_read(++x.entries, o, f)) != 0)
            break;
        if ((rc = extract_one(&x, e)) != 0)
            break;
    }
    if (rc == 0)
        rc = ar_read_done(in, r, o, f);
    if (rc == 0)
        rc = finish_dirs(&x);
    if (rc != 0)
        remove_created(&x);
    ar_sv_free(&x.created);
    for (size_t i = 0; i < x.ndirs; i++)
        free(x.dirs[i].rel);
    free(x.dirs);
    free(x.files.slot);
    return rc;
}
