/*
 * ssh-io.c: the work of exec and SFTP jobs (part of the ssh family), on a
 * session's worker thread: commands with stdin, bounded output and a
 * timeout that kills them on the node; files put and got over SFTP.
 */
#include "ssh-internal.h"

#include <libssh/callbacks.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- exec --------------------------------------------------------------- */

/*
 * Commands run as  printf '\036%d\036' $$ >&2; eval '<command>'  so that the
 * first bytes on stderr name the remote shell's pid, which sshd made a
 * process group leader. A timed-out command is killed through that group:
 * OpenSSH refuses "signal" channel requests for root sessions, so the
 * protocol's own way cannot be relied on.
 */
#define PID_MARK '\036'

static char *wrap_command(const char *cmd)
{
    static const char head[] = "printf '\\036%d\\036' $$ >&2; eval '";
    size_t n = strlen(head) + 3;
    for (const char *p = cmd; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *w = malloc(n);
    if (!w)
        return NULL;
    char *o = w + sprintf(w, "%s", head);
    for (const char *p = cmd; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return w;
}

/* Take the pid marker off the front of stderr once it has fully arrived. */
static void take_pid_mark(struct job *j)
{
    if (j->remote_pid != 0 || j->err.len < 2)
        return;
    if (j->err.p[0] != PID_MARK) {
        j->remote_pid = -1; /* not ours (a non-POSIX login shell): no kill by group */
        return;
    }
    char *end = memchr(j->err.p + 1, PID_MARK, j->err.len - 1);
    if (!end)
        return;
    j->remote_pid = strtol(j->err.p + 1, NULL, 10);
    size_t cut = (size_t)(end - j->err.p) + 1;
    memmove(j->err.p, j->err.p + cut, j->err.len - cut);
    j->err.len -= cut;
    if (j->remote_pid <= 1)
        j->remote_pid = -1;
}

static void drain(ssh_channel ch, struct job *j)
{
    char tmp[CHUNK];
    int n;
    while ((n = ssh_channel_read_nonblocking(ch, tmp, sizeof tmp, 0)) > 0)
        if (!sx_buf_add(&j->out, tmp, (size_t)n, j->max_output))
            j->out_trunc = 1;
    while ((n = ssh_channel_read_nonblocking(ch, tmp, sizeof tmp, 1)) > 0) {
        /* room for the marker, which is not output */
        if (!sx_buf_add(&j->err, tmp, (size_t)n, j->max_output + 32))
            j->err_trunc = 1;
        take_pid_mark(j);
    }
}

/* Kill a timed-out command's process group from a second channel. */
static void kill_remote(struct session *s, struct job *j, ssh_channel ch)
{
    take_pid_mark(j);
    if (j->remote_pid > 1) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s%skill -KILL -- -%ld %ld 2>/dev/null; true",
                 j->kill_prefix ? j->kill_prefix : "", j->kill_prefix ? " " : "",
                 j->remote_pid, j->remote_pid);
        ssh_channel k = ssh_channel_new(s->ssh);
        if (k && ssh_channel_open_session(k) == SSH_OK &&
            ssh_channel_request_exec(k, cmd) == SSH_OK) {
            char sink[256];
            while (ssh_channel_read_timeout(k, sink, sizeof sink, 0, 5000) > 0)
                ;
            ssh_channel_close(k);
        }
        if (k)
            ssh_channel_free(k);
    }
    ssh_channel_request_send_signal(ch, "KILL"); /* for servers that honour it */
}

/* How the command ended, from the channel's exit-status/exit-signal requests. */
struct exec_end {
    int seen, status, signal;
};

static void on_exit_status(ssh_session ss, ssh_channel ch, int status, void *userdata)
{
    (void)ss, (void)ch;
    struct exec_end *e = userdata;
    e->seen = 1;
    e->status = status;
}

