# hopper: one plain Makefile with explicit object lists.
#   make              build hopperd, hopper-worker, hopperctl (into build/)
#   make check        install missing Debian packages, build, run every test; SAN=1 for ASan+UBSan
#   make bench        throughput/latency benchmark against a bare hiredis baseline
#   make bench-peers  hopperd beside beanstalkd, Sidekiq, BullMQ, Celery and the bare loop (installs them)
#   make bench-web    hopper-web: HTTP and webhook ingress vs the control socket, 1,000 SSE streams
#   make bench-limits rate-limited and concurrency-keyed jobs vs plain ones (cost per job; part of make bench)
#   make bench-redis-cost  the Redis functions' instructions per noop job (callgrind replay; needs valgrind)
#   make demo         private redis-server + hopperd + a few jobs with live progress
#   make fuzz         libFuzzer harnesses (clang), FUZZ_SECONDS each
#   make chaos        the fault-injecting checker (tests/chaos/): CHAOS_SEEDS seeds of CHAOS_JOBS jobs, all faults
#   make install      PREFIX (/usr/local) and DESTDIR honoured
#   make clean

PREFIX ?= /usr/local
DESTDIR ?=
SAN ?= 0
CC ?= cc
FUZZ_SECONDS ?= 60

PKGS := hiredis sqlite3 jansson libsodium
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# libcurl is the workflow engine's http step: the worker (and the workflow tests) link it, hopperd does not.
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS := $(shell pkg-config --libs libcurl 2>/dev/null)
# libev ships no pkg-config file on Debian: its header and library sit in the default paths.
EV_LIBS := -lev

WARN := -Wall -Wextra -Werror -Wformat=2 -Wstrict-prototypes -Wwrite-strings -Wshadow -Wno-unused-parameter
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g $(WARN) -Icommon -Iworker -Iworker/workflow $(PKG_CFLAGS) $(CURL_CFLAGS) -DHOPPER_LIBEXEC=\"$(PREFIX)/libexec/hopper\"

ifeq ($(SAN),1)
B := build-san
OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -DHOPPER_SAN
LDSAN := -fsanitize=address,undefined
else
B := build
OPT := -O2
LDSAN :=
endif

CFLAGS ?=
ALL_CFLAGS := $(CFLAGS_BASE) $(OPT) $(CFLAGS)
LDLIBS := $(PKG_LIBS) $(EV_LIBS) -lm

COMMON_OBJS := common/log.o common/xmalloc.o common/frame.o common/job.o common/jsonx.o common/clock.o \
	common/celery_msg.o common/celery_opts.o common/ctl_proto.o common/ctl_crypto.o common/webhook_sig.o
COMMON_OBJS += common/job_ns.o
COMMON_OBJS += common/job_flow.o
COMMON_OBJS += common/job_limits.o
COMMON_OBJS += common/sched_time.o
COMMON_OBJS += common/sched_tz.o
COMMON_OBJS += common/sched_def.o
DAEMON_OBJS := daemon/hopperd.o daemon/config.o daemon/redis/redis.o daemon/redis/redis_sentinel.o daemon/redis/redis_wait.o daemon/jobs.o daemon/jobs_park.o daemon/pool.o daemon/store/store.o daemon/store/store_log.o \
	daemon/heap.o daemon/fetch.o daemon/node.o daemon/celery.o daemon/workflows.o daemon/ctl/ctl.o daemon/ctl/ctl_listen.o \
	daemon/ctl/ctl_auth.o daemon/ctl/ctl_key.o daemon/ctl/ctl_ops.o daemon/ctl/ctl_logs.o daemon/ctl/ctl_watch.o daemon/ctl/ctl_workflow.o daemon/ctl/ctl_celery.o daemon/redis/rfunc.o daemon/ctl/ctl_locate.o \
	daemon/ctl/ctl_webhook.o daemon/metrics.o daemon/celery/pidbox.o daemon/celery/events.o gen/lua.o gen/migrations.o
