/*
 * main.c: the etcdrun binary. It builds one Lua state, makes the core
 * primitives requirable as "etcdrun.core.<family>", points package.path at
 * the Lua half of the runtime, and hands argv to lua/etcdrun/cli.lua, which
 * owns all command-line policy. Only this file exits.
 */
#include "etcdrun.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <lualib.h>

#include <archive.h>
#include <curl/curl.h>
#include <libssh/libssh.h>
#include <openssl/crypto.h>

/* etcdrun.h declared every family found in runtime/ (build/families.h). */

#ifndef ETCDRUN_DATADIR
#define ETCDRUN_DATADIR "/usr/local/share/etcdrun"
#endif

static lua_State *global_L;

/* Ctrl-C: set the flag bindings poll, and stop Lua code at the next hook. */
static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted");
}

static void on_sigint(int sig)
{
    int mask = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
    signal(sig, SIG_DFL); /* a second Ctrl-C kills the process */
    er_set_interrupted(1);
    if (global_L) /* NULL once the state is being closed */
        lua_sethook(global_L, interrupt_hook, mask, 1);
}

/* Close the Lua state: every session's __gc cancels its job (a running remote
   command is killed) and joins its worker thread, key jobs join theirs. After
   this no thread of ours runs, so exit()'s library teardown is safe. */
static int exiting; /* close_state has begun: a finalizer calling os.exit must not re-enter */
static int exit_code = 0;

static void close_state(lua_State *L)
{
    exiting = 1;
    global_L = NULL;
    fflush(stdout);
    lua_close(L);
    curl_global_cleanup();
}

/*
 * os.exit([code [, close]]), replacing Lua's: that one calls exit() at once,
 * while SSH worker threads still use their sessions and OpenSSL, and exit's
 * teardown then crashes them (SIGSEGV). This one always closes the state
 * first, as Lua's does when asked to, whatever `close` says.
 */
static int safe_exit(lua_State *L)
{
    if (lua_isboolean(L, 1))
        exit_code = lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE;
    else
        exit_code = (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
    if (exiting) /* from a __gc while the state closes: the close goes on, with this code */
        return luaL_error(L, "os.exit: already exiting");
    close_state(L); /* L is gone from here on */
    exit(exit_code);
}

/* Message handler: turn any error value into "message\ntraceback". */
static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * Where the Lua half lives: next to the binary in a build tree (so ./etcdrun
 * works straight after make), else <prefix>/share/etcdrun after make install.
 * ETCDRUN_HOME overrides both.
 */
static void find_root(char *root, size_t size)
{
    const char *env = getenv("ETCDRUN_HOME");
    if (env && *env) {
        snprintf(root, size, "%s", env);
        return;
    }
    static const char *const candidates[] = {"", "/../share/etcdrun"};
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (slash) {
        *slash = '\0';
        for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
            char probe[PATH_MAX];
            int len = snprintf(probe, sizeof probe, "%s%s/lua/etcdrun/cli.lua", exe,
                               candidates[i]);
            if (len > 0 && (size_t)len < sizeof probe && is_file(probe)) {
                /* canonical, so paths built on it (messages, the completion's
                   installed playbooks) read /usr/share/etcdrun, not /usr/bin/../ */
                char real[PATH_MAX];
                snprintf(probe, sizeof probe, "%s%s", exe, candidates[i]);
                len = snprintf(root, size, "%s", realpath(probe, real) ? real : probe);
                if (len > 0 && (size_t)len < size)
                    return;
            }
        }
    }
    snprintf(root, size, "%s", ETCDRUN_DATADIR);
}

/* runtime.versions() -> {etcdrun=, lua=, libssh=, openssl=, libarchive=, libcurl=} */
static int runtime_versions(lua_State *L)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, ETCDRUN_VERSION);
    lua_setfield(L, -2, "etcdrun");
    lua_pushstring(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua");
    lua_pushstring(L, ssh_version(0));
    lua_setfield(L, -2, "libssh");
    lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
    lua_setfield(L, -2, "openssl");
    /* libarchive builds this string anew on every call and drops the last
       one (LeakSanitizer sees the leak once a script asks twice): ask once */
    static const char *archive_details;
    if (!archive_details)
        archive_details = archive_version_details();
    lua_pushstring(L, archive_details);
    lua_setfield(L, -2, "libarchive");
    lua_pushstring(L, curl_version());
    lua_setfield(L, -2, "libcurl");
    return 1;
}

/* runtime.isatty(fd) -> boolean */
static int runtime_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* runtime.interrupted() -> boolean (Ctrl-C seen) */
static int runtime_interrupted(lua_State *L)
{
    lua_pushboolean(L, er_interrupted());
    return 1;
}

