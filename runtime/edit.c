/*
 * edit.c: line editing for the REPL (etcdrun.core.edit), over libedit
 * (BSD licence; GNU readline would make the binary GPL). An Editor reads one
 * line at a time with history and a completion callback into Lua; policy
 * (what to complete, where history lives) stays in lua/etcdrun/repl.lua.
 *
 * Ctrl-C: main.c's SIGINT handler sets the interrupt flag and a Lua hook, and
 * puts SIGINT back to SIG_DFL so that a second Ctrl-C kills a wedged process.
 * At the prompt that is wrong, so readline() installs its own handler, which
 * only notes the Ctrl-C: the line being typed is dropped and readline returns
 * "interrupted". clear_interrupt() clears main.c's flag and re-installs its
 * handler (saved when this module is loaded) after a command was interrupted.
 */
#include "etcdrun.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include <histedit.h>

#define EDITOR_MT "etcdrun.edit.Editor"
#define HISTORY_SIZE 1000

struct editor {
    EditLine *el;
    History *hist;
    locale_t loc;     /* the user's LC_CTYPE, used on this thread only (uselocale) */
    lua_State *L;     /* set while readline() runs, for the completion callback */
    int close_pending; /* close() from inside readline(): done when it returns */
    int has_complete; /* the Lua completer is the userdata's user value 1 */
    int infd;
    char *prompt;
};

/* main.c's SIGINT action, as it was when this module was loaded */
static struct sigaction main_sigint;
static int have_main_sigint;

static volatile sig_atomic_t got_sigint, got_winch;

static void on_prompt_signal(int sig)
{
    if (sig == SIGINT)
        got_sigint = 1;
    else
        got_winch = 1;
}

static struct editor *check_editor(lua_State *L)
{
    struct editor *ed = luaL_checkudata(L, 1, EDITOR_MT);
    if (!ed->el || ed->close_pending)
        luaL_error(L, "edit: editor is closed");
    return ed;
}

/* What libedit must not have changed under it while el_gets() runs (from
   the completion callback): its history list, or a second el_gets(). */
static struct editor *check_idle(lua_State *L, const char *what)
{
    struct editor *ed = check_editor(L);
    if (ed->L)
        luaL_error(L, "edit: %s is not allowed inside the completion callback", what);
    return ed;
}

static struct editor *client(EditLine *el)
{
    void *p = NULL;
    el_get(el, EL_CLIENTDATA, &p);
    return p;
}

static char *prompt_fn(EditLine *el)
{
    struct editor *ed = client(el);
    return ed && ed->prompt ? ed->prompt : "";
}

/*
 * libedit's own reader retries a read interrupted by a signal once, so a
 * Ctrl-C would only be seen on the next key. This one gives up on SIGINT
 * (el_gets then fails with EINTR), follows a terminal resize, and decodes
 * multibyte characters in the user's locale. It polls with a short timeout
 * because the kernel may hand the signal to an SSH worker thread, and then
 * no read() of this thread is interrupted.
 */
static int read_char(EditLine *el, wchar_t *wc)
{
    struct editor *ed = client(el);
    char buf[MB_LEN_MAX];
    size_t n = 0;
    for (;;) {
        if (got_sigint) {
            errno = EINTR;
            return -1;
        }
        if (got_winch) {
            got_winch = 0;
            el_resize(el);
            el_set(el, EL_REFRESH);
        }
        struct pollfd p = {.fd = ed->infd, .events = POLLIN};
        int ready = poll(&p, 1, 100);
        if (ready < 0 && errno != EINTR)
            return -1;
        if (ready <= 0)
            continue;
        unsigned char c;
        ssize_t r = read(ed->infd, &c, 1);
        if (r == 0)
            return 0;
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        buf[n++] = (char)c;
        mbstate_t st;
        memset(&st, 0, sizeof st);
        size_t k = mbrtowc(wc, buf, n, &st);
        if (k == (size_t)-2 && n < sizeof buf)
            continue; /* an incomplete sequence: read on */
        if (k == (size_t)-1 || k == (size_t)-2)
            *wc = (wchar_t)(unsigned char)buf[0]; /* not valid here: pass the byte */
        return 1;
    }
}

