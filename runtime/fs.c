/*
 * fs.c: local files for Lua (etcdrun.core.fs). Mechanism only: the runner
 * and modules decide what to write; this file makes each write atomic and
 * reports failure as nil, "fs.<op>: <reason> (<path>)", "<ERRNO CODE>".
 */
#include "etcdrun.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

static const char *type_name(mode_t m)
{
    if (S_ISREG(m)) return "file";
    if (S_ISDIR(m)) return "dir";
    if (S_ISLNK(m)) return "link";
    if (S_ISFIFO(m)) return "fifo";
    if (S_ISSOCK(m)) return "socket";
    if (S_ISCHR(m)) return "char";
    if (S_ISBLK(m)) return "block";
    return "unknown";
}

static void push_user(lua_State *L, uid_t uid)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res)
        lua_pushstring(L, res->pw_name);
    else
        lua_pushnil(L);
}

static void push_group(lua_State *L, gid_t gid)
{
    struct group gr, *res = NULL;
    char buf[4096];
    if (getgrgid_r(gid, &gr, buf, sizeof buf, &res) == 0 && res)
        lua_pushstring(L, res->gr_name);
    else
        lua_pushnil(L);
}

/* fs.stat(path, {follow=true}) -> {type, mode, uid, gid, user, group, size, mtime, target?}
 *                                 | nil, err, code */
static int fs_stat(lua_State *L)
{
    static const char *const known[] = {"follow", NULL};
    const char *path = er_checkpath(L, 1, "fs.stat");
    er_check_options(L, 2, "fs.stat", known);
    int follow = er_opt_boolean(L, 2, "follow", 1);
    struct stat st;
    if ((follow ? stat(path, &st) : lstat(path, &st)) != 0)
        return er_fail_errno(L, "fs.stat", path, errno);
    lua_createtable(L, 0, 10);
    lua_pushstring(L, type_name(st.st_mode));
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, st.st_mode & 07777);
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, st.st_uid);
    lua_setfield(L, -2, "uid");
    lua_pushinteger(L, st.st_gid);
    lua_setfield(L, -2, "gid");
    push_user(L, st.st_uid);
    lua_setfield(L, -2, "user");
    push_group(L, st.st_gid);
    lua_setfield(L, -2, "group");
    lua_pushinteger(L, st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, st.st_mtime);
    lua_setfield(L, -2, "mtime");
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n >= 0) {
            lua_pushlstring(L, target, (size_t)n);
            lua_setfield(L, -2, "target");
        }
    }
    return 1;
}

/* fs.read(path) -> data | nil, err, code */
static int fs_read(lua_State *L)
{
    const char *path = er_checkpath(L, 1, "fs.read");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return er_fail_errno(L, "fs.read", path, errno);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (;;) {
        char *p = luaL_prepbuffsize(&b, 65536);
        ssize_t n = read(fd, p, 65536);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            close(fd);
            return er_fail_errno(L, "fs.read", path, err);
        }
        if (n == 0)
            break;
        luaL_addsize(&b, (size_t)n);
    }
    close(fd);
    luaL_pushresult(&b);
    return 1;
}

/* Resolve an owner given as a name or a numeric id; -1 when absent. */
static int resolve_uid(lua_State *L, int idx, uid_t *out, const char **name)
{
    *out = (uid_t)-1;
    if (lua_isnoneornil(L, idx))
        return 1;
    if (lua_isinteger(L, idx)) {
        *out = (uid_t)lua_tointeger(L, idx);
        return 1;
    }
    *name = luaL_checkstring(L, idx);
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwnam_r(*name, &pw, buf, sizeof buf, &res) != 0 || !res)
        return 0;
    *out = res->pw_uid;
    return 1;
}