static void on_exit_signal(ssh_session ss, ssh_channel ch, const char *sig, int core,
                           const char *errmsg, const char *lang, void *userdata)
{
    (void)ss, (void)ch, (void)core, (void)errmsg, (void)lang;
    static const char *const names[] = {"",     "HUP",  "INT",  "QUIT", "ILL",  "TRAP",
                                        "ABRT", "BUS",  "FPE",  "KILL", "USR1", "SEGV",
                                        "USR2", "PIPE", "ALRM", "TERM", NULL};
    struct exec_end *e = userdata;
    e->seen = 1;
    e->signal = 15; /* a name this table does not know: say TERM rather than nothing */
    for (int i = 1; names[i]; i++)
        if (sig && strcmp(sig, names[i]) == 0)
            e->signal = i;
    e->status = 128 + e->signal;
}

static int session_broken(struct session *s)
{
    return (ssh_get_status(s->ssh) & SSH_CLOSED_ERROR) != 0;
}

/*
 * Wait up to ms for packets once the command's output has ended (the remote
 * sent EOF): channel polls return at once then, so this waits for the exit
 * status instead, with the session's protocol timeout briefly set to the
 * slice. The command may close its output long before it exits.
 */
static void wait_exit(struct session *s, ssh_channel ch, int ms)
{
    long sec = 0, usec = (long)(ms > 0 ? ms : 1) * 1000L, zero = 0;
    ssh_options_set(s->ssh, SSH_OPTIONS_TIMEOUT, &sec);
    ssh_options_set(s->ssh, SSH_OPTIONS_TIMEOUT_USEC, &usec);
    ssh_channel_get_exit_status(ch);
    ssh_options_set(s->ssh, SSH_OPTIONS_TIMEOUT, &s->timeout_s);
    ssh_options_set(s->ssh, SSH_OPTIONS_TIMEOUT_USEC, &zero);
}

/*
 * Write what the remote window allows of stdin, never more, so a write never
 * waits for the window while output piles up unread (a command like tee
 * stops reading its input until its output is read). Returns 1 when some was
 * written, 0 when none could be, -1 when the session broke.
 */
static int feed_stdin(struct session *s, struct job *j, ssh_channel ch, size_t *off, int *in_open)
{
    if (ssh_channel_is_closed(ch)) {
        *in_open = 0; /* the command ended without reading it all, as a pipe allows */
        return 0;
    }
    size_t n = j->in.len - *off;
    uint32_t win = ssh_channel_window_size(ch);
    if (win == 0)
        return 0;
    if (n > win)
        n = win;
    if (n > CHUNK)
        n = CHUNK;
    int w = ssh_channel_write(ch, j->in.p + *off, (uint32_t)n);
    if (w < 0) {
        if (session_broken(s))
            return -1;
        *in_open = 0; /* the remote end closed: nothing reads any more */
        return 0;
    }
    *off += (size_t)w;
    if (*off == j->in.len) {
        ssh_channel_send_eof(ch);
        *in_open = 0;
    }
    return w > 0;
}

/* The callbacks point into sx_run_exec's frame, and libssh keeps a freed
   channel until the server's close arrives: unhook them before freeing. */
static void free_channel(ssh_channel ch, struct ssh_channel_callbacks_struct *cb)
{
    ssh_remove_channel_callbacks(ch, cb);
    ssh_channel_free(ch);
}

