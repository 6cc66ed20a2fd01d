/*
 * archive-digest.c: what archive.extract would write, without writing it.
 *
 * Every entry goes through the same rules as extraction (ar_select: path
 * normalisation, strip_components, include, refused escapes and special
 * files) and the same limits (max_entries; max_bytes on the apparent size,
 * a sparse file counting its declared size, checked before any data is
 * read); a selected file's data is streamed through SHA-256 with its holes
 * hashed as the zeros a reader of the extracted file would see. A hard link
 * must name a file selected earlier (as extraction requires a file it
 * wrote) and reports that file's digest, size and mode. An entry named
 * twice is reported once, as the later one leaves it. Conflicts between
 * entries on disk (a file where a later entry needs a directory) only show
 * when extracting.
 */
#include "archive-internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <archive_entry.h>
#include <openssl/evp.h>

static const unsigned char zeros[64 * 1024];

static size_t str_hash(const char *s, size_t cap)
{
    unsigned long long h = 1469598103934665603ULL;      /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h & (cap - 1);
}

/* The slot of rel in the index: its entry's position + 1, or 0 (free). */
static size_t *slot_of(ar_digests *d, const char *rel)
{
    size_t i = str_hash(rel, d->icap);
    while (d->index[i] != 0 && strcmp(d->v[d->index[i] - 1].rel, rel) != 0)
        i = (i + 1) & (d->icap - 1);
    return &d->index[i];
}

static const ar_digest *find(ar_digests *d, const char *rel)
{
    if (d->icap == 0)
        return NULL;
    size_t at = *slot_of(d, rel);
    return at ? &d->v[at - 1] : NULL;
}

static int grow(ar_digests *d)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 32;
        ar_digest *v = realloc(d->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        d->v = v, d->cap = cap;
    }
    if (2 * (d->n + 1) > d->icap) {
        size_t icap = d->icap ? 2 * d->icap : 64;
        size_t *old = d->index, oldcap = d->icap;
        if ((d->index = calloc(icap, sizeof *d->index)) == NULL) {
            d->index = old;
            return -1;
        }
        d->icap = icap;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i] != 0)
                *slot_of(d, d->v[old[i] - 1].rel) = old[i];
        free(old);
    }
    return 0;
}

/* Record (or, for a path named before, replace) an entry; takes rec's strings. */
static int put(ar_digests *d, ar_digest *rec)
{
    if (grow(d) != 0)
        return -1;
    size_t *at = slot_of(d, rec->rel);
    if (*at != 0) {
        ar_digest *old = &d->v[*at - 1];
        free(old->rel);
        free(old->link);
        *old = *rec;
        return 0;
    }
    d->v[d->n++] = *rec;
    *at = d->n;
    return 0;
}

void ar_digests_free(ar_digests *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].rel);
        free(d->v[i].link);
    }
    free(d->v);
    free(d->index);
    memset(d, 0, sizeof *d);
}

typedef struct {
    struct archive *in;
    const extract_opts *o;
    failure *f;
    long long bytes;            /* apparent size of the files so far */
} dstate;

static int efbig(dstate *x, const char *name)
{
    char n[64];
    snprintf(n, sizeof n, "%lld", x->o->max_bytes);
    ar_fail(x->f, "EFBIG", "archive expands beyond %s bytes (max_bytes), at entry '%s'", n, name);
    return -1;
}

/* Hash len zero bytes (a hole), watching for Ctrl-C. */
static int hash_zeros(dstate *x, EVP_MD_CTX *md, long long len, const char *name)
{
    while (len > 0) {
        size_t n = len > (long long)sizeof zeros ? sizeof zeros : (size_t)len;
        if (er_interrupted()) {
            ar_fail(x->f, "EINTR", "interrupted at entry '%s'%s", name, "");
            return -1;
        }
        EVP_DigestUpdate(md, zeros, n);
        len -= (long long)n;
    }
    return 0;
}

/* The entry's data through SHA-256 as copy_data (archive-extract.c) would
 * write it: blocks at their offsets, holes as zeros, within max_bytes. */