DAEMON_OBJS += daemon/ctl/ctl_ns.o
DAEMON_OBJS += daemon/ctl/ctl_dead.o
DAEMON_OBJS += daemon/sched.o daemon/ctl/ctl_sched.o
DAEMON_OBJS += daemon/shared.o daemon/shared_cli.o daemon/ctl/ctl_token.o daemon/store/store_shared.o daemon/redis/redis_sync.o
DAEMON_OBJS += daemon/ctl/ctl_rf.o daemon/ctl/ctl_event.o daemon/events.o daemon/ctl/ctl_jobops.o
# hopperd's subsystems each have a folder (ctl/: the control socket, store/: SQLite, redis/: the Redis link and
# its function table); their headers are included by name from anywhere in the daemon and its tests.
DAEMON_INC := -Idaemon -Idaemon/ctl -Idaemon/store -Idaemon/redis
$(addprefix $(B)/,$(DAEMON_OBJS)): ALL_CFLAGS += $(DAEMON_INC)
# The workflow engine: WF_PURE_OBJS (definitions, templates, expressions, masking) link without the worker.
WF_PURE_OBJS := worker/workflow/wf_def.o worker/workflow/wf_template.o worker/workflow/wf_expr.o \
	worker/workflow/wf_mask.o worker/workflow/wf_config.o
WF_OBJS := $(WF_PURE_OBJS) worker/workflow/wf_steps.o worker/workflow/wf_wait.o worker/workflow/wf_http.o worker/workflow/wf_net.o worker/workflow/wf_exec.o
AUDIO_OBJS := worker/audio/analyze.o worker/audio/levels.o worker/audio/loudness.o worker/audio/spectral.o \
	worker/audio/rhythm.o worker/audio/key.o worker/audio/series.o
AUDIO_OBJS += worker/audio/contrast.o
AUDIO_LIBS := $(shell pkg-config --libs sndfile fftw3f 2>/dev/null)
# gcc 12 does not vectorise at -O2; the true-peak and spectral loops are written for it (clang does anyway).
$(addprefix $(B)/,$(AUDIO_OBJS)): ALL_CFLAGS += -ftree-vectorize -fno-math-errno -fno-signed-zeros -fno-trapping-math -fassociative-math
WORKER_OBJS := worker/worker.o worker/handlers.o worker/workflow/wf_run.o $(WF_OBJS) $(AUDIO_OBJS)
CLIENT_OBJS := client/hopperctl.o client/conn.o client/text.o client/status.o client/submit.o client/watch.o client/dead.o \
	client/ops.o client/celery.o client/workflow.o
CLIENT_OBJS += client/secret.o
# libhopper: the control-socket client library (client/hopper.h), with the common modules it needs. The shared
# library exports only the HOPPER_API functions (-fvisibility=hidden); its soname carries the major version.
LIB_OBJS := client/libhopper.o client/libhopper_bulk.o client/known_hosts.o common/ctl_proto.o common/ctl_crypto.o common/jsonx.o common/job.o common/xmalloc.o \
	common/log.o common/clock.o
LIB_OBJS += common/job_flow.o
LIB_OBJS += common/job_limits.o
LIB_VERSION := 0.1.0
LIB_SOVERSION := 0
LIB_LIBS := $(shell pkg-config --libs jansson libsodium 2>/dev/null) -lm
# hopper-web: the HTTP front (client/web/), a libhopper client; libmicrohttpd serves HTTP (see README).
MHD_CFLAGS := $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS := $(shell pkg-config --libs libmicrohttpd 2>/dev/null)
WEB_PURE_OBJS := client/web/routes.o client/web/metrics.o client/web/webhook.o client/web/session.o client/web/pool.o
WEB_PURE_OBJS += client/web/evid.o
WEB_OBJS := client/web/main.o client/web/http.o client/web/sse.o client/web/assets.o $(WEB_PURE_OBJS) gen/web_assets.o
$(addprefix $(B)/,$(WEB_OBJS)): ALL_CFLAGS += -Iclient $(DAEMON_INC) $(MHD_CFLAGS)
UNIT_TESTS := test_web test_frame test_job test_config test_store test_store_log test_heap test_celery test_workflow test_store_wf \
	test_ctl_proto test_ctl_crypto seeds_ctl_frame seeds_ctl_request seeds_webhook_sig