void sx_run_exec(struct session *s, struct job *j, const volatile int *closing)
{
    if (!sx_need_connection(s, j, "exec"))
        return;
    struct exec_end end = {0, -1, 0};
    struct ssh_channel_callbacks_struct cb;
    memset(&cb, 0, sizeof cb);
    cb.userdata = &end;
    cb.channel_exit_status_function = on_exit_status;
    cb.channel_exit_signal_function = on_exit_signal;
    ssh_callbacks_init(&cb);
    char *wrapped = wrap_command(j->a);
    ssh_channel ch = wrapped ? ssh_channel_new(s->ssh) : NULL;
    int started = ch && ssh_set_channel_callbacks(ch, &cb) == SSH_OK &&
                  ssh_channel_open_session(ch) == SSH_OK &&
                  ssh_channel_request_exec(ch, wrapped) == SSH_OK;
    free(wrapped);
    if (!started) {
        sx_job_fail(j, "ECHANNEL", "ssh.exec: cannot start command: %s (%s)",
                 ssh_get_error(s->ssh), s->name);
        if (ch)
            free_channel(ch, &cb);
        return;
    }
    size_t off = 0;
    int in_open = j->has_in && j->in.len > 0;
    if (!in_open)
        ssh_channel_send_eof(ch);

    /* The deadline covers writing stdin, reading output and waiting for the
       exit status, whichever the command is doing when it runs out. */
    long long deadline = j->timeout_ms < 0 ? -1 : sx_now_ms() + j->timeout_ms;
    int timed_out = 0, cancelled = 0, lost = 0;
    for (;;) {
        int wrote = 0;
        if (in_open && (wrote = feed_stdin(s, j, ch, &off, &in_open)) < 0) {
            lost = 1;
            break;
        }
        int slice = in_open ? (wrote ? 0 : 5) : 50;
        int rc = 0;
        if (!ssh_channel_is_eof(ch))
            rc = ssh_channel_poll_timeout(ch, slice, 0);
        else if (!end.seen && !ssh_channel_is_closed(ch))
            wait_exit(s, ch, slice);
        if (rc == SSH_ERROR || session_broken(s)) {
            lost = 1;
            break;
        }
        drain(ch, j);
        if (ssh_channel_is_eof(ch) && (end.seen || ssh_channel_is_closed(ch)))
            break;
        if (deadline >= 0 && sx_now_ms() > deadline) {
            timed_out = 1;
            break;
        }
        if (*closing || er_interrupted()) {
            cancelled = 1;
            break;
        }
    }
    if (lost) {
        sx_job_fail(j, "ECONNLOST", "ssh.exec: connection lost: %s (%s)", ssh_get_error(s->ssh),
                 s->name);
        free_channel(ch, &cb);
        s->connected = 0;
        return;
    }
    if (timed_out || cancelled) {
        /* sshd signals the command's whole process group (it runs in its own session) */
        kill_remote(s, j, ch);
        ssh_channel_close(ch);
        free_channel(ch, &cb);
        if (timed_out)
            sx_job_fail(j, "ETIMEDOUT", "ssh.exec: command timed out after %.1f s and was killed (%s)",
                     (double)j->timeout_ms / 1000.0, s->name);
        else if (*closing && !er_interrupted()) /* Session:close(), os.exit, or collected */
            sx_job_fail(j, "ECLOSED", "ssh.exec: session closed, command killed (%s)", s->name);
        else
            sx_job_fail(j, "EINTR", "ssh.exec: interrupted, command killed (%s)", s->name);
        return;
    }
    drain(ch, j);
    if (j->remote_pid == 0 && j->err.len > 0)
        j->remote_pid = -1; /* an incomplete marker is output, keep it */
    ssh_channel_close(ch);
    free_channel(ch, &cb);
    if (!end.seen) {
        sx_job_fail(j, "ECHANNEL", "ssh.exec: the command ended without an exit status (%s)",
                 s->name);
        return;
    }
    j->status = end.status;
    j->signal = end.signal;
    j->ok = 1;
}

/* ---- SFTP --------------------------------------------------------------- */

static int need_sftp(struct session *s, struct job *j, const char *op)
{
    if (!sx_need_connection(s, j, op))
        return 0;
    if (s->sftp)
        return 1;
    s->sftp = sftp_new(s->ssh);
    if (!s->sftp || sftp_init(s->sftp) != SSH_OK) {
        sx_job_fail(j, "ESFTP", "ssh.%s: SFTP is not available on %s: %s (%s)", op, s->host,
                 ssh_get_error(s->ssh), s->name);
        if (s->sftp)
            sftp_free(s->sftp);
        s->sftp = NULL;
        return 0;
    }
    return 1;
}