static int hash_data(dstate *x, const char *name, long long declared, ar_digest *rec)
{
    const void *buf;
    size_t size;
    la_int64_t off;
    long long pos = 0, end = 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int r, rc = -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        ar_fail(x->f, "ENOMEM", "out of memory%s%s", "", "");
        goto out;
    }
    while ((r = archive_read_data_block(x->in, &buf, &size, &off)) == ARCHIVE_OK) {
        if (er_interrupted()) {
            ar_fail(x->f, "EINTR", "interrupted at entry '%s'%s", name, "");
            goto out;
        }
        if (off < 0 || (long long)size > LLONG_MAX - off) {
            efbig(x, name);
            goto out;
        }
        if ((long long)off + (long long)size > end)
            end = (long long)off + (long long)size;
        if (end > declared && x->bytes + end > x->o->max_bytes) {
            efbig(x, name);
            goto out;
        }
        if ((long long)off < pos) {
            /* extraction would write over earlier bytes; a stream cannot */
            ar_fail(x->f, "EUNSUPPORTED", "entry '%s' has data blocks out of order%s", name, "");
            goto out;
        }
        if (hash_zeros(x, ctx, (long long)off - pos, name) != 0)
            goto out;
        EVP_DigestUpdate(ctx, buf, size);
        pos = (long long)off + (long long)size;
    }
    if (r != ARCHIVE_EOF) {
        ar_fail(x->f, "EARCHIVE", "%s (while reading '%s')", archive_error_string(x->in), name);
        goto out;
    }
    long long apparent = end > declared ? end : declared;
    if (hash_zeros(x, ctx, apparent - pos, name) != 0)    /* a trailing hole */
        goto out;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    for (unsigned int i = 0; i < mdlen && i < 32; i++)
        snprintf(rec->sha256 + 2 * i, 3, "%02x", md[i]);
    rec->size = apparent;
    x->bytes += apparent;
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

static int digest_one(dstate *x, struct archive_entry *e, ar_digests *out)
{
    ar_selected s;
    ar_digest rec;
    int rc = ar_select(e, x->o, &s, x->f);
    if (rc <= 0)
        return rc;
    memset(&rec, 0, sizeof rec);
    rc = -1;
    if (s.src != NULL) {
        const ar_digest *from = find(out, s.src);
        if (from == NULL || (strcmp(from->type, "file") != 0
                             && strcmp(from->type, "hardlink") != 0)) {
            ar_fail(x->f, "EUNSAFE", "entry '%s' is a hard link to '%s', which is not a file "
                    "extracted from this archive", s.name, s.hard);
            goto done;
        }
        rec.type = "hardlink";
        rec.mode = from->mode;
        rec.size = from->size;
        memcpy(rec.sha256, from->sha256, sizeof rec.sha256);
        rec.link = strdup(s.src);
    } else if (s.type == AE_IFLNK) {
        rec.type = "symlink";
        rec.mode = 0777;
        rec.link = strdup(s.target);
    } else if (s.type == AE_IFDIR) {
        rec.type = "dir";
        rec.mode = archive_entry_perm(e) & 0777;
    } else {
        long long declared = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        if (declared < 0 || declared > x->o->max_bytes - x->bytes) {
            efbig(x, s.name);
            goto done;
        }
        rec.type = "file";
        rec.mode = x->o->mode >= 0 ? x->o->mode : (int)(archive_entry_perm(e) & 0777);
        if (hash_data(x, s.name, declared, &rec) != 0)
            goto done;
    }
    if ((rec.rel = strdup(s.rel)) == NULL || (rec.link == NULL && s.type == AE_IFLNK)
        || (rec.link == NULL && s.src != NULL) || put(out, &rec) != 0) {
        free(rec.rel);
        free(rec.link);
        ar_fail(x->f, "ENOMEM", "out of memory%s%s", "", "");
        goto done;
    }
    rc = 0;
done:
    free(s.buf);
    return rc;
}

int ar_digest_all(struct archive *in, const extract_opts *o, ar_digests *out, failure *f)
{
    dstate x = {.in = in, .o = o, .f = f};
    struct archive_entry *e;
    long long entries = 0;
    int r, rc = 0;
    while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        if ((rc = ar_may_read(++entries, o, f)) != 0)
            break;
        if ((rc = digest_one(&x, e, out)) != 0)
            break;
    }
    if (rc == 0)
        rc = ar_read_done(in, r, o, f);
    if (rc != 0)
        ar_digests_free(out);
    return rc;
}
