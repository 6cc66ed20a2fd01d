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
 * The work itself is in ssh-connect.c (connect, host keys, authentication)
 * and ssh-io.c (exec, SFTP); this file owns sessions, jobs, the worker
 * thread and the Lua API.
 *
 * Everything a job needs is copied into C memory when it is submitted and
 * everything it produces stays in C memory until Lua collects it with
 * job:result(), so no Lua value is touched off the main thread.
 */
#include "ssh-internal.h"

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

const char *const sx_kind_names[] = {"connect", "exec", "put", "get", "stat",
                                         "mkdir", "remove", "chmod", "rename", NULL};

/* One lock for queues, refcounts and the finished list: contention is nil
   next to network round trips, and one lock cannot deadlock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t finished_cv = PTHREAD_COND_INITIALIZER;
static int *finished;
static size_t n_finished, cap_finished;
static int next_job_id;

/* ---- small helpers ------------------------------------------------------ */

char *sx_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

void sx_buf_free(struct buf *b)
{
    er_secure_free(b->p, b->cap); /* may hold key material */
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Append up to what max allows; returns 0 when some had to be dropped. */
int sx_buf_add(struct buf *b, const char *p, size_t n, size_t max)
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

long long sx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sx_job_fail(struct job *j, const char *code, const char *fmt, ...)
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
    sx_buf_free(&j->in);
    sx_buf_free(&j->out);
    sx_buf_free(&j->err);
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
            sx_job_fail(j, "ECLOSED", "ssh.%s: session closed (%s)", sx_kind_names[j->kind], s->name);
        } else {
            switch (j->kind) {
            case J_CONNECT: sx_run_connect(s, j); break;
            case J_EXEC: sx_run_exec(s, j, &s->cancel); break;
            case J_PUT: sx_run_put(s, j, &s->cancel); break;
            case J_GET: sx_run_get(s, j, &s->cancel); break;
            default: sx_run_simple(s, j); break;
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

/* A command or path: C strings end at a NUL, so one inside would silently
   run or touch something else than asked; refuse it. */
static const char *check_text(lua_State *L, int idx)
{
    size_t len;
    const char *p = luaL_checklstring(L, idx, &len);
    if (strlen(p) != len)
        luaL_argerror(L, idx, "contains a NUL byte");
    return p;
}

static char *opt_dup(lua_State *L, int idx, const char *key)
{
    return sx_strdup(er_opt_string(L, idx, key, NULL));
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
    lua_Integer timeout = er_opt_integer(L, 1, "timeout", 10);
    if (timeout < 1)
        return luaL_error(L, "ssh.session: timeout must be at least 1 second");

    struct session_ud *ud = lua_newuserdatauv(L, sizeof *ud, 0);
    ud->s = NULL;
    luaL_setmetatable(L, SESSION_MT);

    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return luaL_error(L, "ssh.session: out of memory");
    ud->s = s;
    pthread_cond_init(&s->wake, NULL);
    s->host = strdup(host);
    s->name = sx_strdup(er_opt_string(L, 1, "name", host));
    s->user = opt_dup(L, 1, "user");
    s->port = (int)port;
    s->kh_user = sx_strdup(er_opt_path(L, 1, "known_hosts", NULL, "ssh.session"));
    s->kh_global = sx_strdup(er_opt_path(L, 1, "global_known_hosts", NULL, "ssh.session"));
    s->passphrase = opt_dup(L, 1, "passphrase");
    s->use_agent = er_opt_boolean(L, 1, "agent", 1);
    s->accept_new = strcmp(policy, "accept-new") == 0;
    /* libssh waits forever past INT_MAX ms: keep every protocol step bounded */
    s->timeout_s = timeout > INT_MAX / 1000 ? INT_MAX / 1000 : (long)timeout;
    lua_getfield(L, 1, "config");
    if (lua_type(L, -1) == LUA_TBOOLEAN) {
        s->read_config = lua_toboolean(L, -1);
    } else {
        s->read_config = 1;
        s->config = sx_strdup(er_opt_path(L, 1, "config", NULL, "ssh.session"));
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "identities") == LUA_TTABLE) {
        int n = (int)luaL_len(L, -1);
        if (n > MAX_IDENTITIES)
            return luaL_error(L, "ssh.session: at most %d identities", MAX_IDENTITIES);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            s->identities[s->n_identities++] = strdup(er_checkpath(L, -1, "ssh.session"));
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
 *   "exec", command, {stdin=, timeout=seconds (600; math.huge: none), max_output=bytes}
 *   "put", data|nil, remote_path, {mode="0644", exclusive=false, from=local_path}
 *   "get", remote_path, {to=local_path, mode="0600", max_size=bytes}
 *   "stat", remote_path, {follow=true}
 *   "mkdir", remote_path, {mode="0755"}
 *   "remove", remote_path, {dir=false}
 *   "chmod", remote_path, mode
 * (modes: octal strings or integers within 0..07777; paths: no NUL byte)
 *   "rename", from, to   (fails if `to` exists: SFTP v3) */
static int l_submit(lua_State *L)
{
    struct session *s = check_session(L);
    int kind = luaL_checkoption(L, 2, NULL, sx_kind_names);
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
        const char *cmd = check_text(L, 3);
        er_check_options(L, 4, "ssh.exec", known);
        size_t n = 0;
        const char *in = NULL;
        if (lua_istable(L, 4) && lua_getfield(L, 4, "stdin") != LUA_TNIL) {
            in = luaL_checklstring(L, -1, &n);
        }
        long long t = er_opt_timeout_ms(L, 4, "ssh.exec", "timeout", 600);
        lua_Integer max = er_opt_integer(L, 4, "max_output", DEFAULT_MAX_OUTPUT);
        if (max < 0)
            return luaL_error(L, "ssh.exec: option 'max_output' must not be negative");
        j->a = strdup(cmd);
        if (in) {
            j->has_in = 1;
            sx_buf_add(&j->in, in, n, (size_t)-1);
        }
        j->timeout_ms = t;
        j->max_output = (size_t)max;
        j->kill_prefix = sx_strdup(er_opt_string(L, 4, "kill_prefix", NULL));
        break;
    }
    case J_PUT: {
        static const char *const known[] = {"mode", "exclusive", "from", NULL};
        size_t n = 0;
        const char *data = lua_isnil(L, 3) ? NULL : luaL_checklstring(L, 3, &n);
        const char *path = er_checkpath(L, 4, "ssh.put");
        er_check_options(L, 5, "ssh.put", known);
        const char *from = er_opt_path(L, 5, "from", NULL, "ssh.put");
        if (!data == !from)
            return luaL_error(L, "ssh.put: give either data or the 'from' option");
        j->mode = er_opt_mode(L, 5, "mode", 0644, "ssh.put", path);
        j->flag = er_opt_boolean(L, 5, "exclusive", 0);
        j->b = strdup(path);
        j->local = sx_strdup(from);
        if (data)
            sx_buf_add(&j->in, data, n, (size_t)-1);
        break;
    }
    case J_GET: {
        static const char *const known[] = {"to", "mode", "max_size", NULL};
        const char *path = er_checkpath(L, 3, "ssh.get");
        er_check_options(L, 4, "ssh.get", known);
        j->local = sx_strdup(er_opt_path(L, 4, "to", NULL, "ssh.get"));
        j->mode = er_opt_mode(L, 4, "mode", 0600, "ssh.get", path);
        j->max_output = (size_t)er_opt_integer(L, 4, "max_size", 256 * 1024 * 1024);
        j->a = strdup(path);
        break;
    }
    case J_STAT: {
        static const char *const known[] = {"follow", NULL};
        const char *path = er_checkpath(L, 3, "ssh.stat");
        er_check_options(L, 4, "ssh.stat", known);
        j->flag = er_opt_boolean(L, 4, "follow", 1);
        j->a = strdup(path);
        break;
    }
    case J_MKDIR: {
        static const char *const known[] = {"mode", NULL};
        const char *path = er_checkpath(L, 3, "ssh.mkdir");
        er_check_options(L, 4, "ssh.mkdir", known);
        j->mode = er_opt_mode(L, 4, "mode", 0755, "ssh.mkdir", path);
        j->a = strdup(path);
        break;
    }
    case J_REMOVE: {
        static const char *const known[] = {"dir", NULL};
        const char *path = er_checkpath(L, 3, "ssh.remove");
        er_check_options(L, 4, "ssh.remove", known);
        j->flag = er_opt_boolean(L, 4, "dir", 0);
        j->a = strdup(path);
        break;
    }
    case J_CHMOD:
        j->a = strdup(er_checkpath(L, 3, "ssh.chmod"));
        j->mode = er_checkmode(L, 4, "ssh.chmod", j->a);
        break;
    case J_RENAME:
        j->a = strdup(er_checkpath(L, 3, "ssh.rename"));
        j->b = strdup(er_checkpath(L, 4, "ssh.rename"));
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
 *   exec    -> {stdout=, stderr=, status=, signal=?, truncated=bool}
 *              (killed by a signal: status 128 + signal, as a shell says it)
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
            if (j->signal) {
                lua_pushinteger(L, j->signal);
                lua_setfield(L, -2, "signal");
            }
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
    long long t = sx_now_ms();
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
    long long t = er_timeout_ms(L, 2, "Job:wait", -1);
    long long until = t < 0 ? LLONG_MAX : sx_now_ms() + t;
    pthread_mutex_lock(&lock);
    while (!j->done && sx_now_ms() < until && !er_interrupted())
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
    luaL_checkany(L, 1);
    long long t = er_timeout_ms(L, 1, "ssh.wait", 0);
    long long until = t < 0 ? LLONG_MAX : sx_now_ms() + t;
    pthread_mutex_lock(&lock);
    while (n_finished == 0 && sx_now_ms() < until && !er_interrupted())
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
    const char *path = er_checkpath(L, 1, "ssh.key_needs_passphrase");
    int asked = 0;
    ssh_key key = NULL;
    int rc = ssh_pki_import_privkey_file(path, NULL, sx_no_passphrase, &asked, &key);
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