static void sftp_fail(struct session *s, struct job *j, const char *op, const char *path)
{
    int e = sftp_get_error(s->sftp);
    const char *code = "EIO", *why = ssh_get_error(s->ssh);
    switch (e) {
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
        code = "ENOENT", why = "No such file or directory";
        break;
    case SSH_FX_PERMISSION_DENIED:
        code = "EACCES", why = "Permission denied";
        break;
    case SSH_FX_FILE_ALREADY_EXISTS:
        code = "EEXIST", why = "File exists";
        break;
    case SSH_FX_FAILURE:
        code = "EIO";
        break;
    default:
        break;
    }
    sx_job_fail(j, code, "ssh.%s: %s (%s:%s)", op, why, s->name, path);
}

void sx_run_put(struct session *s, struct job *j, const volatile int *closing)
{
    if (!need_sftp(s, j, "put"))
        return;
    int lfd = -1;
    if (j->local) {
        lfd = open(j->local, O_RDONLY | O_CLOEXEC);
        if (lfd < 0) {
            sx_job_fail(j, er_errno_code(errno), "ssh.put: %s (%s)", strerror(errno), j->local);
            return;
        }
    }
    int flags = O_WRONLY | O_CREAT | O_TRUNC | (j->flag ? O_EXCL : 0);
    sftp_file f = sftp_open(s->sftp, j->b, flags, (mode_t)j->mode);
    if (!f) {
        sftp_fail(s, j, "put", j->b);
        if (lfd >= 0)
            close(lfd);
        return;
    }
    char tmp[CHUNK];
    size_t off = 0;
    for (;;) {
        const char *p;
        size_t n;
        if (lfd >= 0) {
            ssize_t r = read(lfd, tmp, sizeof tmp);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                sx_job_fail(j, er_errno_code(errno), "ssh.put: %s (%s)", strerror(errno), j->local);
                goto fail;
            }
            p = tmp, n = (size_t)r;
        } else {
            p = j->in.p + off;
            n = j->in.len - off > CHUNK ? CHUNK : j->in.len - off;
            off += n;
        }
        if (n == 0)
            break;
        if (*closing || er_interrupted()) {
            int closed = *closing && !er_interrupted();
            sx_job_fail(j, closed ? "ECLOSED" : "EINTR", "ssh.put: %s (%s:%s)",
                     closed ? "session closed" : "interrupted", s->name, j->b);
            goto fail;
        }
        ssize_t w = sftp_write(f, p, n);
        if (w != (ssize_t)n) {
            sftp_fail(s, j, "put", j->b);
            goto fail;
        }
        j->bytes += (long long)n;
    }
    if (sftp_extension_supported(s->sftp, "fsync@openssh.com", "1") && sftp_fsync(f) != 0) {
        sftp_fail(s, j, "put", j->b);
        goto fail;
    }
    if (sftp_close(f) != SSH_NO_ERROR) {
        f = NULL;
        sftp_fail(s, j, "put", j->b);
        goto fail;
    }
    f = NULL;
    /* the server applied its umask at open; the caller asked for exactly this mode */
    if (sftp_chmod(s->sftp, j->b, (mode_t)j->mode) != 0) {
        sftp_fail(s, j, "put", j->b);
        goto fail;
    }
    if (lfd >= 0)
        close(lfd);
    j->ok = 1;
    return;
fail:
    if (f)
        sftp_close(f);
    sftp_unlink(s->sftp, j->b); /* never leave a partial file behind */
    if (lfd >= 0)
        close(lfd);
}

