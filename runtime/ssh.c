/*
 * ssh.c: SSH sessions for Lua (etcdrun.core.ssh), on libssh.
 *
 * One libssh session per host, opened once and reused for every command and
 * file transfer. Each session has its own worker thread running blocking
 * libssh calls, because libssh sessions must not be shared between threads
 * and because blocking calls keep this file short. Lua never blocks on one
 * host: it submits a job (connect, exec, put, get, ...) and either waits for
 * that job or, from the runner's scheduler, calls ssh.wait() to learn which
 * jobs finished and resumes the coroutines that were waiting for them.
 *
 * Everything a job needs is copied into C memory when it is submitted and
 * everything it produces stays in C memory until Lua collects it with
 * job:result(), so no Lua value is touched off the main thread.
 */
#include "etcdrun.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#define SESSION_MT "etcdrun.ssh.Session"
#define JOB_MT "etcdrun.ssh.Job"
#define MAX_IDENTITIES 8
#define CHUNK 32768
#define DEFAULT_MAX_OUTPUT (32 * 1024 * 1024)

enum job_kind { J_CONNECT, J_EXEC, J_PUT, J_GET, J_STAT, J_MKDIR, J_REMOVE, J_CHMOD, J_RENAME };

static const char *const kind_names[] = {"connect", "exec", "put", "get", "stat",
                                         "mkdir", "remove", "chmod", "rename", NULL};

struct buf {
    char *p;
    size_t len, cap;
};

struct job {
    int id;
    enum job_kind kind;
    int refs; /* the Lua userdata and the worker each hold one */
    int done;
    struct job *next;
    /* inputs */
    char *a, *b; /* command, or remote path(s) */
    char *local; /* local file to put from / get into */
    struct buf in;
    int has_in;
    long timeout_ms;
    size_t max_output;
    int mode, flag; /* flag: exclusive (put), recursive-free rmdir (remove), follow (stat) */
    /* outputs */
    int ok;
    char code[20];
    char *errmsg;
    struct buf out, err;
    int status, out_trunc, err_trunc;
    long remote_pid; /* the command's process group on the node, from its marker */
    char *kill_prefix; /* e.g. "sudo -n" when the command runs as another user */
    sftp_attributes st;
    char *hostkey_type, *fingerprint, *known_hosts_line;
    long long bytes;
};

struct session {
    char *name, *host, *user, *config, *kh_user, *kh_global, *passphrase;
    char *identities[MAX_IDENTITIES];
    int n_identities, port, accept_new, use_agent, read_config;
    long timeout_s;
    /* touched only by the worker thread */
    ssh_session ssh;
    sftp_session sftp;
    int connected;
    /* under the global lock */
    pthread_t thread;
    int started, closing;
    volatile int cancel; /* read by the worker mid-job without the lock */
    pthread_cond_t wake;
    struct job *head, *tail;
};