/* Tab: ask Lua what to insert, or what to show, for the text before the cursor. */
static unsigned char complete(EditLine *el, int ch)
{
    (void)ch;
    struct editor *ed = client(el);
    lua_State *L = ed ? ed->L : NULL;
    if (!L || !ed->has_complete)
        return CC_REFRESH_BEEP;
    const LineInfo *li = el_line(el);
    int width = 80;
    if (el_get(el, EL_GETTC, "co", &width, (void *)0) != 0 || width <= 0)
        width = 80;
    int top = lua_gettop(L);
    if (!lua_checkstack(L, 4))
        return CC_REFRESH_BEEP;
    /* the editor userdata sits at index 1 of readline's frame */
    lua_getiuservalue(L, 1, 1);
    lua_pushlstring(L, li->buffer, (size_t)(li->cursor - li->buffer));
    lua_pushinteger(L, width);
    unsigned char rc = CC_REFRESH_BEEP;
    if (lua_pcall(L, 2, 2, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        fprintf(stdout, "\ncompletion failed: %s\n", msg ? msg : luaL_typename(L, -1));
        rc = CC_REDISPLAY;
    } else {
        const char *insert = lua_tostring(L, -2);
        const char *show = lua_tostring(L, -1);
        if (insert && *insert && el_insertstr(el, insert) == 0)
            rc = CC_REFRESH;
        if (show && *show) {
            fprintf(stdout, "\n%s", show);
            if (show[strlen(show) - 1] != '\n')
                fputc('\n', stdout);
            fflush(stdout);
            rc = CC_REDISPLAY;
        }
    }
    lua_settop(L, top);
    return rc;
}

/* edit.new({complete = fn(before_cursor, width) -> insert?, show?}) -> Editor
 * Reads stdin and writes stdout, which must be a terminal to edit. */
static int l_new(lua_State *L)
{
    static const char *const known[] = {"complete", NULL};
    er_check_options(L, 1, "edit.new", known);
    int has_complete = 0;
    if (lua_istable(L, 1)) {
        int t = lua_getfield(L, 1, "complete");
        if (t != LUA_TNIL && t != LUA_TFUNCTION)
            return luaL_error(L, "edit.new: option 'complete' must be a function");
        has_complete = t == LUA_TFUNCTION;
    } else {
        lua_pushnil(L);
    }
    int fn = lua_gettop(L);
    struct editor *ed = lua_newuserdatauv(L, sizeof *ed, 1);
    memset(ed, 0, sizeof *ed);
    luaL_setmetatable(L, EDITOR_MT);
    lua_pushvalue(L, fn);
    lua_setiuservalue(L, -2, 1);
    ed->has_complete = has_complete;
    ed->infd = fileno(stdin);

    ed->loc = newlocale(LC_CTYPE_MASK, "", (locale_t)0);
    locale_t old = ed->loc ? uselocale(ed->loc) : (locale_t)0;
    ed->el = el_init("etcdrun", stdin, stdout, stderr);
    ed->hist = history_init();
    if (ed->el && ed->hist) {
        HistEvent ev;
        history(ed->hist, &ev, H_SETSIZE, HISTORY_SIZE);
        history(ed->hist, &ev, H_SETUNIQUE, 1);
        el_set(ed->el, EL_CLIENTDATA, (void *)ed);
        el_set(ed->el, EL_EDITOR, "emacs");
        el_set(ed->el, EL_PROMPT, prompt_fn);
        el_set(ed->el, EL_HIST, history, ed->hist);
        el_set(ed->el, EL_GETCFN, read_char);
        /* the wide call: the narrow one copies both strings and never frees them */
        el_wset(ed->el, EL_ADDFN, L"etcdrun-complete", L"complete a word", complete);
        el_set(ed->el, EL_BIND, "^I", "etcdrun-complete", (void *)0);
        el_set(ed->el, EL_BIND, "^R", "em-inc-search-prev", (void *)0);
        el_source(ed->el, NULL); /* ~/.editrc, for those who want vi keys */
    }
    if (ed->loc)
        uselocale(old);
    if (!ed->el || !ed->hist)
        return er_fail(L, "EIO", "edit.new: cannot set up line editing (%s)", "stdin");
    return 1;
}

/* Frees what libedit holds and restores the terminal; safe twice. */
static void close_editor(struct editor *ed)
{
    ed->close_pending = 0;
    if (ed->el) {
        el_end(ed->el);
        ed->el = NULL;
    }
    if (ed->hist) {
        history_end(ed->hist);
        ed->hist = NULL;
    }
    if (ed->loc) {
        freelocale(ed->loc);
        ed->loc = (locale_t)0;
    }
    free(ed->prompt);
    ed->prompt = NULL;
}

/* Editor:readline(prompt) -> line | nil at end of input (Ctrl-D)
 *   | nil, "edit.readline: interrupted", "EINTR" (Ctrl-C: the line is dropped) */
static int l_readline(lua_State *L)
{
    struct editor *ed = check_idle(L, "readline");
    const char *prompt = luaL_checkstring(L, 2);
    lua_settop(L, 2);
    char *copy = strdup(prompt);
    if (!copy)
        return luaL_error(L, "edit: out of memory");
    free(ed->prompt);
    ed->prompt = copy;

    struct sigaction sa, old_int, old_winch;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prompt_signal; /* no SA_RESTART: a waiting poll() returns at once */
    sigemptyset(&sa.sa_mask);
    got_sigint = got_winch = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGWINCH, &sa, &old_winch);

    locale_t old = ed->loc ? uselocale(ed->loc) : (locale_t)0;
    el_resize(ed->el);
    ed->L = L;
    int count = 0;
    const char *line = el_gets(ed->el, &count);
    int err = errno;
    ed->L = NULL;
    if (ed->loc)
        uselocale(old);

    sigaction(SIGWINCH, &old_winch, NULL);
    sigaction(SIGINT, &old_int, NULL);

    int n;
    if (got_sigint) {
        got_sigint = 0;
        n = er_fail(L, "EINTR", "edit.readline: interrupted");
    } else if (!line || count <= 0) {
        if (count < 0 && err != EINTR) {
            n = er_fail(L, er_errno_code(err), "edit.readline: %s (stdin)", strerror(err));
        } else {
            lua_pushnil(L);
            n = 1;
        }
    } else {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n')
            len--;
        lua_pushlstring(L, line, len); /* line is libedit's: copied before any close */
        n = 1;
    }
    if (ed->close_pending)
        close_editor(ed);
    return n;
}