void sx_run_get(struct session *s, struct job *j, const volatile int *closing)
{
    if (!need_sftp(s, j, "get"))
        return;
    sftp_file f = sftp_open(s->sftp, j->a, O_RDONLY, 0);
    if (!f) {
        sftp_fail(s, j, "get", j->a);
        return;
    }
    /* the local copy: a temporary ".NAME.etcdrun-<pid>-*" renamed into place */
    int lfd = -1, dfd = -1;
    const char *lbase = NULL;
    char ltmp[NAME_MAX + 1] = "";
    if (j->local) {
        dfd = er_open_parent(j->local, &lbase);
        if (dfd >= 0 && *lbase == '\0') {
            close(dfd);
            dfd = -1;
            errno = EISDIR;
        }
        if (dfd < 0 || (lfd = er_temp_open(dfd, lbase, 0600, ltmp, sizeof ltmp)) < 0) {
            sx_job_fail(j, er_errno_code(errno), "ssh.get: %s (%s)", strerror(errno), j->local);
            if (dfd >= 0)
                close(dfd);
            sftp_close(f);
            return;
        }
        fchmod(lfd, (mode_t)j->mode);
    }
    char tmp[CHUNK];
    for (;;) {
        if (*closing || er_interrupted()) {
            int closed = *closing && !er_interrupted();
            sx_job_fail(j, closed ? "ECLOSED" : "EINTR", "ssh.get: %s (%s:%s)",
                     closed ? "session closed" : "interrupted", s->name, j->a);
            goto fail;
        }
        ssize_t n = sftp_read(f, tmp, sizeof tmp);
        if (n < 0) {
            sftp_fail(s, j, "get", j->a);
            goto fail;
        }
        if (n == 0)
            break;
        if (lfd >= 0) {
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(lfd, tmp + off, (size_t)(n - off));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w < 0) {
                    sx_job_fail(j, er_errno_code(errno), "ssh.get: %s (%s)", strerror(errno),
                             j->local);
                    goto fail;
                }
                off += w;
            }
        } else if (!sx_buf_add(&j->out, tmp, (size_t)n, j->max_output)) {
            sx_job_fail(j, "E2BIG", "ssh.get: file larger than %zu bytes (%s:%s)", j->max_output,
                     s->name, j->a);
            goto fail;
        }
        j->bytes += n;
    }
    sftp_close(f);
    if (lfd >= 0) {
        int rc = fsync(lfd);
        rc = close(lfd) != 0 ? -1 : rc;
        if (rc != 0 || renameat(dfd, ltmp, dfd, lbase) != 0) {
            sx_job_fail(j, er_errno_code(errno), "ssh.get: %s (%s)", strerror(errno), j->local);
            unlinkat(dfd, ltmp, 0);
            close(dfd);
            return;
        }
        close(dfd);
    }
    j->ok = 1;
    return;
fail:
    sftp_close(f);
    if (lfd >= 0) {
        close(lfd);
        unlinkat(dfd, ltmp, 0);
        close(dfd);
    }
}

void sx_run_simple(struct session *s, struct job *j)
{
    const char *op = sx_kind_names[j->kind];
    if (!need_sftp(s, j, op))
        return;
    int rc = 0;
    switch (j->kind) {
    case J_STAT:
        j->st = j->flag ? sftp_stat(s->sftp, j->a) : sftp_lstat(s->sftp, j->a);
        rc = j->st ? 0 : -1;
        break;
    case J_MKDIR:
        rc = sftp_mkdir(s->sftp, j->a, (mode_t)j->mode);
        if (rc == 0)
            rc = sftp_chmod(s->sftp, j->a, (mode_t)j->mode);
        break;
    case J_REMOVE:
        rc = j->flag ? sftp_rmdir(s->sftp, j->a) : sftp_unlink(s->sftp, j->a);
        break;
    case J_CHMOD:
        rc = sftp_chmod(s->sftp, j->a, (mode_t)j->mode);
        break;
    case J_RENAME:
        rc = sftp_rename(s->sftp, j->a, j->b);
        break;
    default:
        break;
    }
    if (rc != 0)
        sftp_fail(s, j, op, j->a);
    else
        j->ok = 1;
}