static int resolve_gid(lua_State *L, int idx, gid_t *out, const char **name)
{
    *out = (gid_t)-1;
    if (lua_isnoneornil(L, idx))
        return 1;
    if (lua_isinteger(L, idx)) {
        *out = (gid_t)lua_tointeger(L, idx);
        return 1;
    }
    *name = luaL_checkstring(L, idx);
    struct group gr, *res = NULL;
    char buf[4096];
    if (getgrnam_r(*name, &gr, buf, sizeof buf, &res) != 0 || !res)
        return 0;
    *out = res->gr_gid;
    return 1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * fs.write(path, data, {mode=, owner=, group=}) -> true | nil, err, code
 * Written to a temporary file in the same directory (".NAME.etcdrun-<pid>-*";
 * a dead run's leftovers are swept first, see util-temp.c), fsynced, given
 * its mode and owner, then renamed over path: a reader sees the old file or
 * the new one, never half of one, and a full disk leaves the old file in
 * place. mode is an octal string ("0600") or an integer. Without mode, an
 * existing file keeps its mode; a new one gets 0666 & ~umask (applied by
 * the kernel at creation: the umask is never changed, other threads rely on it).
 */
static int fs_write(lua_State *L)
{
    static const char *const known[] = {"mode", "owner", "group", NULL};
    const char *path = er_checkpath(L, 1, "fs.write");
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    er_check_options(L, 3, "fs.write", known);
    int mode = er_opt_mode(L, 3, "mode", -1, "fs.write", path);
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    const char *uname = NULL, *gname = NULL;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "owner");
        lua_getfield(L, 3, "group");
        int ok_u = resolve_uid(L, -2, &uid, &uname);
        int ok_g = resolve_gid(L, -1, &gid, &gname);
        lua_pop(L, 2);
        if (!ok_u)
            return er_fail(L, "ENOUSER", "fs.write: no such user '%s' (%s)", uname, path);
        if (!ok_g)
            return er_fail(L, "ENOGROUP", "fs.write: no such group '%s' (%s)", gname, path);
    }

    struct stat old;
    int exists = stat(path, &old) == 0;
    if (exists && S_ISDIR(old.st_mode))
        return er_fail_errno(L, "fs.write", path, EISDIR);
    if (mode < 0 && exists)
        mode = old.st_mode & 07777;

    const char *base;
    char tmp[NAME_MAX + 1];
    int dfd = er_open_parent(path, &base);
    if (dfd < 0)
        return er_fail_errno(L, "fs.write", path, errno);
    if (*base == '\0') {
        close(dfd);
        return er_fail_errno(L, "fs.write", path, EISDIR);
    }
    /* a new file without a mode: 0666 & ~umask, as open() makes it */
    int fd = er_temp_open(dfd, base, mode < 0 ? 0666 : 0600, tmp, sizeof tmp);
    if (fd < 0) {
        int err = errno;
        close(dfd);
        return er_fail_errno(L, "fs.write", path, err);
    }
    /* mode before data: a secret never sits in a world-readable temp file */
    if ((mode >= 0 && fchmod(fd, (mode_t)mode) != 0) || write_all(fd, data, len) != 0 ||
        ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) != 0) ||
        (mode >= 0 && fchmod(fd, (mode_t)mode) != 0) || fsync(fd) != 0) {
        int err = errno;
        close(fd);
        unlinkat(dfd, tmp, 0);
        close(dfd);
        return er_fail_errno(L, "fs.write", path, err);
    }
    if (close(fd) != 0 || renameat(dfd, tmp, dfd, base) != 0) {
        int err = errno;
        unlinkat(dfd, tmp, 0);
        close(dfd);
        return er_fail_errno(L, "fs.write", path, err);
    }
    fsync(dfd); /* so the rename itself survives a crash */
    close(dfd);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.tempname(path) -> a fresh name ".NAME.etcdrun-<pid>-XXXXXX" next to path,
 * not created (the caller creates it exclusively), after removing the
 * siblings a dead run left behind | nil, err, code */
static int fs_tempname(lua_State *L)
{
    const char *path = er_checkpath(L, 1, "fs.tempname");
    char out[PATH_MAX];
    if (er_temp_path(path, out, sizeof out) != 0)
        return er_fail_errno(L, "fs.tempname", path, errno);
    lua_pushstring(L, out);
    return 1;
}

