/*
 * archive-internal.h: what the parts of the archive family share
 * (archive.c: reading, archive.list and the Lua side of archive.extract;
 * archive-extract.c: writing entries under the target with *at() calls).
 */
#ifndef ETCDRUN_ARCHIVE_INTERNAL_H
#define ETCDRUN_ARCHIVE_INTERNAL_H

#include "etcdrun.h"

#include <stddef.h>
#include <sys/types.h>

#include <archive.h>

#define AR_MSG_MAX 1024
#define AR_DEFAULT_MAX_BYTES (4LL << 30)   /* 4 GiB of apparent size */
#define AR_DEFAULT_MAX_ENTRIES 100000

/* Growable array of owned strings, freed by ar_sv_free. */
typedef struct {
    char **v;
    size_t n, cap;
} strvec;

void ar_sv_free(strvec *sv);
int ar_sv_push(strvec *sv, const char *s);

/* What went wrong during extraction, reported once the files are closed. */
typedef struct {
    char msg[AR_MSG_MAX];
    const char *code;
} failure;

/* Fill f with fmt, whose two %s take a and b made printable (entry names are
 * attacker-chosen and must not forge lines in an error message). */
void ar_fail(failure *f, const char *code, const char *fmt, const char *a, const char *b);
const char *ar_printable(char *buf, size_t size, const char *s);

typedef struct {
    int strip;
    int mode;                   /* -1: keep the archive's permission bits */
    long long max_bytes;        /* total apparent size of the files written */
    long long max_entries;      /* entries read, skipped ones included */
    strvec include;
    int *hits;
    dev_t skip_dev;             /* the archive itself: never replaced */
    ino_t skip_ino;
} extract_opts;

/*
 * Extract every entry of in under the directory open as root. Returns 0 with
 * the paths written in *done, or -1 with *f filled in and everything this
 * call created removed again. Touches no Lua state and no process-wide state.
 */
int ar_extract_all(struct archive *in, int root, const extract_opts *o, strvec *done,
                   failure *f);

#endif
