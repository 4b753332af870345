/* kiln's CPU runtime, linked into every artifact library: the thread pool behind parallel loops
   (libgomp's GOMP_parallel, so no Python threads are involved) and the few helpers generated code
   calls. */
#include <stdint.h>
#include <unistd.h>

void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);

static int32_t kiln_threads = 0;

void kiln_set_num_threads(int32_t n) { kiln_threads = n > 0 ? n : 0; }

static int32_t threads(void) {
    if (kiln_threads > 0) return kiln_threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    kiln_threads = n > 0 ? (int32_t)n : 1;
    return kiln_threads;
}

typedef void (*kiln_body)(void *ctx, int64_t begin, int64_t end);
struct kiln_job { kiln_body fn; void *ctx; int64_t n; int64_t chunk; int64_t next; };

/* Each thread takes chunks of about 1/(4 * threads) of the range from a shared counter until none is
   left: a thread slowed down (another process on its core, a tile with more work) does not hold the
   others back, as a static split would. */
static void kiln_worker(void *p) {
    struct kiln_job *j = (struct kiln_job *)p;
    for (;;) {
        int64_t begin = __atomic_fetch_add(&j->next, j->chunk, __ATOMIC_RELAXED);
        if (begin >= j->n) break;
        int64_t end = begin + j->chunk < j->n ? begin + j->chunk : j->n;
        j->fn(j->ctx, begin, end);
    }
}

void kiln_parallel_for(kiln_body fn, void *ctx, int64_t n) {
    int32_t nt = threads();
    if (nt > n) nt = (int32_t)n;
    if (nt <= 1) { if (n > 0) fn(ctx, 0, n); return; }
    int64_t chunk = n / ((int64_t)nt * 4);
    if (chunk < 1) chunk = 1;
    struct kiln_job j = {fn, ctx, n, chunk, 0};
    GOMP_parallel(kiln_worker, &j, (unsigned)nt, 0);
}

int64_t kiln_ipows(int64_t a, int64_t b) {
    if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);
    uint64_t r = 1, x = (uint64_t)a;
    while (b) { if (b & 1) r *= x; x *= x; b >>= 1; }
    return (int64_t)r;
}

int64_t kiln_ipowu(int64_t a, int64_t b) {
    uint64_t r = 1, x = (uint64_t)a, e = (uint64_t)b;
    while (e) { if (e & 1) r *= x; x *= x; e >>= 1; }
    return (int64_t)r;
}

/* Per-kernel profile: kiln_run marks the end of every kernel call; when enabled, the marks record
   CLOCK_MONOTONIC nanoseconds (kiln.compiler.profile reads them). Disabled, a mark is one branch. */
#include <time.h>
#define KILN_PROF_MAX 65536
static int32_t kiln_prof_on = 0;
static int64_t kiln_prof_ns[KILN_PROF_MAX];

void kiln_prof_enable(int32_t on) { kiln_prof_on = on; }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void kiln_prof_mark(int32_t i) {
    if (!kiln_prof_on || i < 0 || i >= KILN_PROF_MAX) return;
    kiln_prof_ns[i] = now_ns();
}

int32_t kiln_prof_read(int64_t *out, int32_t n) {
    for (int32_t i = 0; i < n && i < KILN_PROF_MAX; i++) out[i] = kiln_prof_ns[i];
    return n < KILN_PROF_MAX ? n : KILN_PROF_MAX;
}