/* fs.mkdir(path, {mode="0755", parents=true}) -> created:boolean | nil, err, code */
static int fs_mkdir(lua_State *L)
{
    static const char *const known[] = {"mode", "parents", NULL};
    const char *path = er_checkpath(L, 1, "fs.mkdir");
    er_check_options(L, 2, "fs.mkdir", known);
    mode_t mode = (mode_t)er_opt_mode(L, 2, "mode", 0755, "fs.mkdir", path);
    int parents = er_opt_boolean(L, 2, "parents", 1);
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return er_fail(L, "EEXIST", "fs.mkdir: exists and is not a directory (%s)", path);
        lua_pushboolean(L, 0);
        return 1;
    }
    char buf[PATH_MAX];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
        return er_fail_errno(L, "fs.mkdir", path, ENAMETOOLONG);
    if (parents) {
        /* create each missing ancestor; they get mode too, as mkdir -p -m would not,
           because a 0700 leaf under a 0755 parent is what callers expect */
        for (char *p = buf + 1; *p; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                int err = errno;
                return er_fail_errno(L, "fs.mkdir", buf, err);
            }
            *p = '/';
        }
    }
    if (mkdir(path, mode) != 0 && errno != EEXIST)
        return er_fail_errno(L, "fs.mkdir", path, errno);
    /* umask must not weaken or strengthen what was asked for */
    if (chmod(path, mode) != 0)
        return er_fail_errno(L, "fs.mkdir", path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.chmod(path, mode: "0644" | integer) -> true | nil, err, code */
static int fs_chmod(lua_State *L)
{
    const char *path = er_checkpath(L, 1, "fs.chmod");
    int mode = er_checkmode(L, 2, "fs.chmod", path);
    if (chmod(path, (mode_t)mode) != 0)
        return er_fail_errno(L, "fs.chmod", path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.chown(path, owner|nil, group|nil) -> true | nil, err, code (names or ids) */
static int fs_chown(lua_State *L)
{
    const char *path = er_checkpath(L, 1, "fs.chown");
    uid_t uid;
    gid_t gid;
    const char *uname = NULL, *gname = NULL;
    if (!resolve_uid(L, 2, &uid, &uname))
        return er_fail(L, "ENOUSER", "fs.chown: no such user '%s' (%s)", uname, path);
    if (!resolve_gid(L, 3, &gid, &gname))
        return er_fail(L, "ENOGROUP", "fs.chown: no such group '%s' (%s)", gname, path);
    if (lchown(path, uid, gid) != 0)
        return er_fail_errno(L, "fs.chown", path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int r = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    return r == 0 ? 0 : errno;
}

/* fs.remove(path, {recursive=false}) -> removed:boolean | nil, err, code
 * A missing path is not an error (removed=false). Refuses "/" whatever the
 * spelling, because no caller ever means it. */
static int fs_remove(lua_State *L)
{
    static const char *const known[] = {"recursive", NULL};
    const char *path = er_checkpath(L, 1, "fs.remove");
    er_check_options(L, 2, "fs.remove", known);
    int recursive = er_opt_boolean(L, 2, "recursive", 0);
    char real[PATH_MAX];
    if (realpath(path, real) && strcmp(real, "/") == 0)
        return er_fail(L, "EPERM", "fs.remove: refusing to remove the root directory (%s)", path);
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) {
            lua_pushboolean(L, 0);
            return 1;
        }
        return er_fail_errno(L, "fs.remove", path, errno);
    }
    if (S_ISDIR(st.st_mode)) {
        if (recursive) {
            int err = nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS);
            if (err != 0)
                return er_fail_errno(L, "fs.remove", path, err > 0 ? err : errno);
        } else if (rmdir(path) != 0) {
            return er_fail_errno(L, "fs.remove", path, errno);
        }
    } else if (unlink(path) != 0) {
        return er_fail_errno(L, "fs.remove", path, errno);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.list(path) -> {names...} (sorted, without . and ..) | nil, err, code */
static int fs_list(lua_State *L)
{
    const char *path = er_checkpath(L, 1, "fs.list");
    DIR *d = opendir(path);
    if (!d)
        return er_fail_errno(L, "fs.list", path, errno);
    lua_newtable(L);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++n);
    }
    closedir(d);
    /* readdir order is arbitrary; callers (and diffs) want a stable one */
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    return 1;
}

static void push_hex(lua_State *L, const unsigned char *md, unsigned int len)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    lua_pushlstring(L, hex, 2 * (size_t)len);
}

/* fs.sha256(data) -> hex digest of a string */
static int fs_sha256(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
        return luaL_error(L, "fs.sha256: OpenSSL digest failed");
    push_hex(L, md, mdlen);
    return 1;
}