/* runtime.monotonic() -> seconds (float) on a clock that never jumps */
static int runtime_monotonic(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* runtime.getpass(prompt) -> string | nil, err, code
 * Reads a secret from the controlling terminal with echo off, so that a
 * passphrase is asked once, up front, never in the middle of a parallel run. */
static int runtime_getpass(lua_State *L)
{
    const char *prompt = luaL_checkstring(L, 1);
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return er_fail(L, "ENOTTY", "getpass: no terminal to ask on (%s)", prompt);
    struct termios old, quiet;
    int fd = fileno(tty);
    int have_termios = tcgetattr(fd, &old) == 0;
    if (have_termios) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    fputs(prompt, tty);
    fflush(tty);
    char line[1024];
    char *got = fgets(line, sizeof line, tty);
    if (have_termios)
        tcsetattr(fd, TCSAFLUSH, &old);
    fputs("\n", tty);
    fclose(tty);
    if (!got)
        return er_fail(L, "EIO", "getpass: nothing read (%s)", prompt);
    line[strcspn(line, "\r\n")] = '\0';
    lua_pushstring(L, line);
    OPENSSL_cleanse(line, sizeof line);
    return 1;
}

/* runtime.abspath(path) -> path made absolute against the process's working
 * directory as the kernel has it (not $PWD, which a parent may not have set). */
static int runtime_abspath(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    if (strlen(path) != len)
        return luaL_error(L, "runtime.abspath: path contains a NUL byte");
    if (path[0] == '/') {
        lua_settop(L, 1);
        return 1;
    }
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return luaL_error(L, "runtime.abspath: working directory unknown: %s", strerror(errno));
    if (strcmp(path, ".") == 0 || len == 0)
        lua_pushstring(L, cwd);
    else
        lua_pushfstring(L, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/",
                        strncmp(path, "./", 2) == 0 ? path + 2 : path);
    return 1;
}

/* runtime.hostname() -> this machine's name (who holds a lock, in messages) */
static int runtime_hostname(lua_State *L)
{
    char name[256];
    if (gethostname(name, sizeof name - 1) != 0)
        return er_fail(L, "EIO", "gethostname: %s", strerror(errno));
    name[sizeof name - 1] = '\0';
    lua_pushstring(L, name);
    return 1;
}

/* runtime.exit_code(n): remembered and used as the process's exit status */
static int runtime_set_exit(lua_State *L)
{
    exit_code = (int)luaL_checkinteger(L, 1);
    return 0;
}

static int luaopen_etcdrun_core_runtime(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"versions", runtime_versions},
        {"isatty", runtime_isatty},
        {"interrupted", runtime_interrupted},
        {"set_exit", runtime_set_exit},
        {"monotonic", runtime_monotonic},
        {"getpass", runtime_getpass},
        {"abspath", runtime_abspath},
        {"hostname", runtime_hostname},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    lua_pushinteger(L, (lua_Integer)getpid());
    lua_setfield(L, -2, "pid");
    lua_pushstring(L, lua_tostring(L, lua_upvalueindex(1)));
    lua_setfield(L, -2, "root");
    return 1;
}

static void set_package_path(lua_State *L, const char *root)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s", root, root, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

static void preload(lua_State *L, const char *root)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
#define PRELOAD_FAMILY(name)                                                                      \
    lua_pushcfunction(L, luaopen_etcdrun_core_##name);                                            \
    lua_setfield(L, -2, "etcdrun.core." #name);
    ETCDRUN_FAMILIES(PRELOAD_FAMILY)
#undef PRELOAD_FAMILY
    lua_pushstring(L, root);
    lua_pushcclosure(L, luaopen_etcdrun_core_runtime, 1);
    lua_setfield(L, -2, "etcdrun.core.runtime");
    lua_pop(L, 1);
}

/* Runs inside the protected call: everything that can raise happens here. */
static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    char root[PATH_MAX];

    luaL_openlibs(L);
    lua_getglobal(L, "os");
    lua_pushcfunction(L, safe_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
    find_root(root, sizeof root);
    set_package_path(L, root);
    preload(L, root);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "etcdrun.cli");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_call(L, 1, 1);
    if (lua_isinteger(L, -1))
        exit_code = (int)lua_tointeger(L, -1);
    return 0;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "etcdrun: cannot create Lua state: not enough memory\n");
        return 1;
    }
    global_L = L;
    signal(SIGINT, on_sigint);
    signal(SIGPIPE, SIG_IGN); /* a closed socket is an error return, not a death */
    curl_global_init(CURL_GLOBAL_DEFAULT);

    lua_pushcfunction(L, traceback);
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 0, 1);
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "etcdrun: %s\n", msg ? msg : "(no message)");
        fflush(stderr);
        exit_code = 1;
    }
    close_state(L);
    return exit_code;
}
