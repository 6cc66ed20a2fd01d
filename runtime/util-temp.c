/*
 * util-temp.c: temporary files next to their target, and the sweep of the
 * ones a killed run left behind (declared in etcdrun.h). Not a Lua module.
 *
 * A temporary name carries the writer's pid: ".<base>.etcdrun-<pid>-<rand>".
 * A sibling of the same base is stale, and removed before a new temporary is
 * made, when that pid is not alive on this machine and the file was not
 * modified for ER_TEMP_STALE_S seconds (a writer on another machine sharing
 * the directory keeps touching its file). Names from versions without a pid
 * are removed after a day. Everything works relative to a directory fd and
 * never follows a symlink, and nothing process-wide (cwd, umask) is touched:
 * SSH worker threads call this too.
 */
#include "etcdrun.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LEGACY_STALE_S (24 * 3600)
#define BASE_MAX 200            /* room for ".etcdrun-<pid>-<rand>" within NAME_MAX */

static int pid_alive(long pid)
{
    if (pid <= 0 || pid > 0x3fffffff)
        return 0;
    if (pid == (long)getpid())
        return 1;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

static int all_of(const char *s, size_t n, const char *set)
{
    return strlen(s) == n && strspn(s, set) == n;
}

int er_remove_at(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dirfd, name, 0);
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    struct dirent *e;
    int rc = 0, err = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (er_remove_at(fd, e->d_name) != 0 && errno != ENOENT && rc == 0)
            rc = -1, err = errno;
    }
    closedir(d);
    if (rc != 0) {
        errno = err;
        return -1;
    }
    return unlinkat(dirfd, name, AT_REMOVEDIR);
}

int er_temp_sweep(int dirfd, const char *prefix)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return 0;
    }
    size_t plen = strlen(prefix);
    /* only dot-names are ours for sure without a pid (".x.etcdrun-", ".partial-") */
    int legacy_ok = prefix[0] == '.';
    time_t now = time(NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, plen) != 0)
            continue;
        const char *rest = e->d_name + plen;
        char *end = NULL;
        long pid = -1;
        long limit;
        if (rest[0] >= '1' && rest[0] <= '9')
            pid = strtol(rest, &end, 10);
        if (pid > 0 && *end == '-' && strlen(end + 1) >= 6) {
            if (pid_alive(pid))
                continue;
            limit = ER_TEMP_STALE_S;
        } else if (legacy_ok && (all_of(rest, 6, "0123456789abcdefghijklmnopqrstuvwxyz"
                                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
                                 || all_of(rest, 16, "0123456789abcdef"))) {
            limit = LEGACY_STALE_S;
        } else {
            continue;
        }
        struct stat st;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || now - st.st_mtime < limit)
            continue;
        if (er_remove_at(fd, e->d_name) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Six random characters for a temporary name. */
static void random_tag(char out[7])
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char r[6];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned long x = (unsigned long)ts.tv_nsec ^ ((unsigned long)ts.tv_sec << 20)
            ^ (unsigned long)(size_t)out;
        for (size_t i = 0; i < sizeof r; i++, x = x * 6364136223846793005UL + 1442695040888963407UL)
            r[i] = (unsigned char)(x >> 33);
    }
    for (int i = 0; i < 6; i++)
        out[i] = set[r[i] % (sizeof set - 1)];
    out[6] = '\0';
}

static void temp_prefix(char *out, size_t size, const char *base)
{
    snprintf(out, size, ".%.*s.etcdrun-", BASE_MAX, base);
}

int er_temp_open(int dirfd, const char *base, int mode, char *name, size_t size)
{
    char prefix[BASE_MAX + 16];
    temp_prefix(prefix, sizeof prefix, base);
    er_temp_sweep(dirfd, prefix);
    for (int tries = 0; tries < 100; tries++) {
        char tag[7];
        random_tag(tag);
        if ((size_t)snprintf(name, size, "%s%ld-%s", prefix, (long)getpid(), tag) >= size) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        (mode_t)mode);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

/* Open the directory holding path (following symlinks, as writing path
 * itself would); its last component in *base. */
int er_open_parent(const char *path, const char **base)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    *base = slash ? slash + 1 : path;
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int er_temp_path(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char dir[4096];
    if (*base == '\0') {
        errno = EISDIR;
        return -1;
    }
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) >= sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    } else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    char prefix[BASE_MAX + 16];
    temp_prefix(prefix, sizeof prefix, base);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        er_temp_sweep(dfd, prefix);
    int rc = 0;
    for (int tries = 0; tries < 100; tries++) {
        char tag[7], name[BASE_MAX + 64];
        struct stat st;
        random_tag(tag);
        snprintf(name, sizeof name, "%s%ld-%s", prefix, (long)getpid(), tag);
        if (dfd >= 0 && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            continue;
        if ((size_t)snprintf(out, size, "%s%s%s", slash ? dir : "",
                             slash && slash != path ? "/" : "", name) >= size) {
            errno = ENAMETOOLONG;
            rc = -1;
        }
        break;
    }
    if (dfd >= 0)
        close(dfd);
    return rc;
}