/* fs.sha256_file(path) -> hex digest | nil, err, code (streams; any size) */
static int fs_sha256_file(lua_State *L)
{
    const char *path = er_checkpath(L, 1, "fs.sha256_file");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return er_fail_errno(L, "fs.sha256_file", path, errno);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        close(fd);
        return luaL_error(L, "fs.sha256_file: OpenSSL digest init failed");
    }
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            EVP_MD_CTX_free(ctx);
            close(fd);
            return er_fail_errno(L, "fs.sha256_file", path, err);
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    }
    close(fd);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    push_hex(L, md, mdlen);
    return 1;
}

/* fs.mode(mode: "0644" | integer, object?) -> integer: a mode as the core reads it
 * (octal string or integer within 0..07777); anything else raises naming object. */
static int fs_mode(lua_State *L)
{
    const char *object = luaL_optstring(L, 2, "mode");
    lua_pushinteger(L, er_checkmode(L, 1, "fs.mode", object));
    return 1;
}

/* fs.sweep(dir, prefix) -> number removed | nil, err, code
 * Removes the entries of dir named "<prefix><pid>-*" whose process is gone
 * and which were not modified for ER_TEMP_STALE_S seconds (directories with
 * their content, no symlink followed); see util-temp.c. */
static int fs_sweep(lua_State *L)
{
    const char *dir = er_checkpath(L, 1, "fs.sweep");
    size_t len;
    const char *prefix = luaL_checklstring(L, 2, &len);
    if (len == 0 || strlen(prefix) != len || strchr(prefix, '/') != NULL)
        return luaL_error(L, "fs.sweep: prefix must be a non-empty file name (%s)", dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        if (errno == ENOENT) {
            lua_pushinteger(L, 0);
            return 1;
        }
        return er_fail_errno(L, "fs.sweep", dir, errno);
    }
    int n = er_temp_sweep(dfd, prefix);
    close(dfd);
    lua_pushinteger(L, n);
    return 1;
}

/* fs.mkdtemp(prefix) -> path of a new private directory "<prefix><pid>-XXXXXX"
 *                       | nil, err, code
 * Directories "<prefix><pid>-*" of processes gone for ER_TEMP_STALE_S are
 * removed first (those a killed run left behind). */
static int fs_mkdtemp(lua_State *L)
{
    const char *prefix = lua_isnoneornil(L, 1) ? "/tmp/etcdrun-" : er_checkpath(L, 1, "fs.mkdtemp");
    char tmpl[PATH_MAX];
    if ((size_t)snprintf(tmpl, sizeof tmpl, "%s%ld-XXXXXX", prefix, (long)getpid())
        >= sizeof tmpl)
        return er_fail_errno(L, "fs.mkdtemp", prefix, ENAMETOOLONG);
    const char *name;
    int dfd = er_open_parent(prefix, &name);
    if (dfd >= 0) {
        if (*name)              /* never sweep a whole directory's pid-like names */
            er_temp_sweep(dfd, name);
        close(dfd);
    }
    if (!mkdtemp(tmpl))
        return er_fail_errno(L, "fs.mkdtemp", prefix, errno);
    lua_pushstring(L, tmpl);
    return 1;
}

/* fs.symlink(target, path) -> true | nil, err, code */
static int fs_symlink(lua_State *L)
{
    const char *target = er_checkpath(L, 1, "fs.symlink");
    const char *path = er_checkpath(L, 2, "fs.symlink");
    if (symlink(target, path) != 0)
        return er_fail_errno(L, "fs.symlink", path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.realpath(path) -> path with every symlink resolved | nil, err, code (ENOENT: dangling) */
static int fs_realpath(lua_State *L)
{
    const char *path = er_checkpath(L, 1, "fs.realpath");
    char real[PATH_MAX];
    if (!realpath(path, real))
        return er_fail_errno(L, "fs.realpath", path, errno);
    lua_pushstring(L, real);
    return 1;
}

int luaopen_etcdrun_core_fs(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"stat", fs_stat},       {"read", fs_read},         {"write", fs_write},
        {"mkdir", fs_mkdir},     {"chmod", fs_chmod},       {"chown", fs_chown},
        {"remove", fs_remove},   {"list", fs_list},         {"sha256", fs_sha256},
        {"sha256_file", fs_sha256_file}, {"mkdtemp", fs_mkdtemp}, {"symlink", fs_symlink},
        {"realpath", fs_realpath}, {"tempname", fs_tempname},
        {"sweep", fs_sweep},     {"mode", fs_mode},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    return 1;
}
