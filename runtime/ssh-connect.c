/*
 * ssh-connect.c: opening a session (part of the ssh family): the libssh
 * connection, strict host-key checking against known_hosts (or trust on
 * first use), and authentication by key file, agent or default keys.
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
        sx_job_fail(j, "EHOSTKEY", "ssh.connect: server sent no host key (%s)", s->name);
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
        sx_job_fail(j, "EHOSTKEY",
                 "ssh.connect: host key CHANGED for %s: server sent %s %s, known_hosts has %s "
                 "(%s); if the node was rebuilt, remove the old line",
                 s->host, j->hostkey_type, j->fingerprint, known_fp ? known_fp : "another key",
                 s->name);
        free(known_fp);
        return 0;
    case SSH_KNOWN_HOSTS_OTHER:
        sx_job_fail(j, "EHOSTKEY",
                 "ssh.connect: host key mismatch for %s: server sent %s %s but known_hosts "
                 "holds a key of another type for it (%s)",
                 s->host, j->hostkey_type, j->fingerprint, s->name);
        return 0;
    case SSH_KNOWN_HOSTS_NOT_FOUND:
    case SSH_KNOWN_HOSTS_UNKNOWN:
        if (s->accept_new) {
            char *line = NULL;
            if (ssh_session_export_known_hosts_entry(s->ssh, &line) != SSH_OK) {
                sx_job_fail(j, "EHOSTKEY", "ssh.connect: cannot export host key of %s (%s)",
                         s->host, s->name);
                return 0;
            }
            j->known_hosts_line = strdup(line);
            ssh_string_free_char(line);
            return 1;
        }
        sx_job_fail(j, "EHOSTKEY",
                 "ssh.connect: host key for %s is not known: server sent %s %s, known_hosts "
                 "has none (%s); add it to known_hosts or use --host-key accept-new",
                 s->host, j->hostkey_type, j->fingerprint, s->name);
        return 0;
    case SSH_KNOWN_HOSTS_ERROR:
    default:
        sx_job_fail(j, "EHOSTKEY", "ssh.connect: cannot check host key of %s: %s (%s)", s->host,
                 ssh_get_error(s->ssh), s->name);
        return 0;
    }
}

/* libssh asks here when a key file needs a passphrase we do not have. */
int sx_no_passphrase(const char *prompt, char *buf, size_t len, int echo, int verify,
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
                                        s->passphrase ? NULL : sx_no_passphrase, &needs,
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
    sx_job_fail(j, "EAUTH",
             "ssh.connect: authentication failed for %s@%s (tried: %s; server accepts:%s%s%s) "
             "(%s)",
             user ? user : "?", s->host, tried[0] ? tried : "nothing",
             (methods & SSH_AUTH_METHOD_PUBLICKEY) ? " publickey" : "",
             (methods & SSH_AUTH_METHOD_PASSWORD) ? " password" : "",
             (methods & SSH_AUTH_METHOD_INTERACTIVE) ? " keyboard-interactive" : "", s->name);
    ssh_string_free_char(user);
    return 0;
lost:
    sx_job_fail(j, "EAUTH", "ssh.connect: authentication error with %s: %s (%s)", s->host,
             ssh_get_error(s->ssh), s->name);
    return 0;
}

void sx_run_connect(struct session *s, struct job *j)
{
    if (s->connected) {
        j->ok = 1;
        return;
    }
    s->ssh = ssh_new();
    if (!s->ssh) {
        sx_job_fail(j, "ENOMEM", "ssh.connect: cannot create session (%s)", s->name);
        return;
    }
    ssh_options_set(s->ssh, SSH_OPTIONS_HOST, s->host);
    if (s->read_config && ssh_options_parse_config(s->ssh, s->config) != 0) {
        sx_job_fail(j, "ECONFIG", "ssh.connect: cannot read ssh config %s (%s)",
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
        sx_job_fail(j, connect_code(msg), "ssh.connect: cannot connect to %s: %s (%s)", s->host,
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

int sx_need_connection(struct session *s, struct job *j, const char *op)
{
    if (s->connected && ssh_is_connected(s->ssh))
        return 1;
    sx_job_fail(j, "ENOTCONN", "ssh.%s: not connected (%s)", op, s->name);
    return 0;
}