/* One lock for queues, refcounts and the finished list: contention is nil
   next to network round trips, and one lock cannot deadlock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t finished_cv = PTHREAD_COND_INITIALIZER;
static int *finished;
static size_t n_finished, cap_finished;
static int next_job_id;

/* ---- small helpers ------------------------------------------------------ */

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void buf_free(struct buf *b)
{
    er_secure_free(b->p, b->cap); /* may hold key material */
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Append up to what max allows; returns 0 when some had to be dropped. */
static int buf_add(struct buf *b, const char *p, size_t n, size_t max)
{
    int whole = 1;
    if (b->len + n > max) {
        n = max > b->len ? max - b->len : 0;
        whole = 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = malloc(cap);
        if (!np)
            return 0;
        if (b->p) {
            memcpy(np, b->p, b->len);
            er_secure_free(b->p, b->cap);
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return whole;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_fail(struct job *j, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void job_fail(struct job *j, const char *code, const char *fmt, ...)
{
    va_list ap;
    char msg[1024];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    j->ok = 0;
    snprintf(j->code, sizeof j->code, "%s", code);
    free(j->errmsg);
    j->errmsg = strdup(msg);
}

static void job_free(struct job *j)
{
    free(j->a);
    free(j->b);
    free(j->local);
    free(j->kill_prefix);
    buf_free(&j->in);
    buf_free(&j->out);
    buf_free(&j->err);
    free(j->errmsg);
    if (j->st)
        sftp_attributes_free(j->st);
    free(j->hostkey_type);
    free(j->fingerprint);
    free(j->known_hosts_line);
    free(j);
}

/* Caller holds the lock. */
static void job_unref(struct job *j)
{
    if (--j->refs == 0)
        job_free(j);
}

static void session_free(struct session *s)
{
    free(s->name);
    free(s->host);
    free(s->user);
    free(s->config);
    free(s->kh_user);
    free(s->kh_global);
    if (s->passphrase)
        er_secure_free(s->passphrase, strlen(s->passphrase));
    for (int i = 0; i < s->n_identities; i++)
        free(s->identities[i]);
    pthread_cond_destroy(&s->wake);
    free(s);
}

/* ---- connect ------------------------------------------------------------ */

/* Map libssh's connect failure text to a stable code a user can act on. */
static const char *connect_code(const char *msg)
{
    if (strstr(msg, "refused"))
        return "ECONNREFUSED";
    if (strstr(msg, "imeout") || strstr(msg, "timed out"))
        return "ETIMEDOUT";
    if (strstr(msg, "resolve") || strstr(msg, "Name or service") || strstr(msg, "not known"))
        return "ERESOLVE";
    if (strstr(msg, "unreachable"))
        return "EHOSTUNREACH";
    return "ECONNECT";
}

static char *key_fingerprint(ssh_key key)
{
    unsigned char *hash = NULL;
    size_t hlen = 0;
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0)
        return strdup("(no fingerprint)");
    char *fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    ssh_clean_pubkey_hash(&hash);
    char *copy = strdup(fp ? fp : "(no fingerprint)");
    ssh_string_free_char(fp);
    return copy;
}

/*
 * The fingerprint known_hosts holds for this host and key type, for the
 * "host key changed" message: libssh reports the mismatch but not the key
 * it expected, and an operator needs both to decide.
 */
static char *known_fingerprint(struct session *s, enum ssh_keytypes_e type)
{
    char *host = NULL, *file = NULL, *found = NULL;
    unsigned int port = 22;
    ssh_options_get(s->ssh, SSH_OPTIONS_HOST, &host);
    ssh_options_get(s->ssh, SSH_OPTIONS_KNOWNHOSTS, &file);
    ssh_options_get_port(s->ssh, &port);
    FILE *f = host && file ? fopen(file, "r") : NULL;
    if (f) {
        char name[300];
        if (port == 22)
            snprintf(name, sizeof name, "%s", host);
        else
            snprintf(name, sizeof name, "[%s]:%u", host, port);
        char line[8192];
        while (!found && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = '\0';
            struct ssh_knownhosts_entry *e = NULL;
            if (line[0] && line[0] != '#' &&
                ssh_known_hosts_parse_line(name, line, &e) == SSH_OK && e && e->publickey &&
                ssh_key_type(e->publickey) == type)
                found = key_fingerprint(e->publickey);
            ssh_knownhosts_entry_free(e);
        }
        fclose(f);
    }
    ssh_string_free_char(host);
    ssh_string_free_char(file);
    return found;
}

static int check_host_key(struct session *s, struct job *j)
{
    ssh_key srv = NULL;
    if (ssh_get_server_publickey(s->ssh, &srv) != SSH_OK) {
        job_fail(j, "EHOSTKEY", "ssh.connect: server sent no host key (%s)", s->name);
        return 0;
    }
    enum ssh_keytypes_e srv_type = ssh_key_type(srv);
    j->hostkey_type = strdup(ssh_key_type_to_char(srv_type));
    j->fingerprint = key_fingerprint(srv);
    ssh_key_free(srv);

    enum ssh_known_hosts_e state = ssh_session_is_known_server(s->ssh);
    char *known_fp = NULL;
    switch (state) {
    case SSH_KNOWN_HOSTS_OK:
        return 1;
    case SSH_KNOWN_HOSTS_CHANGED:
        known_fp = known_fingerprint(s, srv_type);
        job_fail(j, "EHOSTKEY",
                 "ssh.connect: host key CHANGED for %s: server sent %s %s, known_hosts has %s "
                 "(%s); if the node was rebuilt, remove the old line",
                 s->host, j->hostkey_type, j->fingerprint, known_fp ? known_fp : "another key",
                 s->name);
        free(known_fp);
        return 0;
    case SSH_KNOWN_HOSTS_OTHER:
        job_fail(j, "EHOSTKEY",
                 "ssh.connect: host key mismatch for %s: server sent %s %s but known_hosts "
                 "holds a key of another type for it (%s)",
                 s->host, j->hostkey_type, j->fingerprint, s->name);
        return 0;
    case SSH_KNOWN_HOSTS_NOT_FOUND:
    case SSH_KNOWN_HOSTS_UNKNOWN:
        if (s->accept_new) {
            char *line = NULL;
            if (ssh_session_export_known_hosts_entry(s->ssh, &line) != SSH_OK) {
                job_fail(j, "EHOSTKEY", "ssh.connect: cannot export host key of %s (%s)",
                         s->host, s->name);
                return 0;
            }
            j->known_hosts_line = strdup(line);
            ssh_string_free_char(line);
            return 1;
        }
        job_fail(j, "EHOSTKEY",
                 "ssh.connect: host key for %s is not known: server sent %s %s, known_hosts "
                 "has none (%s); add it to known_hosts or use --host-key accept-new",
                 s->host, j->hostkey_type, j->fingerprint, s->name);
        return 0;
    case SSH_KNOWN_HOSTS_ERROR:
    default:
        job_fail(j, "EHOSTKEY", "ssh.connect: cannot check host key of %s: %s (%s)", s->host,
                 ssh_get_error(s->ssh), s->name);
        return 0;
    }
}

/* libssh asks here when a key file needs a passphrase we do not have. */
static int no_passphrase(const char *prompt, char *buf, size_t len, int echo, int verify,
                         void *userdata)
{
    (void)prompt, (void)buf, (void)len, (void)echo, (void)verify;
    if (userdata)
        *(int *)userdata = 1;
    return -1;
}

/* Append "what" to the comma-separated list of methods tried, cutting at size. */
static void tried_add(char *tried, size_t size, const char *what)
{
    size_t n = strlen(tried);
    if (n && n + 2 < size) {
        memcpy(tried + n, ", ", 3);
        n += 2;
    }
    size_t w = strlen(what);
    if (n + w >= size)
        w = size - n - 1;
    memcpy(tried + n, what, w);
    tried[n + w] = '\0';
}

static int authenticate(struct session *s, struct job *j)
{
    int rc = ssh_userauth_none(s->ssh, NULL);
    if (rc == SSH_AUTH_SUCCESS)
        return 1;
    if (rc == SSH_AUTH_ERROR)
        goto lost;
    char tried[1024] = "";
    for (int i = 0; i < s->n_identities; i++) {
        ssh_key key = NULL;
        char what[PATH_MAX + 64];
        int needs = 0;
        if (ssh_pki_import_privkey_file(s->identities[i], s->passphrase,
                                        s->passphrase ? NULL : no_passphrase, &needs,
                                        &key) != SSH_OK) {
            snprintf(what, sizeof what, "key %s (%s)", s->identities[i],
                     needs ? "needs a passphrase" : "unreadable or wrong passphrase");
            tried_add(tried, sizeof tried, what);
            continue;
        }
        rc = ssh_userauth_publickey(s->ssh, NULL, key);
        ssh_key_free(key);
        snprintf(what, sizeof what, "key %s", s->identities[i]);
        tried_add(tried, sizeof tried, what);
        if (rc == SSH_AUTH_SUCCESS)
            return 1;
        if (rc == SSH_AUTH_ERROR)
            goto lost;
    }
    if (s->use_agent && getenv("SSH_AUTH_SOCK")) {
        rc = ssh_userauth_agent(s->ssh, NULL);
        tried_add(tried, sizeof tried, "ssh-agent");
        if (rc == SSH_AUTH_SUCCESS)
            return 1;
        if (rc == SSH_AUTH_ERROR)
            goto lost;
    }
    if (s->n_identities == 0) {
        rc = ssh_userauth_publickey_auto(s->ssh, NULL, s->passphrase);
        tried_add(tried, sizeof tried, "default keys (~/.ssh/id_*, IdentityFile)");
        if (rc == SSH_AUTH_SUCCESS)
            return 1;
        if (rc == SSH_AUTH_ERROR)
            goto lost;
    }
    int methods = ssh_userauth_list(s->ssh, NULL);
    char *user = NULL;
    ssh_options_get(s->ssh, SSH_OPTIONS_USER, &user);
    job_fail(j, "EAUTH",
             "ssh.connect: authentication failed for %s@%s (tried: %s; server accepts:%s%s%s) "
             "(%s)",
             user ? user : "?", s->host, tried[0] ? tried : "nothing",
             (methods & SSH_AUTH_METHOD_PUBLICKEY) ? " publickey" : "",
             (methods & SSH_AUTH_METHOD_PASSWORD) ? " password" : "",
             (methods & SSH_AUTH_METHOD_INTERACTIVE) ? " keyboard-interactive" : "", s->name);
    ssh_string_free_char(user);
    return 0;
lost:
    job_fail(j, "EAUTH", "ssh.connect: authentication error with %s: %s (%s)", s->host,
             ssh_get_error(s->ssh), s->name);
    return 0;
}

static void run_connect(struct session *s, struct job *j)
{
    if (s->connected) {
        j->ok = 1;
        return;
    }
    s->ssh = ssh_new();
    if (!s->ssh) {
        job_fail(j, "ENOMEM", "ssh.connect: cannot create session (%s)", s->name);
        return;
    }
    ssh_options_set(s->ssh, SSH_OPTIONS_HOST, s->host);
    if (s->read_config && ssh_options_parse_config(s->ssh, s->config) != 0) {
        job_fail(j, "ECONFIG", "ssh.connect: cannot read ssh config %s (%s)",
                 s->config ? s->config : "~/.ssh/config", s->name);
        goto fail;
    }
    /* a config's LogLevel would make libssh print to stderr; errors reach Lua instead */
    int quiet = SSH_LOG_NOLOG;
    ssh_options_set(s->ssh, SSH_OPTIONS_LOG_VERBOSITY, &quiet);
    if (s->user)
        ssh_options_set(s->ssh, SSH_OPTIONS_USER, s->user);
    if (s->port > 0)
        ssh_options_set(s->ssh, SSH_OPTIONS_PORT, &s->port);
    ssh_options_set(s->ssh, SSH_OPTIONS_TIMEOUT, &s->timeout_s);
    if (s->kh_user)
        ssh_options_set(s->ssh, SSH_OPTIONS_KNOWNHOSTS, s->kh_user);
    if (s->kh_global)
        ssh_options_set(s->ssh, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, s->kh_global);
    int nodelay = 1; /* many small requests: Nagle would add 40 ms to each */
    ssh_options_set(s->ssh, SSH_OPTIONS_NODELAY, &nodelay);

    if (ssh_connect(s->ssh) != SSH_OK) {
        const char *msg = ssh_get_error(s->ssh);
        job_fail(j, connect_code(msg), "ssh.connect: cannot connect to %s: %s (%s)", s->host,
                 msg, s->name);
        goto fail;
    }
    if (!check_host_key(s, j) || !authenticate(s, j)) {
        ssh_disconnect(s->ssh);
        goto fail;
    }
    s->connected = 1;
    j->ok = 1;
    return;
fail:
    ssh_free(s->ssh);
    s->ssh = NULL;
}

static int need_connection(struct session *s, struct job *j, const char *op)
{
    if (s->connected && ssh_is_connected(s->ssh))
        return 1;
    job_fail(j, "ENOTCONN", "ssh.%s: not connected (%s)", op, s->name);
    return 0;
}

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
        if (!buf_add(&j->out, tmp, (size_t)n, j->max_output))
            j->out_trunc = 1;
    while ((n = ssh_channel_read_nonblocking(ch, tmp, sizeof tmp, 1)) > 0) {
        /* room for the marker, which is not output */
        if (!buf_add(&j->err, tmp, (size_t)n, j->max_output + 32))
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

static void run_exec(struct session *s, struct job *j, const volatile int *closing)
{
    if (!need_connection(s, j, "exec"))
        return;
    char *wrapped = wrap_command(j->a);
    ssh_channel ch = wrapped ? ssh_channel_new(s->ssh) : NULL;
    int started = ch && ssh_channel_open_session(ch) == SSH_OK &&
                  ssh_channel_request_exec(ch, wrapped) == SSH_OK;
    free(wrapped);
    if (!started) {
        job_fail(j, "ECHANNEL", "ssh.exec: cannot start command: %s (%s)",
                 ssh_get_error(s->ssh), s->name);
        if (ch)
            ssh_channel_free(ch);
        return;
    }
    if (j->has_in && j->in.len > 0) {
        size_t off = 0;
        while (off < j->in.len) {
            uint32_t n = (uint32_t)(j->in.len - off > CHUNK ? CHUNK : j->in.len - off);
            int w = ssh_channel_write(ch, j->in.p + off, n);
            if (w <= 0)
                break; /* the command may exit without reading its input */
            off += (size_t)w;
        }
    }
    ssh_channel_send_eof(ch);

    long long deadline = now_ms() + j->timeout_ms;
    int timed_out = 0, cancelled = 0;
    for (;;) {
        int rc = ssh_channel_poll_timeout(ch, 50, 0);
        if (rc == SSH_ERROR) {
            job_fail(j, "ECONNLOST", "ssh.exec: connection lost: %s (%s)",
                     ssh_get_error(s->ssh), s->name);
            ssh_channel_free(ch);
            s->connected = 0;
            return;
        }
        drain(ch, j);
        if (rc == SSH_EOF || ssh_channel_is_eof(ch))
            break;
        if (now_ms() > deadline) {
            timed_out = 1;
            break;
        }
        if (*closing || er_interrupted()) {
            cancelled = 1;
            break;
        }
    }
    if (timed_out || cancelled) {
        /* sshd signals the command's whole process group (it runs in its own session) */
        kill_remote(s, j, ch);
        ssh_channel_close(ch);
        ssh_channel_free(ch);
        if (timed_out)
            job_fail(j, "ETIMEDOUT", "ssh.exec: command timed out after %.1f s and was killed (%s)",
                     j->timeout_ms / 1000.0, s->name);
        else
            job_fail(j, "EINTR", "ssh.exec: interrupted, command killed (%s)", s->name);
        return;
    }
    drain(ch, j);
    if (j->remote_pid == 0 && j->err.len > 0)
        j->remote_pid = -1; /* an incomplete marker is output, keep it */
    j->status = ssh_channel_get_exit_status(ch);
    ssh_channel_close(ch);
    ssh_channel_free(ch);
    j->ok = 1;
}

/* ---- SFTP --------------------------------------------------------------- */

static int need_sftp(struct session *s, struct job *j, const char *op)
{
    if (!need_connection(s, j, op))
        return 0;
    if (s->sftp)
        return 1;
    s->sftp = sftp_new(s->ssh);
    if (!s->sftp || sftp_init(s->sftp) != SSH_OK) {
        job_fail(j, "ESFTP", "ssh.%s: SFTP is not available on %s: %s (%s)", op, s->host,
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
    job_fail(j, code, "ssh.%s: %s (%s:%s)", op, why, s->name, path);
}

static void run_put(struct session *s, struct job *j, const volatile int *closing)
{
    if (!need_sftp(s, j, "put"))
        return;
    int lfd = -1;
    if (j->local) {
        lfd = open(j->local, O_RDONLY | O_CLOEXEC);
        if (lfd < 0) {
            job_fail(j, er_errno_code(errno), "ssh.put: %s (%s)", strerror(errno), j->local);
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
                job_fail(j, er_errno_code(errno), "ssh.put: %s (%s)", strerror(errno), j->local);
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
            job_fail(j, "EINTR", "ssh.put: interrupted (%s:%s)", s->name, j->b);
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

static void run_get(struct session *s, struct job *j, const volatile int *closing)
{
    if (!need_sftp(s, j, "get"))
        return;
    sftp_file f = sftp_open(s->sftp, j->a, O_RDONLY, 0);
    if (!f) {
        sftp_fail(s, j, "get", j->a);
        return;
    }
    int lfd = -1;
    char ltmp[PATH_MAX] = "";
    if (j->local) {
        if ((size_t)snprintf(ltmp, sizeof ltmp, "%s.etcdrun-XXXXXX", j->local) >= sizeof ltmp ||
            (lfd = mkostemp(ltmp, O_CLOEXEC)) < 0) {
            job_fail(j, er_errno_code(errno), "ssh.get: %s (%s)", strerror(errno), j->local);
            sftp_close(f);
            return;
        }
        fchmod(lfd, (mode_t)j->mode);
    }
    char tmp[CHUNK];
    for (;;) {
        if (*closing || er_interrupted()) {
            job_fail(j, "EINTR", "ssh.get: interrupted (%s:%s)", s->name, j->a);
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
                    job_fail(j, er_errno_code(errno), "ssh.get: %s (%s)", strerror(errno),
                             j->local);
                    goto fail;
                }
                off += w;
            }
        } else if (!buf_add(&j->out, tmp, (size_t)n, j->max_output)) {
            job_fail(j, "E2BIG", "ssh.get: file larger than %zu bytes (%s:%s)", j->max_output,
                     s->name, j->a);
            goto fail;
        }
        j->bytes += n;
    }
    sftp_close(f);
    if (lfd >= 0) {
        if (fsync(lfd) != 0 || close(lfd) != 0 || rename(ltmp, j->local) != 0) {
            job_fail(j, er_errno_code(errno), "ssh.get: %s (%s)", strerror(errno), j->local);
            unlink(ltmp);
            return;
        }
    }
    j->ok = 1;
    return;
fail:
    sftp_close(f);
    if (lfd >= 0) {
        close(lfd);
        unlink(ltmp);
    }
}

static void run_simple(struct session *s, struct job *j)
{
    const char *op = kind_names[j->kind];
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

/* ---- the worker thread -------------------------------------------------- */

static void publish(struct job *j)
{
    /* caller holds the lock */
    j->done = 1;
    if (n_finished == cap_finished) {
        size_t cap = cap_finished ? cap_finished * 2 : 64;
        int *p = realloc(finished, cap * sizeof *p);
        if (p) {
            finished = p;
            cap_finished = cap;
        }
    }
    if (n_finished < cap_finished)
        finished[n_finished++] = j->id;
    pthread_cond_broadcast(&finished_cv);
    job_unref(j);
}

static void *worker(void *arg)
{
    struct session *s = arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!s->head && !s->closing)
            pthread_cond_wait(&s->wake, &lock);
        struct job *j = s->head;
        if (!j)
            break;
        s->head = j->next;
        if (!s->head)
            s->tail = NULL;
        int closing = s->closing;
        pthread_mutex_unlock(&lock);

        if (closing) {
            job_fail(j, "ECLOSED", "ssh.%s: session closed (%s)", kind_names[j->kind], s->name);
        } else {
            switch (j->kind) {
            case J_CONNECT: run_connect(s, j); break;
            case J_EXEC: run_exec(s, j, &s->cancel); break;
            case J_PUT: run_put(s, j, &s->cancel); break;
            case J_GET: run_get(s, j, &s->cancel); break;
            default: run_simple(s, j); break;
            }
        }
        pthread_mutex_lock(&lock);
        publish(j);
    }
    pthread_mutex_unlock(&lock);
    if (s->sftp)
        sftp_free(s->sftp);
    if (s->ssh) {
        if (s->connected)
            ssh_disconnect(s->ssh);
        ssh_free(s->ssh);
    }
    return NULL;
}

/* ---- Lua: sessions ------------------------------------------------------ */

struct session_ud {
    struct session *s;
};

static struct session *check_session(lua_State *L)
{
    struct session_ud *ud = luaL_checkudata(L, 1, SESSION_MT);
    if (!ud->s)
        luaL_error(L, "ssh: session is closed");
    return ud->s;
}

static char *opt_dup(lua_State *L, int idx, const char *key)
{
    return xstrdup(er_opt_string(L, idx, key, NULL));
}

/* ssh.session(opts) -> Session (no I/O until a connect job runs)
 * opts: name, host (required), user, port, config (path or false for none),
 *       known_hosts (path), global_known_hosts (path), identities {paths},
 *       passphrase, agent (default true), host_key ("strict"|"accept-new"),
 *       timeout (seconds, connect and every blocking protocol step; default 10) */
static int l_session(lua_State *L)
{
    static const char *const known[] = {"name", "host", "user", "port", "config", "known_hosts",
                                        "global_known_hosts", "identities", "passphrase",
                                        "agent", "host_key", "timeout", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    er_check_options(L, 1, "ssh.session", known);
    const char *host = er_opt_string(L, 1, "host", NULL);
    if (!host || !*host)
        return luaL_error(L, "ssh.session: option 'host' is required");
    const char *policy = er_opt_string(L, 1, "host_key", "strict");
    if (strcmp(policy, "strict") != 0 && strcmp(policy, "accept-new") != 0)
        return luaL_error(L, "ssh.session: host_key must be 'strict' or 'accept-new', got '%s'",
                          policy);
    lua_Integer port = er_opt_integer(L, 1, "port", 0);
    if (port < 0 || port > 65535)
        return luaL_error(L, "ssh.session: port %d out of range", (int)port);

    struct session_ud *ud = lua_newuserdatauv(L, sizeof *ud, 0);
    ud->s = NULL;
    luaL_setmetatable(L, SESSION_MT);

    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return luaL_error(L, "ssh.session: out of memory");
    ud->s = s;
    pthread_cond_init(&s->wake, NULL);
    s->host = strdup(host);
    s->name = xstrdup(er_opt_string(L, 1, "name", host));
    s->user = opt_dup(L, 1, "user");
    s->port = (int)port;
    s->kh_user = opt_dup(L, 1, "known_hosts");
    s->kh_global = opt_dup(L, 1, "global_known_hosts");
    s->passphrase = opt_dup(L, 1, "passphrase");
    s->use_agent = er_opt_boolean(L, 1, "agent", 1);
    s->accept_new = strcmp(policy, "accept-new") == 0;
    s->timeout_s = (long)er_opt_integer(L, 1, "timeout", 10);
    lua_getfield(L, 1, "config");
    if (lua_type(L, -1) == LUA_TBOOLEAN) {
        s->read_config = lua_toboolean(L, -1);
    } else {
        s->read_config = 1;
        s->config = opt_dup(L, 1, "config");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "identities") == LUA_TTABLE) {
        int n = (int)luaL_len(L, -1);
        if (n > MAX_IDENTITIES)
            return luaL_error(L, "ssh.session: at most %d identities", MAX_IDENTITIES);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            s->identities[s->n_identities++] = strdup(luaL_checkstring(L, -1));
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "ssh.session: identities must be a list of paths");
    }
    lua_pop(L, 1);
    return 1;
}

static void enqueue(lua_State *L, struct session *s, struct job *j)
{
    pthread_mutex_lock(&lock);
    if (!s->started) {
        if (pthread_create(&s->thread, NULL, worker, s) != 0) {
            pthread_mutex_unlock(&lock);
            luaL_error(L, "ssh: cannot start worker thread");
        }
        s->started = 1;
    }
    j->id = ++next_job_id;
    j->refs++; /* the worker's */
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&lock);
}

struct job_ud {
    struct job *j;
};

/* Session:submit(kind, ...) -> Job
 *   "connect"
 *   "exec", command, {stdin=, timeout=seconds (600), max_output=bytes}
 *   "put", data|nil, remote_path, {mode=0644, exclusive=false, from=local_path}
 *   "get", remote_path, {to=local_path, mode=0600, max_size=bytes}
 *   "stat", remote_path, {follow=true}
 *   "mkdir", remote_path, {mode=0755}
 *   "remove", remote_path, {dir=false}
 *   "chmod", remote_path, mode
 *   "rename", from, to   (fails if `to` exists: SFTP v3) */
static int l_submit(lua_State *L)
{
    struct session *s = check_session(L);
    int kind = luaL_checkoption(L, 2, NULL, kind_names);
    /* The userdata owns the job from the start, so an argument error raised
       below frees it through __gc instead of leaking it. Fixed arity first,
       so the userdata never lands in an argument slot. */
    lua_settop(L, 5);
    struct job_ud *ud = lua_newuserdatauv(L, sizeof *ud, 0);
    ud->j = NULL;
    luaL_setmetatable(L, JOB_MT);
    int job_index = lua_gettop(L);
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return luaL_error(L, "ssh: out of memory");
    j->refs = 1;
    ud->j = j;
    j->kind = (enum job_kind)kind;
    j->max_output = DEFAULT_MAX_OUTPUT;
    j->timeout_ms = 600000;
    switch (j->kind) {
    case J_CONNECT:
        break;
    case J_EXEC: {
        static const char *const known[] = {"stdin", "timeout", "max_output", "kill_prefix",
                                            NULL};
        const char *cmd = luaL_checkstring(L, 3);
        er_check_options(L, 4, "ssh.exec", known);
        size_t n = 0;
        const char *in = NULL;
        if (lua_istable(L, 4) && lua_getfield(L, 4, "stdin") != LUA_TNIL) {
            in = luaL_checklstring(L, -1, &n);
        }
        lua_Number t = 600;
        if (lua_istable(L, 4) && lua_getfield(L, 4, "timeout") != LUA_TNIL)
            t = luaL_checknumber(L, -1);
        lua_Integer max = er_opt_integer(L, 4, "max_output", DEFAULT_MAX_OUTPUT);
        j->a = strdup(cmd);
        if (in) {
            j->has_in = 1;
            buf_add(&j->in, in, n, (size_t)-1);
        }
        j->timeout_ms = (long)(t * 1000);
        j->max_output = (size_t)max;
        j->kill_prefix = xstrdup(er_opt_string(L, 4, "kill_prefix", NULL));
        break;
    }
    case J_PUT: {
        static const char *const known[] = {"mode", "exclusive", "from", NULL};
        size_t n = 0;
        const char *data = lua_isnil(L, 3) ? NULL : luaL_checklstring(L, 3, &n);
        const char *path = luaL_checkstring(L, 4);
        er_check_options(L, 5, "ssh.put", known);
        const char *from = er_opt_string(L, 5, "from", NULL);
        if (!data == !from)
            return luaL_error(L, "ssh.put: give either data or the 'from' option");
        j->mode = (int)er_opt_integer(L, 5, "mode", 0644);
        j->flag = er_opt_boolean(L, 5, "exclusive", 0);
        j->b = strdup(path);
        j->local = xstrdup(from);
        if (data)
            buf_add(&j->in, data, n, (size_t)-1);
        break;
    }
    case J_GET: {
        static const char *const known[] = {"to", "mode", "max_size", NULL};
        const char *path = luaL_checkstring(L, 3);
        er_check_options(L, 4, "ssh.get", known);
        j->local = xstrdup(er_opt_string(L, 4, "to", NULL));
        j->mode = (int)er_opt_integer(L, 4, "mode", 0600);
        j->max_output = (size_t)er_opt_integer(L, 4, "max_size", 256 * 1024 * 1024);
        j->a = strdup(path);
        break;
    }
    case J_STAT: {
        static const char *const known[] = {"follow", NULL};
        const char *path = luaL_checkstring(L, 3);
        er_check_options(L, 4, "ssh.stat", known);
        j->flag = er_opt_boolean(L, 4, "follow", 1);
        j->a = strdup(path);
        break;
    }
    case J_MKDIR: {
        static const char *const known[] = {"mode", NULL};
        const char *path = luaL_checkstring(L, 3);
        er_check_options(L, 4, "ssh.mkdir", known);
        j->mode = (int)er_opt_integer(L, 4, "mode", 0755);
        j->a = strdup(path);
        break;
    }
    case J_REMOVE: {
        static const char *const known[] = {"dir", NULL};
        const char *path = luaL_checkstring(L, 3);
        er_check_options(L, 4, "ssh.remove", known);
        j->flag = er_opt_boolean(L, 4, "dir", 0);
        j->a = strdup(path);
        break;
    }
    case J_CHMOD:
        j->a = strdup(luaL_checkstring(L, 3));
        j->mode = (int)luaL_checkinteger(L, 4);
        break;
    case J_RENAME:
        j->a = strdup(luaL_checkstring(L, 3));
        j->b = strdup(luaL_checkstring(L, 4));
        break;
    }
    enqueue(L, s, j);
    lua_pushvalue(L, job_index);
    return 1;
}

/* Session:close(): finishes the running job (commands are killed), fails
 * queued ones with ECLOSED, disconnects. Safe to call twice. */
static int l_close(lua_State *L)
{
    struct session_ud *ud = luaL_checkudata(L, 1, SESSION_MT);
    struct session *s = ud->s;
    if (!s)
        return 0;
    ud->s = NULL;
    pthread_mutex_lock(&lock);
    s->closing = 1;
    s->cancel = 1;
    int started = s->started;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&lock);
    if (started)
        pthread_join(s->thread, NULL);
    session_free(s);
    return 0;
}

/* Session:name() -> the name used in messages */
static int l_name(lua_State *L)
{
    lua_pushstring(L, check_session(L)->name);
    return 1;
}

/* ---- Lua: jobs ---------------------------------------------------------- */

static struct job *check_job(lua_State *L)
{
    struct job_ud *ud = luaL_checkudata(L, 1, JOB_MT);
    if (!ud->j)
        luaL_error(L, "ssh: job result already taken");
    return ud->j;
}

/* Job:id() -> integer (what ssh.wait reports) */
static int l_job_id(lua_State *L)
{
    lua_pushinteger(L, check_job(L)->id);
    return 1;
}

/* Job:done() -> boolean */
static int l_job_done(lua_State *L)
{
    struct job *j = check_job(L);
    pthread_mutex_lock(&lock);
    int done = j->done;
    pthread_mutex_unlock(&lock);
    lua_pushboolean(L, done);
    return 1;
}

static const char *type_of(uint8_t t)
{
    switch (t) {
    case SSH_FILEXFER_TYPE_REGULAR: return "file";
    case SSH_FILEXFER_TYPE_DIRECTORY: return "dir";
    case SSH_FILEXFER_TYPE_SYMLINK: return "link";
    case SSH_FILEXFER_TYPE_SPECIAL: return "special";
    default: return "unknown";
    }
}

static void push_bytes(lua_State *L, struct buf *b)
{
    lua_pushlstring(L, b->p ? b->p : "", b->len);
}

/* Job:result() -> per kind, or nil, err, code. Frees the job's memory.
 *   connect -> {host_key_type=, fingerprint=, known_hosts_line=? (accept-new)}
 *   exec    -> {stdout=, stderr=, status=, truncated=bool}
 *   put     -> bytes ; get -> data (or bytes with `to`) ; stat -> table
 *   mkdir, remove, chmod, rename -> true */
static int l_job_result(lua_State *L)
{
    struct job_ud *ud = luaL_checkudata(L, 1, JOB_MT);
    struct job *j = check_job(L);
    pthread_mutex_lock(&lock);
    int done = j->done;
    pthread_mutex_unlock(&lock);
    if (!done)
        return luaL_error(L, "ssh: job %d has not finished", j->id);
    int n = 1;
    if (!j->ok) {
        n = er_fail(L, j->code, "%s", j->errmsg ? j->errmsg : "ssh: failed");
    } else {
        switch (j->kind) {
        case J_CONNECT:
            lua_createtable(L, 0, 3);
            lua_pushstring(L, j->hostkey_type);
            lua_setfield(L, -2, "host_key_type");
            lua_pushstring(L, j->fingerprint);
            lua_setfield(L, -2, "fingerprint");
            if (j->known_hosts_line) {
                lua_pushstring(L, j->known_hosts_line);
                lua_setfield(L, -2, "known_hosts_line");
            }
            break;
        case J_EXEC:
            lua_createtable(L, 0, 4);
            push_bytes(L, &j->out);
            lua_setfield(L, -2, "stdout");
            push_bytes(L, &j->err);
            lua_setfield(L, -2, "stderr");
            lua_pushinteger(L, j->status);
            lua_setfield(L, -2, "status");
            lua_pushboolean(L, j->out_trunc || j->err_trunc);
            lua_setfield(L, -2, "truncated");
            break;
        case J_PUT:
            lua_pushinteger(L, j->bytes);
            break;
        case J_GET:
            if (j->local)
                lua_pushinteger(L, j->bytes);
            else
                push_bytes(L, &j->out);
            break;
        case J_STAT:
            lua_createtable(L, 0, 6);
            lua_pushstring(L, type_of(j->st->type));
            lua_setfield(L, -2, "type");
            lua_pushinteger(L, j->st->permissions & 07777);
            lua_setfield(L, -2, "mode");
            lua_pushinteger(L, j->st->uid);
            lua_setfield(L, -2, "uid");
            lua_pushinteger(L, j->st->gid);
            lua_setfield(L, -2, "gid");
            lua_pushinteger(L, (lua_Integer)j->st->size);
            lua_setfield(L, -2, "size");
            lua_pushinteger(L, j->st->mtime);
            lua_setfield(L, -2, "mtime");
            break;
        default:
            lua_pushboolean(L, 1);
            break;
        }
    }
    pthread_mutex_lock(&lock);
    job_unref(j);
    pthread_mutex_unlock(&lock);
    ud->j = NULL;
    return n;
}

/* Remove one id from the finished list (a job waited for directly). */
static void forget_finished(int id)
{
    for (size_t i = n_finished; i-- > 0;) {
        if (finished[i] == id) {
            finished[i] = finished[--n_finished];
            return;
        }
    }
}

static void wait_slice(long long until_ms)
{
    long long t = now_ms();
    long long slice = until_ms - t < 100 ? until_ms - t : 100;
    if (slice < 0)
        slice = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += slice / 1000;
    ts.tv_nsec += (slice % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&finished_cv, &lock, &ts);
}

/* Job:wait(timeout_s=none) -> the results of Job:result(), or nil, err, "ETIMEDOUT"/"EINTR" */
static int l_job_wait(lua_State *L)
{
    struct job *j = check_job(L);
    double t = luaL_optnumber(L, 2, -1);
    long long until = t < 0 ? LLONG_MAX : now_ms() + (long long)(t * 1000);
    pthread_mutex_lock(&lock);
    while (!j->done && now_ms() < until && !er_interrupted())
        wait_slice(until);
    int done = j->done;
    if (done)
        forget_finished(j->id);
    pthread_mutex_unlock(&lock);
    if (!done)
        return er_interrupted()
                   ? er_fail(L, "EINTR", "ssh.wait: interrupted")
                   : er_fail(L, "ETIMEDOUT", "ssh.wait: job %d still running", j->id);
    lua_settop(L, 1);
    return l_job_result(L);
}

static int l_job_gc(lua_State *L)
{
    struct job_ud *ud = luaL_checkudata(L, 1, JOB_MT);
    if (ud->j) {
        pthread_mutex_lock(&lock);
        job_unref(ud->j);
        pthread_mutex_unlock(&lock);
        ud->j = NULL;
    }
    return 0;
}

/* ssh.wait(timeout_s) -> {ids of jobs finished since the last call}
 * Blocks until at least one job finishes, the timeout passes, or Ctrl-C. */
static int l_wait(lua_State *L)
{
    double t = luaL_checknumber(L, 1);
    long long until = now_ms() + (long long)(t * 1000);
    pthread_mutex_lock(&lock);
    while (n_finished == 0 && now_ms() < until && !er_interrupted())
        wait_slice(until);
    lua_createtable(L, (int)n_finished, 0);
    for (size_t i = 0; i < n_finished; i++) {
        lua_pushinteger(L, finished[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    n_finished = 0;
    pthread_mutex_unlock(&lock);
    return 1;
}

/* ssh.key_needs_passphrase(path) -> boolean | nil, err, code */
static int l_key_needs_passphrase(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int asked = 0;
    ssh_key key = NULL;
    int rc = ssh_pki_import_privkey_file(path, NULL, no_passphrase, &asked, &key);
    ssh_key_free(key);
    if (rc == SSH_OK || asked) {
        lua_pushboolean(L, asked);
        return 1;
    }
    if (access(path, R_OK) != 0)
        return er_fail_errno(L, "ssh.key", path, errno);
    return er_fail(L, "EKEY", "ssh.key: not a private key libssh can read (%s)", path);
}

int luaopen_etcdrun_core_ssh(lua_State *L)
{
    static const luaL_Reg session_methods[] = {
        {"submit", l_submit}, {"close", l_close}, {"name", l_name}, {NULL, NULL}};
    static const luaL_Reg job_methods[] = {{"id", l_job_id},
                                           {"done", l_job_done},
                                           {"result", l_job_result},
                                           {"wait", l_job_wait},
                                           {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"session", l_session},
                                     {"wait", l_wait},
                                     {"key_needs_passphrase", l_key_needs_passphrase},
                                     {NULL, NULL}};
    ssh_init();
    luaL_newmetatable(L, SESSION_MT);
    luaL_newlib(L, session_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newmetatable(L, JOB_MT);
    luaL_newlib(L, job_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_job_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