/* Editor:add_history(line): also what the up arrow brings back */
static int l_add_history(lua_State *L)
{
    struct editor *ed = check_idle(L, "add_history");
    const char *line = luaL_checkstring(L, 2);
    HistEvent ev;
    locale_t old = ed->loc ? uselocale(ed->loc) : (locale_t)0;
    history(ed->hist, &ev, H_ENTER, line);
    if (ed->loc)
        uselocale(old);
    return 0;
}

/* Shared by load and save: libedit reports -1 and leaves errno set. */
static int history_file(lua_State *L, int op, const char *name)
{
    struct editor *ed = op == H_LOAD ? check_idle(L, "load_history") : check_editor(L);
    const char *path = er_checkpath(L, 2, name);
    HistEvent ev;
    errno = 0;
    locale_t old = ed->loc ? uselocale(ed->loc) : (locale_t)0;
    int rc = history(ed->hist, &ev, op, path);
    int err = errno;
    if (ed->loc)
        uselocale(old);
    if (rc < 0) {
        if (err == 0)
            return er_fail(L, "EINVAL", "%s: not a history file (%s)", name, path);
        return er_fail_errno(L, name, path, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Editor:load_history(path) -> true | nil, err, code */
static int l_load_history(lua_State *L)
{
    return history_file(L, H_LOAD, "edit.load_history");
}

/* Editor:save_history(path) -> true | nil, err, code (libedit makes it mode 0600) */
static int l_save_history(lua_State *L)
{
    return history_file(L, H_SAVE, "edit.save_history");
}

/* Editor:close(): restores the terminal; safe twice, also __close. From the
 * completion callback (inside readline) the editor is closed when readline
 * returns, because libedit is still using it. */
static int l_close(lua_State *L)
{
    struct editor *ed = luaL_checkudata(L, 1, EDITOR_MT);
    if (ed->L)
        ed->close_pending = 1;
    else
        close_editor(ed);
    return 0;
}

/* __gc: readline's frame holds the editor while it runs, so it is collected
 * inside readline only when the whole state closes (os.exit from the
 * callback), and readline never resumes: close now, restoring the terminal. */
static int l_gc(lua_State *L)
{
    close_editor(luaL_checkudata(L, 1, EDITOR_MT));
    return 0;
}

/* edit.clear_interrupt(): forget a Ctrl-C that has been dealt with and make
 * the next one interrupt again (main.c's handler, re-installed) */
static int l_clear_interrupt(lua_State *L)
{
    (void)L;
    er_set_interrupted(0);
    if (have_main_sigint)
        sigaction(SIGINT, &main_sigint, NULL);
    return 0;
}

/* edit.sleep(seconds): a pause that a pending interrupt does not cut short,
 * for waiting until SSH workers have seen a Ctrl-C */
static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    if (s != s)
        return luaL_error(L, "edit.sleep: seconds must be a number, got nan");
    if (s <= 0)
        return 0;
    if (s > 10)
        return luaL_error(L, "edit.sleep: at most 10 seconds");
    struct timespec ts = {(time_t)s, (long)((s - (lua_Number)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

int luaopen_etcdrun_core_edit(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"readline", l_readline},
        {"add_history", l_add_history},
        {"load_history", l_load_history},
        {"save_history", l_save_history},
        {"close", l_close},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"new", l_new},
        {"clear_interrupt", l_clear_interrupt},
        {"sleep", l_sleep},
        {NULL, NULL},
    };
    if (!have_main_sigint && sigaction(SIGINT, NULL, &main_sigint) == 0 &&
        main_sigint.sa_handler != SIG_DFL && main_sigint.sa_handler != SIG_IGN)
        have_main_sigint = 1;
    luaL_newmetatable(L, EDITOR_MT);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
