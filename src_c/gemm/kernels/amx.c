// amx.c - the bfloat16 micro-kernel on AMX tiles: C (32 x 32) in four 16 x 16 float tiles,
// A as two tiles of 16 rows x 32 k steps, B as two tiles of 16 k pairs x 16 columns; each
// TDPBF16PS multiplies a pair of them. Edge tiles go through a buffer.
#include <string.h>

#include "internal/port.h"
#include "gemm/bf16.h"

#if defined(NN_X86_64) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx2,fma")))
enum { MR = 32, NR = 32 };

struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

// Palette 1, tiles 0-7 of 16 rows of 64 bytes. In static memory: GCC 12 does not see that
// LDTILECFG reads its operand and drops stores to a local one.
static const struct tile_config config = {
    1, 0, {0}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

TARGET void nn_bf16_amx_begin(void) { _tile_loadconfig(&config); }

TARGET void nn_bf16_amx_end(void) { _tile_release(); }

// a: [row][k pair], rows kp apart (kp a multiple of NN_AMX_PAIRS); b: [k pair][NR].
TARGET void nn_bf16_ukr_avx512_amx(nn_int kp, const uint32_t *NN_RESTRICT a,
                                   const uint32_t *NN_RESTRICT b, float *NN_RESTRICT c,
                                   nn_int ldc, int m, int n, int accumulate) {
    const int full = m == MR && n == NR;
    float buf[MR * NR];
    float *t = full ? c : buf;
    const nn_int ldt = full ? ldc : NR;
    if (full && accumulate) {  // the products are added to c inside the tiles
        _tile_loadd(0, t, ldt * 4);
        _tile_loadd(1, t + 16, ldt * 4);
        _tile_loadd(2, t + 16 * ldt, ldt * 4);
        _tile_loadd(3, t + 16 * ldt + 16, ldt * 4);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    const nn_int lda = kp * 4;  // bytes between rows of A's panel
    for (nn_int q = 0; q < kp; q += NN_AMX_PAIRS) {
        _tile_loadd(4, a + q, lda);
        _tile_loadd(5, a + 16 * kp + q, lda);
        _tile_loadd(6, b + q * NR, NR * 4);
        _tile_loadd(7, b + q * NR + 16, NR * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, t, ldt * 4);
    _tile_stored(1, t + 16, ldt * 4);
    _tile_stored(2, t + 16 * ldt, ldt * 4);
    _tile_stored(3, t + 16 * ldt + 16, ldt * 4);
    if (full) return;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + buf[i * NR + j] : buf[i * NR + j];
}
#elif defined(NN_X86_64)
// No AMX here (nn_cpu_bf16_supported says so): never called.
void nn_bf16_amx_begin(void) {}
void nn_bf16_amx_end(void) {}
void nn_bf16_ukr_avx512_amx(nn_int kp, const uint32_t *a, const uint32_t *b, float *c,
                            nn_int ldc, int m, int n, int accumulate) {
    (void)kp, (void)a, (void)b, (void)c, (void)ldc, (void)m, (void)n, (void)accumulate;
}
#endif
