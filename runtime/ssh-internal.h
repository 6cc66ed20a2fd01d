/*
 * ssh-internal.h: what the parts of the ssh family share (ssh.c: sessions,
 * jobs, the worker thread and the Lua API; ssh-connect.c: connecting, host
 * keys and authentication; ssh-io.c: exec and SFTP). Everything here runs
 * on a session's worker thread except where ssh.c says otherwise.
 */
#ifndef ETCDRUN_SSH_INTERNAL_H
#define ETCDRUN_SSH_INTERNAL_H

#include "etcdrun.h"

#include <pthread.h>
#include <stddef.h>

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#define SESSION_MT "etcdrun.ssh.Session"
#define JOB_MT "etcdrun.ssh.Job"
#define MAX_IDENTITIES 8
#define CHUNK 32768
#define DEFAULT_MAX_OUTPUT (32 * 1024 * 1024)

enum job_kind { J_CONNECT, J_EXEC, J_PUT, J_GET, J_STAT, J_MKDIR, J_REMOVE, J_CHMOD, J_RENAME };

extern const char *const sx_kind_names[];

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
    long long timeout_ms; /* -1: no deadline */
    size_t max_output;
    int mode, flag; /* flag: exclusive (put), recursive-free rmdir (remove), follow (stat) */
    /* outputs */
    int ok;
    char code[20];
    char *errmsg;
    struct buf out, err;
    int status, signal, out_trunc, err_trunc; /* signal: what killed it, or 0 */
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

/* ---- helpers (ssh.c) ---- */
char *sx_strdup(const char *s);
void sx_buf_free(struct buf *b);
int sx_buf_add(struct buf *b, const char *p, size_t n, size_t max);
long long sx_now_ms(void);
void sx_job_fail(struct job *j, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- connecting (ssh-connect.c) ---- */
void sx_run_connect(struct session *s, struct job *j);
int sx_need_connection(struct session *s, struct job *j, const char *op);
int sx_no_passphrase(const char *prompt, char *buf, size_t len, int echo, int verify, void *userdata);

/* ---- exec and SFTP (ssh-io.c) ---- */
void sx_run_exec(struct session *s, struct job *j, const volatile int *closing);
void sx_run_put(struct session *s, struct job *j, const volatile int *closing);
void sx_run_get(struct session *s, struct job *j, const volatile int *closing);
void sx_run_simple(struct session *s, struct job *j);

#endif
