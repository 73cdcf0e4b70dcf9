// runtime.c - threads and memory: the default thread count, per-thread workspaces.
// posix_memalign is POSIX, not ISO C: ask for it (a strict -std=c11 build hides it otherwise).
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200112L
#endif
#include "internal/port.h"
#include "internal/threads.h"
#include "internal/memory.h"

static int default_threads = 0;  // 0: OpenMP's own default (OMP_NUM_THREADS, threadpoolctl)

int nn_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

void nn_set_num_threads(int n) { default_threads = n > 0 ? n : 0; }

int nn_get_num_threads(void) {
    if (default_threads > 0) return default_threads;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

unsigned nn_fp_flush_begin(void) {
    unsigned mode = nn_fp_get();
    nn_fp_set(mode | NN_FP_FLUSH);
    return mode;
}

void nn_fp_restore(unsigned mode) { nn_fp_set(mode); }

int nn_threads_for(int n_threads, nn_int work, nn_int grain) {
#ifdef _OPENMP
    nn_int t = n_threads > 0 ? n_threads : nn_get_num_threads();
    nn_int useful = grain > 0 ? work / grain : t;
    if (useful < t) t = useful;
    return t < 1 ? 1 : (int)t;
#else
    (void)n_threads, (void)work, (void)grain;
    return 1;
#endif
}

void *nn_aligned_alloc(size_t bytes) {
    if (bytes == 0) bytes = NN_ALIGNMENT;
    bytes = (bytes + NN_ALIGNMENT - 1) / NN_ALIGNMENT * NN_ALIGNMENT;
#if defined(_MSC_VER)
    return _aligned_malloc(bytes, NN_ALIGNMENT);
#else
    void *p = NULL;
    return posix_memalign(&p, NN_ALIGNMENT, bytes) == 0 ? p : NULL;
#endif
}

void nn_aligned_free(void *p) {
#if defined(_MSC_VER)
    _aligned_free(p);
#else
    free(p);
#endif
}

// Each thread keeps its scratch buffers for its lifetime (OpenMP pool threads live as long
// as the process), so steady-state calls never allocate.
static NN_THREAD_LOCAL void *ws_ptr[NN_WS_SLOTS];
static NN_THREAD_LOCAL size_t ws_size[NN_WS_SLOTS];

#if defined(_WIN32)
static void ws_register_thread(void) {}
#else
#include <pthread.h>
// Threads that exit (Python threads calling predict, say) would leak their buffers: a
// pthread key with a destructor frees them. TLS is still valid while key destructors run.
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;

static void ws_free_thread(void *unused) {
    (void)unused;
    for (int s = 0; s < NN_WS_SLOTS; s++) {
        nn_aligned_free(ws_ptr[s]);
        ws_ptr[s] = NULL;
        ws_size[s] = 0;
    }
}

static void ws_make_key(void) { pthread_key_create(&ws_key, ws_free_thread); }

static void ws_register_thread(void) {
    pthread_once(&ws_once, ws_make_key);
    if (pthread_getspecific(ws_key) == NULL) pthread_setspecific(ws_key, (void *)1);
}
#endif

void *nn_workspace(enum nn_ws_slot slot, size_t bytes) {
    if (bytes <= ws_size[slot]) return ws_ptr[slot];
    ws_register_thread();
    nn_aligned_free(ws_ptr[slot]);
    size_t grown = bytes + bytes / 4;
    ws_ptr[slot] = nn_aligned_alloc(grown);
    ws_size[slot] = ws_ptr[slot] ? grown : 0;
    return ws_ptr[slot];
}