UNIT_TESTS += test_job_ns
UNIT_TESTS += test_job_flow
UNIT_TESTS += test_job_limits
UNIT_TESTS += test_sched_time seeds_sched_time
UNIT_TESTS += test_sched_def seeds_sched_def
UNIT_TESTS += test_sched_tz seeds_sched_tz

BINS := $(B)/hopperd $(B)/hopper-worker $(B)/hopperctl $(B)/hopper-analyze $(B)/hopper-web
LIBS_OUT := $(B)/libhopper.a $(B)/libhopper.so $(B)/hopper.pc $(B)/examples/submit_and_wait $(B)/examples/celery_send

.PHONY: FORCE all deps check unit e2e bench bench-audio bench-web demo fuzz soak chaos install clean format format-check
all: $(BINS) $(LIBS_OUT)

FORCE:

deps:
	@./tools/install-deps.sh

$(B)/%.o: %.c $(wildcard common/*.h daemon/*.h daemon/*/*.h worker/*.h worker/workflow/*.h worker/audio/*.h client/*.h client/web/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Lua scripts and SQL migrations are compiled into hopperd as C strings, so it never reads them from disk.
$(B)/gen/lua.c: $(sort $(wildcard daemon/lua/*.lua)) tools/embed.sh
	@mkdir -p $(dir $@)
	./tools/embed.sh embedded_lua $(sort $(wildcard daemon/lua/*.lua)) > $@
$(B)/gen/migrations.c: $(sort $(wildcard schema/migrations/*.sql)) tools/embed.sh
	@mkdir -p $(dir $@)
	./tools/embed.sh embedded_migrations $(sort $(wildcard schema/migrations/*.sql)) > $@
$(B)/gen/web_assets.c: $(sort $(wildcard client/web/ui/*)) tools/embed.sh
	@mkdir -p $(dir $@)
	./tools/embed.sh embedded_web $(sort $(wildcard client/web/ui/*)) > $@
$(B)/gen/%.o: $(B)/gen/%.c daemon/embedded.h
	$(CC) $(ALL_CFLAGS) -Idaemon -c -o $@ $<

$(B)/hopperd: $(addprefix $(B)/,$(COMMON_OBJS) $(DAEMON_OBJS))
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/hopper-worker: $(addprefix $(B)/,$(COMMON_OBJS) $(WORKER_OBJS))
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS) $(CURL_LIBS) $(AUDIO_LIBS)
$(B)/hopper-analyze: $(addprefix $(B)/,$(COMMON_OBJS) $(AUDIO_OBJS) worker/analyze_main.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS) $(AUDIO_LIBS)
$(B)/hopperctl: $(addprefix $(B)/,$(COMMON_OBJS) $(CLIENT_OBJS)) $(B)/libhopper.a
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)

$(B)/hopper-web: $(addprefix $(B)/,$(WEB_OBJS)) $(B)/libhopper.a
	$(CC) $(LDSAN) -o $@ $^ $(MHD_LIBS) $(LIB_LIBS) -lpthread

$(B)/libhopper.a: $(addprefix $(B)/,$(LIB_OBJS))
	rm -f $@
	ar rcs $@ $^
$(B)/pic/%.o: %.c $(wildcard common/*.h client/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<
$(B)/libhopper.so.$(LIB_VERSION): $(addprefix $(B)/pic/,$(LIB_OBJS))
	$(CC) $(LDSAN) -shared -Wl,-soname,libhopper.so.$(LIB_SOVERSION) -Wl,--no-undefined -o $@ $^ $(LIB_LIBS)
$(B)/libhopper.so: $(B)/libhopper.so.$(LIB_VERSION)
	ln -sf libhopper.so.$(LIB_VERSION) $(B)/libhopper.so.$(LIB_SOVERSION)
	ln -sf libhopper.so.$(LIB_SOVERSION) $@
# hopper.pc for the installed library under PREFIX: written on every make, so `make install PREFIX=...`
# never installs one made for another prefix.
$(B)/hopper.pc: FORCE
	@mkdir -p $(dir $@)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: hopper' 'Description: client library for the hopper job daemon control socket' \
	  'Version: $(LIB_VERSION)' 'Requires: jansson' 'Requires.private: libsodium' \
	  'Libs: -L$${libdir} -lhopper' 'Libs.private: -lm' 'Cflags: -I$${includedir}' > $@
$(B)/examples/submit_and_wait: client/examples/submit_and_wait.c client/hopper.h $(B)/libhopper.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iclient $(LDSAN) -o $@ $< $(B)/libhopper.a $(LIB_LIBS)
$(B)/examples/celery_send: client/examples/celery_send.c client/hopper.h $(B)/libhopper.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iclient $(LDSAN) -o $@ $< $(B)/libhopper.a $(LIB_LIBS)

# Unit tests link the module under test and what it needs; each runs in its own process.
$(B)/tests/test_web: $(addprefix $(B)/,$(WEB_PURE_OBJS) common/webhook_sig.o tests/unit/test_web.o) $(B)/libhopper.a
	$(CC) $(LDSAN) -o $@ $^ $(LIB_LIBS) -lpthread
# Unit tests of daemon modules include their headers by name, as the daemon does.
$(B)/tests/unit/%.o: ALL_CFLAGS += $(DAEMON_INC)
$(B)/tests/unit/test_web.o: ALL_CFLAGS += -Iclient -Iclient/web
$(B)/tests/test_frame: $(addprefix $(B)/,$(COMMON_OBJS) tests/unit/test_frame.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_job: $(addprefix $(B)/,$(COMMON_OBJS) tests/unit/test_job.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_config: $(addprefix $(B)/,$(COMMON_OBJS) daemon/config.o tests/unit/test_config.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_store: $(addprefix $(B)/,$(COMMON_OBJS) daemon/store/store.o daemon/store/store_log.o gen/migrations.o tests/unit/test_store.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_store_log: $(addprefix $(B)/,$(COMMON_OBJS) daemon/store/store.o daemon/store/store_log.o gen/migrations.o tests/unit/test_store_log.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_celery: $(addprefix $(B)/,$(COMMON_OBJS) tests/unit/test_celery.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_heap: $(addprefix $(B)/,$(COMMON_OBJS) daemon/heap.o tests/unit/test_heap.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_store_wf: $(addprefix $(B)/,$(COMMON_OBJS) daemon/store/store.o daemon/store/store_log.o gen/migrations.o tests/unit/test_store_wf.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_workflow: $(addprefix $(B)/,$(COMMON_OBJS) $(WF_OBJS) tests/unit/test_workflow.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS) $(CURL_LIBS)
$(B)/tests/test_ctl_proto: $(addprefix $(B)/,$(COMMON_OBJS) tests/unit/test_ctl_proto.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_ctl_crypto: $(addprefix $(B)/,$(COMMON_OBJS) tests/unit/test_ctl_crypto.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_job_ns: $(addprefix $(B)/,$(COMMON_OBJS) tests/unit/test_job_ns.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_job_flow: $(addprefix $(B)/,$(COMMON_OBJS) tests/unit/test_job_flow.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_job_limits: $(addprefix $(B)/,$(COMMON_OBJS) tests/unit/test_job_limits.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_sched_time: $(addprefix $(B)/,$(COMMON_OBJS) tests/unit/test_sched_time.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_sched_def: $(addprefix $(B)/,$(COMMON_OBJS) tests/unit/test_sched_def.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/tests/test_sched_tz: $(addprefix $(B)/,$(COMMON_OBJS) tests/unit/test_sched_tz.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
# The control protocol's fuzz harnesses replay their seed directories (crash inputs kept there too).
$(B)/tests/seeds_%: fuzz/fuzz_%.c tests/unit/fuzz_replay.c $(addprefix $(B)/,$(COMMON_OBJS)) $(wildcard fuzz/seeds/fuzz_%/*)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DSEEDS_DIR=\"$(CURDIR)/fuzz/seeds/fuzz_$*\" -o $@ fuzz/fuzz_$*.c tests/unit/fuzz_replay.c \
	  $(addprefix $(B)/,$(COMMON_OBJS)) $(LDSAN) $(LDLIBS)
$(B)/bench/ctl_load: bench/ctl_load.c client/hopper.h $(B)/libhopper.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iclient $(LDSAN) -o $@ $< $(B)/libhopper.a $(LIB_LIBS) -lpthread
$(B)/bench/baseline: $(addprefix $(B)/,bench/baseline.o)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)
$(B)/bench/peers/beanstalk: $(addprefix $(B)/,bench/peers/beanstalk.o)
	$(CC) $(LDSAN) -o $@ $^
# libebur128 (the loudness reference, for the audio tests and bench) and libsndfile's bare decode (bench floor).
AUDIO_TOOLS := $(B)/bench/ebur128_ref $(B)/bench/decode
$(B)/bench/ebur128_ref: $(addprefix $(B)/,bench/ebur128_ref.o)
	$(CC) $(LDSAN) -o $@ $^ -lebur128 $(AUDIO_LIBS) -lm
$(B)/bench/decode: $(addprefix $(B)/,bench/decode.o)
	$(CC) $(LDSAN) -o $@ $^ $(AUDIO_LIBS)

check: deps format-check
	$(MAKE) all $(addprefix $(B)/tests/,$(UNIT_TESTS)) $(AUDIO_TOOLS) $(B)/chaos/clockshim.so
	./tests/run.sh $(B)

bench: deps
	$(MAKE) all $(B)/bench/baseline
	./bench/run.sh $(B)
	./bench/celery.sh $(B)
	./bench/workflow.sh $(B)
	./bench/ctl.sh $(B)
	./bench/ctl_handshake.sh $(B)
	$(MAKE) bench-limits
	$(MAKE) bench-web
	$(MAKE) bench-audio
	$(MAKE) bench-peers

# The peers (beanstalkd, Sidekiq, BullMQ) are an optional group of the install script: make check never needs
# them. A peer that could not be installed is reported as such in the table, so a failed install goes on.
.PHONY: bench-peers
bench-peers: deps
	-./tools/install-deps.sh bench
	$(MAKE) all $(B)/bench/baseline $(B)/bench/peers/beanstalk
	./bench/peers/compare.py $(B)

# The Redis functions' instructions per job, replayed under callgrind (bench/redis_cost.sh; LUA_DIRS= to
# compare Lua folders that take the same arguments).
.PHONY: bench-redis-cost
bench-redis-cost: deps
	-./tools/install-deps.sh bench
	$(MAKE) all $(B)/bench/baseline
	./bench/redis_cost.sh $(B) $(LUA_DIRS)

# The cost per job of a rate-limited and a concurrency-keyed job vs a plain one (bench/limits.sh).
.PHONY: bench-limits
bench-limits: deps
	$(MAKE) all
	./bench/limits.sh $(B)

bench-web: deps
	$(MAKE) all $(B)/bench/ctl_load
	./bench/web.sh $(B)

bench-audio: deps
	$(MAKE) all $(AUDIO_TOOLS)
	./bench/audio.sh $(B)

# make demo AUDIO=FILE also analyses FILE
# The demo builds quietly (V=1 shows the compiler lines).
demo: deps
	@$(MAKE) $(if $(V),,-s --no-print-directory) all
	DEMO_AUDIO="$(AUDIO)" ./tools/demo.sh $(B)

# The chaos checker's clock shim (LD_PRELOAD; tests/chaos/clockshim.c). Not under $(B)/tests/: run.sh runs those.
$(B)/chaos/clockshim.so: tests/chaos/clockshim.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 -fPIC -shared -o $@ $< -ldl -lm

# make chaos: the fault-injecting checker (tests/chaos/chaos.py --help), CHAOS_SEEDS seeds of CHAOS_JOBS jobs
# each with every fault kind; a few minutes. make check runs a bounded one (tests/e2e/chaos.sh). soak = chaos.
CHAOS_SEEDS ?= 1 2 3
CHAOS_JOBS ?= 20000
chaos: deps
	$(MAKE) all $(B)/chaos/clockshim.so
	st=0; for s in $(CHAOS_SEEDS); do \
	  /usr/bin/python3 tests/chaos/chaos.py --build $(B) --seed $$s --jobs $(CHAOS_JOBS) $(CHAOS_FLAGS) || st=1; \
	done; exit $$st
soak: chaos

# fuzz_audio runs the whole audio engine (and libsndfile) on any bytes written to a temp file.
FUZZ_TARGETS := fuzz_frame fuzz_job fuzz_celery fuzz_expr fuzz_workflow fuzz_ctl_frame fuzz_ctl_request fuzz_audio \
	fuzz_webhook_sig
FUZZ_TARGETS += fuzz_sched_time
FUZZ_TARGETS += fuzz_sched_tz
FUZZ_TARGETS += fuzz_sched_def
# The workflow engine without its worker glue (wf_run.c), for fuzz_expr and fuzz_workflow.
FUZZ_WF_SRCS := $(filter-out worker/workflow/wf_run.c,$(wildcard worker/workflow/*.c))
fuzz: deps
	@mkdir -p build-fuzz
	for t in $(FUZZ_TARGETS); do \
	  clang $(CFLAGS_BASE) -O1 -fsanitize=fuzzer,address,undefined -o build-fuzz/$$t fuzz/$$t.c \
	    common/*.c $(FUZZ_WF_SRCS) worker/audio/*.c $(LDLIBS) $(CURL_LIBS) $(AUDIO_LIBS) || exit 1; \
	  mkdir -p build-fuzz/corpus-$$t; \
	  ./build-fuzz/$$t -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus-$$t fuzz/seeds/$$t || exit 1; \
	done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/libexec/hopper $(DESTDIR)$(PREFIX)/share/hopper/schema/migrations \
	  $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)/etc/hopper $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 $(B)/hopperd $(B)/hopperctl $(B)/hopper-analyze $(B)/hopper-web $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/hopper/python
	install -m 644 client/hopper.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(B)/libhopper.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(B)/libhopper.so.$(LIB_VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libhopper.so.$(LIB_VERSION) $(DESTDIR)$(PREFIX)/lib/libhopper.so.$(LIB_SOVERSION)
	ln -sf libhopper.so.$(LIB_SOVERSION) $(DESTDIR)$(PREFIX)/lib/libhopper.so
	install -m 644 $(B)/hopper.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 644 client/hopper.py $(DESTDIR)$(PREFIX)/share/hopper/python/
	install -m 755 $(B)/hopper-worker $(DESTDIR)$(PREFIX)/libexec/hopper/
	install -m 644 schema/*.json schema/*.md $(DESTDIR)$(PREFIX)/share/hopper/schema/
	install -m 644 schema/migrations/*.sql $(DESTDIR)$(PREFIX)/share/hopper/schema/migrations/
	install -m 644 daemon/hopperd.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 644 daemon/hopperd.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 client/hopperctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 daemon/hopperd.conf.example $(DESTDIR)/etc/hopper/hopperd.conf.example
	[ -e $(DESTDIR)/etc/hopper/hopperd.conf ] || install -m 644 daemon/hopperd.conf.example $(DESTDIR)/etc/hopper/hopperd.conf
	sed 's|@PREFIX@|$(PREFIX)|g' systemd/hopperd.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/hopperd.service
	install -m 644 client/web/hopper-web.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 644 client/web/hopper-web.conf.example $(DESTDIR)/etc/hopper/hopper-web.conf.example
	[ -e $(DESTDIR)/etc/hopper/hopper-web.conf ] || install -m 644 client/web/hopper-web.conf.example $(DESTDIR)/etc/hopper/hopper-web.conf
	sed 's|@PREFIX@|$(PREFIX)|g' systemd/hopper-web.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/hopper-web.service

C_SOURCES = common/*.[ch] daemon/*.[ch] daemon/*/*.[ch] worker/*.[ch] worker/workflow/*.[ch] worker/audio/*.[ch] client/*.[ch] \
	client/web/*.[ch] client/examples/*.c tests/unit/*.[ch] tests/chaos/*.c bench/*.c bench/peers/*.c fuzz/*.c
format:
	clang-format -i $(C_SOURCES)
format-check:
	clang-format --dry-run --Werror $(C_SOURCES)

clean:
	rm -rf build build-san build-fuzz
