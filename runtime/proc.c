/*
 * proc.c: running a local command (etcdrun.core.proc), for the controller's
 * side of a playbook: the same {stdout, stderr, status} a remote exec gives,
 * with stdin and a timeout, so modules treat the controller like any host.
 */
#include "etcdrun.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_pipe(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
}

/* proc.run(command, {stdin=, timeout=seconds (600; math.huge: none), max_output=bytes}) ->
 *   {stdout=, stderr=, status=, signal=?, truncated=} | nil, err, code
 * command runs under /bin/sh -c in its own process group. The deadline covers
 * everything: writing stdin, reading output and waiting for the exit, even
 * after the command closed its stdout and stderr; on timeout (or Ctrl-C) the
 * whole group is killed. */
static int proc_run(lua_State *L)
{
    static const char *const known[] = {"stdin", "timeout", "max_output", NULL};
    size_t cmd_len;
    const char *cmd = luaL_checklstring(L, 1, &cmd_len);
    if (strlen(cmd) != cmd_len) /* sh would run only the part before it */
        return luaL_argerror(L, 1, "contains a NUL byte");
    er_check_options(L, 2, "proc.run", known);
    size_t in_len = 0;
    const char *in = NULL;
    if (lua_istable(L, 2) && lua_getfield(L, 2, "stdin") != LUA_TNIL)
        in = luaL_checklstring(L, -1, &in_len);
    long long timeout_ms = er_opt_timeout_ms(L, 2, "proc.run", "timeout", 600);
    lua_Integer max_opt = er_opt_integer(L, 2, "max_output", 32 * 1024 * 1024);
    if (max_opt < 0)
        return luaL_error(L, "proc.run: option 'max_output' must not be negative");
    size_t max = (size_t)max_opt;

    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) {
        int err = errno;
        close_pipe(pin), close_pipe(pout), close_pipe(perr);
        return er_fail_errno(L, "proc.run", cmd, err);
    }
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close_pipe(pin), close_pipe(pout), close_pipe(perr);
        return er_fail_errno(L, "proc.run", cmd, err);
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so kill(-pid) cannot race the child's own call */
    close(pin[0]), close(pout[1]), close(perr[1]);
    int wfd = pin[1];
    fcntl(wfd, F_SETFL, O_NONBLOCK);
    size_t in_off = 0;
    if (!in || in_len == 0) {
        close(wfd);
        wfd = -1;
    }

    luaL_Buffer bout;
    /* one luaL_Buffer at a time may live on the stack: stderr goes to a C buffer */
    luaL_buffinit(L, &bout);
    char *ebuf = NULL;
    size_t elen = 0, ecap = 0;
    int truncated = 0, timed_out = 0, status = 0, reaped = 0;
    size_t olen = 0;
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int open_out = 1, open_err = 1;
    /* Done when both pipes are closed and the command has exited: a command
       that closes its output early is still waited for, under the deadline. */
    while (open_out || open_err || !reaped) {
        if (!reaped) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid || (w < 0 && errno == ECHILD))
                reaped = 1;
            if (reaped && !open_out && !open_err)
                break;
        }
        long long left = deadline < 0 ? 100 : deadline - now_ms();
        if (left <= 0 || er_interrupted()) {
            timed_out = 1;
            break;
        }
        struct pollfd fds[3];
        int n = 0;
        if (open_out)
            fds[n++] = (struct pollfd){.fd = pout[0], .events = POLLIN};
        if (open_err)
            fds[n++] = (struct pollfd){.fd = perr[0], .events = POLLIN};
        if (wfd >= 0)
            fds[n++] = (struct pollfd){.fd = wfd, .events = POLLOUT};
        /* with no pipe left, poll only paces the wait for the exit */
        int slice = n == 0 || (!open_out && !open_err) ? 10 : 100;
        int r = poll(fds, (nfds_t)n, left > slice ? slice : (int)left);
        if (r < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n && r > 0; i++) {
            if (!fds[i].revents)
                continue;
            if (fds[i].fd == wfd) {
                ssize_t w = write(wfd, in + in_off, in_len - in_off);
                if (w > 0)
                    in_off += (size_t)w;
                if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    close(wfd); /* the command stopped reading: not an error */
                    wfd = -1;
                } else if (in_off == in_len) {
                    close(wfd);
                    wfd = -1;
                }
                continue;
            }
            char tmp[16384];
            ssize_t got = read(fds[i].fd, tmp, sizeof tmp);
            if (got < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (got <= 0) {
                if (fds[i].fd == pout[0])
                    open_out = 0;
                else
                    open_err = 0;
                continue;
            }
            size_t keep = (size_t)got;
            if (fds[i].fd == pout[0]) {
                if (olen + keep > max)
                    keep = max > olen ? max - olen : 0, truncated = 1;
                luaL_addlstring(&bout, tmp, keep);
                olen += keep;
            } else {
                if (elen + keep > max)
                    keep = max > elen ? max - elen : 0, truncated = 1;
                if (elen + keep > ecap) {
                    size_t cap = ecap ? ecap * 2 : 4096;
                    while (cap < elen + keep)
                        cap *= 2;
                    char *p = realloc(ebuf, cap);
                    if (!p)
                        break;
                    ebuf = p, ecap = cap;
                }
                memcpy(ebuf + elen, tmp, keep);
                elen += keep;
            }
        }
    }
    if (wfd >= 0)
        close(wfd);
    close(pout[0]), close(perr[0]);
    if (timed_out)
        kill(-pid, SIGKILL);
    if (!reaped)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    luaL_pushresult(&bout); /* stdout */
    if (timed_out) {
        free(ebuf);
        if (er_interrupted())
            return er_fail(L, "EINTR", "proc.run: interrupted, command killed (%s)", cmd);
        return er_fail(L, "ETIMEDOUT", "proc.run: command timed out after %.1f s and was killed (%s)",
                       (double)timeout_ms / 1000.0, cmd);
    }
    lua_createtable(L, 0, 5);
    lua_insert(L, -2);
    lua_setfield(L, -2, "stdout");
    lua_pushlstring(L, ebuf ? ebuf : "", elen);
    free(ebuf);
    lua_setfield(L, -2, "stderr");
    if (WIFEXITED(status)) {
        lua_pushinteger(L, WEXITSTATUS(status));
    } else {
        lua_pushinteger(L, 128 + WTERMSIG(status));
        lua_pushinteger(L, WTERMSIG(status));
        lua_setfield(L, -3, "signal");
    }
    lua_setfield(L, -2, "status");
    lua_pushboolean(L, truncated);
    lua_setfield(L, -2, "truncated");
    return 1;
}

int luaopen_etcdrun_core_proc(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"run", proc_run}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
