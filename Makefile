# etcdrun: plain GNU make. `make deps` installs Debian's packages, `make` builds
# ./etcdrun, `make test` runs every spec (lab included where root is available).

PREFIX   ?= /usr/local
DATADIR   = $(PREFIX)/share/etcdrun
MANDIR    = $(PREFIX)/share/man
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
# Debian's zsh reads packaged completions from vendor-completions, local ones from site-functions
ZSHCOMPDIR = $(PREFIX)/share/zsh/$(if $(filter /usr,$(PREFIX)),vendor-completions,site-functions)
PKGS      = lua5.4 libssh openssl libarchive libcurl libedit yaml-0.1 icu-uc icu-i18n
CC       ?= cc
WARN      = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE $(WARN) -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED
ifdef WERROR
CFLAGS   += -Werror
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS    = $(PKG_LIBS) -lpthread -lm

# Every runtime/<family>.c but main.c and util.c is a Lua module etcdrun.core.<family>;
# runtime/<family>-<part>.c files are parts of a family too big for one file.
SRCS      = $(wildcard runtime/*.c)
WHOLE     = $(foreach f,$(SRCS),$(if $(findstring -,$(notdir $(f))),,$(f)))
FAMILIES  = $(sort $(filter-out main util,$(basename $(notdir $(WHOLE)))))
FAMILIES_H = build/families.h

# The version has one source, debian/changelog's top entry (the package's
# version). A build from a git checkout adds where it stands with git describe
# (a `v<version>` tag, else the commit: 0.1.0-g58f029e[-dirty]); the package
# build passes VERSION=<package version> (debian/rules), and so does anyone
# building from a tarball without git.
ifndef VERSION
CHANGELOG_VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
ifeq ($(shell git rev-parse --show-toplevel 2>/dev/null),$(CURDIR))
GIT_TAGGED := $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null)
VERSION := $(if $(GIT_TAGGED),$(GIT_TAGGED:v%=%),$(CHANGELOG_VERSION)-g$(shell git describe --always --dirty))
else
VERSION := $(CHANGELOG_VERSION)
endif
endif
VERSION_H = build/version.h

BUSTED    = spec/run.lua
SPECS    ?= spec
FUZZ_SECONDS ?= 60

.PHONY: all version man deb deps test test-unit asan test-asan fuzz lint install uninstall clean lab-up lab-down

all: etcdrun

# Regenerate families.h only when the list of families changes.
$(FAMILIES_H): FORCE
	@mkdir -p build
	@printf '#define ETCDRUN_FAMILIES(X) %s\n' "$(foreach f,$(FAMILIES),X($(f)))" > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

# Rewritten only when the version changes; only the files that print it depend on it.
$(VERSION_H): FORCE
	@mkdir -p build
	@printf '#define ETCDRUN_VERSION "%s"\n' "$(VERSION)" > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
build/main.o build/http.o build/asan/main.o build/asan/http.o: $(VERSION_H)

version:
	@echo $(VERSION)

build/%.o: runtime/%.c $(wildcard runtime/*.h) $(FAMILIES_H)
	@mkdir -p build
	$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -Ibuild -DETCDRUN_DATADIR='"$(DATADIR)"' -c $< -o $@

# Link to a temporary name and rename, so a running ./etcdrun is never
# overwritten in place ("text file busy") and never seen half-written.
etcdrun: $(patsubst runtime/%.c,build/%.o,$(SRCS))
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@.tmp $^ $(LDLIBS) && mv -f $@.tmp $@

# AddressSanitizer + UndefinedBehaviorSanitizer build of the same sources.
ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
build/asan/%.o: runtime/%.c $(wildcard runtime/*.h) $(FAMILIES_H)
	@mkdir -p build/asan
	$(CC) $(filter-out -O2,$(CFLAGS)) $(ASAN_FLAGS) $(PKG_CFLAGS) -Ibuild -c $< -o $@

etcdrun-asan: $(patsubst runtime/%.c,build/asan/%.o,$(SRCS))
	$(CC) $(ASAN_FLAGS) $(LDFLAGS) -o $@.tmp $^ $(LDLIBS) && mv -f $@.tmp $@

asan: etcdrun-asan

deps:
	@sh .ci/deps.sh

test: etcdrun
	@sh spec/run-all.sh ./etcdrun

test-asan: etcdrun etcdrun-asan
	@ASAN_OPTIONS=detect_leaks=1 sh spec/run-all.sh ./etcdrun-asan

# libFuzzer targets: fuzz/<name>_fuzz.c, each run for FUZZ_SECONDS.
FUZZ_CC = clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
TEMPLATE_SRCS = runtime/template.c $(wildcard runtime/template-*.c) runtime/util.c
build/fuzz/template_fuzz: fuzz/template_fuzz.c $(TEMPLATE_SRCS) $(wildcard runtime/*.h) $(FAMILIES_H)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -D_GNU_SOURCE $(PKG_CFLAGS) -Iruntime -Ibuild -o $@ \
		fuzz/template_fuzz.c $(TEMPLATE_SRCS) $(LDLIBS)

# The inventory target runs Lua code (lua/etcdrun/inventory*.lua) from the
# repository root, with runtime/yaml.c (libyaml) for the YAML reader; a line
# hook feeds coverage of that code back to libFuzzer.
build/fuzz/inventory_fuzz: fuzz/inventory_fuzz.c runtime/yaml.c $(wildcard lua/etcdrun/inventory*.lua lua/etcdrun/inventory/*.lua) $(FAMILIES_H)
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -D_GNU_SOURCE $(PKG_CFLAGS) -Iruntime -Ibuild -o $@ \
		fuzz/inventory_fuzz.c runtime/yaml.c $(LDLIBS)

fuzz: build/fuzz/template_fuzz build/fuzz/inventory_fuzz
	@sh fuzz/run.sh $(FUZZ_SECONDS) $^

LUA_DIRS = $(wildcard lua spec modules playbooks examples docs)
# The lab: real nodes (systemd-nspawn) for the integration specs and the demo.
N   ?= 3
LAB  = bash spec/lab/lab.sh
.PHONY: lab-status lab-base bench demo
lab-up:
	@$(LAB) up $(N)
lab-down:
	@$(LAB) down
lab-status:
	@$(LAB) status
lab-base:
	@bash spec/lab/rootfs.sh >/dev/null && bash spec/lab/release.sh >/dev/null && \
		bash spec/lab/release.sh --upgrade >/dev/null

# The main job on the lab: 3 nodes -> a verified TLS etcd cluster.
demo:
	@bash examples/demo.sh

bench: etcdrun
	@bash spec/bench/run.sh

lint:
	luacheck -q $(LUA_DIRS)

# Man pages, generated from the tables --help, `etcdrun doc` and :doc render
# and from the READMEs' prose (docs/man/mkman.lua), so they cannot drift.
MANPAGES = build/man/etcdrun.1 build/man/etcdrun-playbook.7
man: $(MANPAGES)
build/man/%: etcdrun docs/man/mkman.lua docs/man/roff.lua README.md modules/README.md debian/changelog \
		$(wildcard modules/*.lua lua/etcdrun/cli/*.lua lua/etcdrun/module.lua)
	@mkdir -p build/man
	ETCDRUN_HOME=$(CURDIR) ETCDRUN_PATH= ./etcdrun docs/man/mkman.lua $* > $@.tmp && mv $@.tmp $@

# The Debian package etcdrun_<version>_<arch>.deb (dpkg-buildpackage, lintian): debian/make-deb
deb:
	@sh debian/make-deb

install: etcdrun man
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(DATADIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 0755 etcdrun $(DESTDIR)$(PREFIX)/bin/etcdrun
	cp -R lua $(DESTDIR)$(DATADIR)/
	@for d in modules playbooks; do [ -d $$d ] && cp -R $$d $(DESTDIR)$(DATADIR)/ || true; done
	install -m 0644 build/man/etcdrun.1 $(DESTDIR)$(MANDIR)/man1/etcdrun.1
	install -m 0644 build/man/etcdrun-playbook.7 $(DESTDIR)$(MANDIR)/man7/etcdrun-playbook.7
	install -m 0644 completion/etcdrun.bash $(DESTDIR)$(BASHCOMPDIR)/etcdrun
	install -m 0644 completion/_etcdrun $(DESTDIR)$(ZSHCOMPDIR)/_etcdrun

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/etcdrun $(DESTDIR)$(MANDIR)/man1/etcdrun.1 \
		$(DESTDIR)$(MANDIR)/man7/etcdrun-playbook.7 $(DESTDIR)$(BASHCOMPDIR)/etcdrun $(DESTDIR)$(ZSHCOMPDIR)/_etcdrun
	rm -rf $(DESTDIR)$(DATADIR)

clean:
	rm -rf build etcdrun etcdrun-asan etcdrun_*.deb

FORCE:
