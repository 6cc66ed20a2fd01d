/*
 * archive-internal.h: what the parts of the archive family share
 * (archive.c: reading, the selection and path rules, and the Lua side;
 * archive-extract.c: writing entries under the target with *at() calls;
 * archive-digest.c: hashing the entries extract would write, writing nothing).
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

/* One entry as the selection and path rules see it. */
typedef struct {
    char *buf;                  /* owns name, rel and src: free(buf) when selected */
    char *name;                 /* the archive's name, copied (the entry's own is freed
                                   when the next header is read) */
    char *rel;                  /* normalised, stripped: where it lands under the target */
    char *src;                  /* a hard link's source, normalised and stripped; else NULL */
    const char *hard;           /* a hard link's source as the archive names it */
    const char *target;         /* a symlink's target */
    int type;                   /* AE_IF* */
} ar_selected;

/*
 * The rules extract and digests share, for one entry: a path that is
 * absolute or holds ".." is refused (EUNSAFE), strip_components and include
 * select, special files are refused (EUNSUPPORTED), a hard link must name a
 * path inside and a symlink may not point outside (EUNSAFE). Returns 1 when
 * selected (s filled; the caller frees s->buf), 0 when not wanted, -1 with
 * f filled when the entry is refused.
 */
int ar_select(struct archive_entry *e, const extract_opts *o, ar_selected *s, failure *f);

/* Before reading entry number n: its count within max_entries and no Ctrl-C;
 * -1 with f filled when it may not be read (shared by extract and digests). */
int ar_may_read(long long n, const extract_opts *o, failure *f);
/* After the last header (r is what archive_read_next_header said): the read
 * ended cleanly and every include pattern matched; 0, or -1 with f filled. */
int ar_read_done(struct archive *in, int r, const extract_opts *o, failure *f);

/*
 * Extract every entry of in under the directory open as root. Returns 0 with
 * the paths written in *done, or -1 with *f filled in and everything this
 * call created removed again. Touches no Lua state and no process-wide state.
 */
int ar_extract_all(struct archive *in, int root, const extract_opts *o, strvec *done,
                   failure *f);

/* What archive.digests reports of one selected entry. */
typedef struct {
    char *rel;
    char *link;                 /* symlink target, or a hard link's (normalised) source */
    const char *type;           /* "file", "dir", "symlink", "hardlink" */
    int mode;
    long long size;             /* apparent size of a file, 0 otherwise */
    char sha256[65];            /* hex for a file or hard link, "" otherwise */
} ar_digest;

typedef struct {
    ar_digest *v;
    size_t n, cap;
    size_t *index;              /* open addressing by rel: an entry named twice is one */
    size_t icap;
} ar_digests;

/*
 * Read every entry of in as ar_extract_all would write it, under the same
 * rules (ar_select), limits (max_bytes, max_entries) and include check,
 * streaming each selected file's data (holes as zeros) through SHA-256.
 * Writes nothing. Returns 0 with out filled (free with ar_digests_free), or
 * -1 with f filled. Touches no Lua state.
 */
int ar_digest_all(struct archive *in, const extract_opts *o, ar_digests *out, failure *f);
void ar_digests_free(ar_digests *d);

#endif
