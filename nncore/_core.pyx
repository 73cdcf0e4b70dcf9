"""nncore._core: thin wrappers over the C API (src_c/nncore.h).

Each wrapper checks its arguments (type, dtype, shape, contiguity, writability, emptiness,
overlap) with an error that names the argument, then releases the GIL around one C call.
Arrays must be C-contiguous float32 or float64, all of one dtype; outputs are allocated when
not given. ``n_threads=None`` uses the library default (``nncore.get_num_threads()``).
"""
cimport numpy as cnp
import math

import numpy as np
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint64_t

cnp.import_array()

ACTIVATIONS = {
    "identity": NN_ACT_IDENTITY, "linear": NN_ACT_IDENTITY, None: NN_ACT_IDENTITY,
    "relu": NN_ACT_RELU, "leaky_relu": NN_ACT_LEAKY_RELU, "sigmoid": NN_ACT_SIGMOID,
    "tanh": NN_ACT_TANH, "gelu": NN_ACT_GELU, "softmax": NN_ACT_SOFTMAX,
    "silu": NN_ACT_SILU, "gelu_tanh": NN_ACT_GELU_TANH, "exp": NN_ACT_EXP,
}
REDUCTIONS = {"mean": NN_REDUCE_MEAN, "sum": NN_REDUCE_SUM}
CPU_PATHS = ("generic", "avx2", "avx512")

cdef int F32 = cnp.NPY_FLOAT32
cdef int F64 = cnp.NPY_FLOAT64
# Below this many multiply-adds a call keeps the GIL: releasing and taking it back costs about
# 0.1 us, a third of a one-sample predict of a 64-128-10 network (a few us of work at most).
cdef nn_int NOGIL_MIN_WORK = 1 << 15
cdef enum:
    NOT_FINITE = -1000  # a status of Plan._predict, apart from the C API's


# ---- argument checks ----------------------------------------------------------------------

cdef int _float_type(object a, str name) except -1:
    """The dtype code of a main input, which must be a float32 or float64 ndarray."""
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32 or float64, "
                        f"got {type(a).__name__}")
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if t != F32 and t != F64:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}; "
                        f"convert it with {name}.astype(numpy.float32)")
    _native(<cnp.ndarray>a, name)
    return t


cdef inline int _native(cnp.ndarray a, str name) except -1:
    """The type number says nothing of the byte order: a big-endian float32 array has
    NPY_FLOAT too, and the kernels would read its bytes as garbage."""
    if not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{name} has dtype {a.dtype.str!r}, not in this machine's byte order; "
                        f"convert it with {name}.astype({name}.dtype.newbyteorder('='))")
    return 0


cdef cnp.ndarray _arr(object a, str name, int ndim, int typenum, bint writable=False):
    """a as a C-contiguous, non-empty ndarray of the given ndim and dtype, or a clear error."""
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        want = {F32: "float32", F64: "float64", cnp.NPY_UINT8: "uint8"}.get(typenum, "int64")
        raise TypeError(f"{name} must have dtype {want} like the other arrays, "
                        f"got {arr.dtype}")
    _native(arr, name)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {_sh(arr)}")
    if cnp.PyArray_SIZE(arr) == 0:
        raise ValueError(f"{name} is empty (shape {_sh(arr)}); nncore needs at least one "
                         f"element along every axis")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name} must be C-contiguous; pass numpy.ascontiguousarray({name})")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} is read-only; nncore writes into it")
    return arr


cdef inline tuple _sh(cnp.ndarray a):
    return (<object>a).shape


cdef _shape(cnp.ndarray a, str name, tuple expected, str why=""):
    if _sh(a) != expected:
        raise ValueError(f"{name} must have shape {expected}{why}, got {_sh(a)}")


cdef bint _overlap(cnp.ndarray a, cnp.ndarray b):
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    return pa < pb + cnp.PyArray_NBYTES(b) and pb < pa + cnp.PyArray_NBYTES(a)


cdef cnp.ndarray _output(object out, str name, tuple shape, int typenum, inputs=()):
    """A new array of the given shape, or `out` checked: shape, dtype, writable, no overlap."""
    cdef cnp.npy_intp dims[8]
    cdef Py_ssize_t i, nd = len(shape)
    if out is None:
        if nd > 8:  # element-wise kernels take any number of dimensions (NumPy: up to 64)
            return np.empty(shape, dtype=np.float32 if typenum == F32 else np.float64)
        for i in range(nd):
            dims[i] = shape[i]
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    cdef cnp.ndarray o = _arr(out, name, len(shape), typenum, True)
    _shape(o, name, shape)
    for other_name, other in inputs:
        if other is not None and _overlap(o, <cnp.ndarray>other):
            raise ValueError(f"{name} overlaps {other_name} in memory; pass a separate array")
    return o


cdef int _act(object activation) except -1:
    if isinstance(activation, int) and 0 <= activation < NN_ACT_N:
        return activation
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {activation!r}; expected one of "
                         f"{sorted(k for k in ACTIVATIONS if k)}") from None


cdef int _threads(object n_threads) except -1:
    if n_threads is None:
        return 0
    if not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    return n_threads


cdef _status(int s, str what):
    if s == NN_OK:
        return
    if s == NN_ERR_NOMEM:
        raise MemoryError(f"{what}: could not allocate its workspace")
    if s == NN_ERR_LABEL:
        raise ValueError(f"{what}: a label is outside [0, n_classes)")
    raise ValueError(f"{what}: invalid argument (status {s})")


# ---- CPU paths and threads ----------------------------------------------------------------

def init_cpu():
    """Select the CPU path: the best one, or the one NNCORE_CPU names (a clear error if the
    name is unknown or this CPU lacks it)."""
    cdef int s = nn_cpu_init()
    import os
    env = os.environ.get("NNCORE_CPU", "")
    if s == NN_ERR_ARG:
        raise RuntimeError(f"NNCORE_CPU={env!r} is not a CPU path; use one of {CPU_PATHS}")
    if s == NN_ERR_CPU:
        raise RuntimeError(f"NNCORE_CPU={env!r} asks for a CPU path this machine cannot run; "
                           f"available: {available_cpu_paths()}")


def available_cpu_paths():
    """The CPU paths this build and this CPU can run, slowest first."""
    return [CPU_PATHS[p] for p in range(NN_CPU_N_PATHS) if nn_cpu_supported(p)]


def compiled_cpu_paths():
    """The CPU paths this build has kernels for."""
    return [CPU_PATHS[p] for p in range(NN_CPU_N_PATHS) if nn_cpu_compiled(p)]


def best_cpu_path():
    return CPU_PATHS[nn_cpu_best()]


def get_cpu_path():
    """The name of the CPU path in use: 'generic', 'avx2' or 'avx512'."""
    return CPU_PATHS[nn_cpu_get_path()]


def set_cpu_path(name):
    """Use the named CPU path for every later call ('generic', 'avx2', 'avx512')."""
    if name not in CPU_PATHS:
        raise ValueError(f"unknown CPU path {name!r}; expected one of {CPU_PATHS}")
    if nn_cpu_set_path(CPU_PATHS.index(name)) != NN_OK:
        raise RuntimeError(f"CPU path {name!r} is not available on this machine; "
                           f"available: {available_cpu_paths()}")


def openmp_enabled():
    return bool(nn_openmp_enabled())


def set_num_threads(n):
    """Default thread count for every kernel; None or 0 restores OpenMP's default."""
    if n is None or n == 0:
        nn_set_num_threads(0)
        return
    nn_set_num_threads(_threads(n))


def get_num_threads():
    return nn_get_num_threads()


cdef class flush_subnormals:
    """``with flush_subnormals(): ...`` runs the block with subnormal numbers flushed to zero on
    this thread (x86-64 FTZ/DAZ; nothing elsewhere), as the compiled plan runs fit, evaluate
    and predict; the previous mode is restored on exit. The kernel-by-kernel loops use it to
    compute the plan's bits."""
    cdef unsigned saved
    cdef bint active

    def __enter__(self):
        if self.active:
            raise RuntimeError("flush_subnormals is not reentrant; make a new one")
        self.saved = nn_fp_flush_begin()
        self.active = True
        return self

    def __exit__(self, *exc):
        if self.active:
            nn_fp_restore(self.saved)
            self.active = False
        return False


# ---- GEMM ---------------------------------------------------------------------------------

# A cdef function, and the output checked without tuples: a product at batch 1 is a fraction
# of a microsecond, so the wrapper's own cost is most of the call (1x128x10: 0.61 -> 0.4 us).
cdef enum:
    GEMM_PACKED, GEMM_NAIVE, GEMM_BF16


cdef object _gemm(object a, object b, object out, bint trans_a, bint trans_b, bint accumulate,
                  object n_threads, int naive):
    cdef int t = _float_type(a, "a")
    cdef cnp.ndarray A = _arr(a, "a", 2, t)
    cdef cnp.ndarray B = _arr(b, "b", 2, t)
    cdef nn_int m = A.shape[1] if trans_a else A.shape[0]
    cdef nn_int k = A.shape[0] if trans_a else A.shape[1]
    cdef nn_int kb = B.shape[1] if trans_b else B.shape[0]
    cdef nn_int n = B.shape[0] if trans_b else B.shape[1]
    if k != kb:
        raise ValueError(f"inner dimensions differ: op(a) is ({m}, {k}) but op(b) is "
                         f"({kb}, {n})")
    if accumulate and out is None:
        raise ValueError("accumulate=True adds into out; pass out")
    cdef cnp.ndarray C
    cdef cnp.npy_intp dims[2]
    if out is None:
        dims[0], dims[1] = m, n
        C = cnp.PyArray_EMPTY(2, dims, t, 0)
    else:
        C = _arr(out, "out", 2, t, True)
        if C.shape[0] != m or C.shape[1] != n:
            _shape(C, "out", (m, n))
        if _overlap(C, A) or _overlap(C, B):
            raise ValueError(f"out overlaps {'a' if _overlap(C, A) else 'b'} in memory; pass "
                             f"a separate array")
    cdef int nt = _threads(n_threads), s = NN_OK
    cdef void *pc = cnp.PyArray_DATA(C)
    cdef void *pa = cnp.PyArray_DATA(A)
    cdef void *pb = cnp.PyArray_DATA(B)
    cdef nn_int lda = A.shape[1], ldb = B.shape[1]
    if m * n * k < NOGIL_MIN_WORK:  # over before the GIL would change hands
        s = _gemm_call(t, naive, pc, pa, pb, m, n, k, lda, ldb, trans_a, trans_b, accumulate,
                       nt)
    else:
        with nogil:
            s = _gemm_call(t, naive, pc, pa, pb, m, n, k, lda, ldb, trans_a, trans_b,
                           accumulate, nt)
    _status(s, "gemm")
    return C


cdef int _gemm_call(int t, int naive, void *pc, void *pa, void *pb, nn_int m, nn_int n,
                    nn_int k, nn_int lda, nn_int ldb, bint trans_a, bint trans_b,
                    bint accumulate, int nt) noexcept nogil:
    if naive == GEMM_BF16:
        return nn_gemm_bf16(<float *>pc, <float *>pa, <float *>pb, m, n, k, lda, ldb, n,
                            trans_a, trans_b, accumulate, nt)
    if naive and t == F32:
        nn_gemm_naive_f32(<float *>pc, <float *>pa, <float *>pb, m, n, k, lda, ldb, n, trans_a,
                          trans_b, accumulate)
    elif naive:
        nn_gemm_naive_f64(<double *>pc, <double *>pa, <double *>pb, m, n, k, lda, ldb, n,
                          trans_a, trans_b, accumulate)
    elif t == F32:
        return nn_gemm_f32(<float *>pc, <float *>pa, <float *>pb, m, n, k, lda, ldb, n, trans_a,
                           trans_b, accumulate, nt)
    else:
        return nn_gemm_f64(<double *>pc, <double *>pa, <double *>pb, m, n, k, lda, ldb, n,
                           trans_a, trans_b, accumulate, nt)
    return NN_OK


def gemm(a, b, out=None, *, trans_a=False, trans_b=False, accumulate=False, n_threads=None):
    """out (m, n) = op(a) @ op(b) [+ out], op(x) = x.T when trans_x. Returns out."""
    return _gemm(a, b, out, trans_a, trans_b, accumulate, n_threads, False)


def gemm_naive(a, b, out=None, *, trans_a=False, trans_b=False, accumulate=False):
    """The triple-loop GEMM (the ground truth), same arguments as gemm."""
    return _gemm(a, b, out, trans_a, trans_b, accumulate, 1, GEMM_NAIVE)


def gemm_bf16(a, b, out=None, *, trans_a=False, trans_b=False, accumulate=False,
              n_threads=None):
    """out (m, n) = bf16(op(a)) @ bf16(op(b)) [+ out], float32 arrays: the operands rounded
    to bfloat16 (nearest, ties to even), the products summed in float32 (pairs of k steps as
    VDPBF16PS sums them). Returns out."""
    if _float_type(a, "a") != F32:
        raise TypeError(f"gemm_bf16 takes float32 operands, got a of dtype {a.dtype}")
    return _gemm(a, b, out, trans_a, trans_b, accumulate, n_threads, GEMM_BF16)


def bf16_round(x):
    """x (float32) rounded to bfloat16, nearest with ties to even: the uint16 bit patterns
    (the high halves of the rounded float32 values)."""
    X = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(X.shape, np.uint16)
    cdef const float[::1] xf = X.reshape(-1)
    cdef uint16_t[::1] of = out.reshape(-1)
    cdef Py_ssize_t i
    for i in range(xf.shape[0]):
        of[i] = nn_bf16_round(xf[i])
    return out


BF16_KERNELS = ("emulated", "avx512_bf16", "amx")


def bf16_kernel():
    """The bfloat16 products' kernel in use: "amx" (AMX tiles), "avx512_bf16" (VDPBF16PS)
    or "emulated" (float32 multiply-adds of the rounded operands, on every CPU)."""
    return BF16_KERNELS[nn_cpu_bf16_kernel()]


def available_bf16_kernels():
    """The bfloat16 kernels this CPU (and OS) runs, "emulated" first."""
    return [name for i, name in enumerate(BF16_KERNELS) if nn_cpu_bf16_supported(i)]


def set_bf16_kernel(name):
    """Choose the bfloat16 products' kernel, one of available_bf16_kernels(); "amx" and
    "avx512_bf16" take effect on the avx512 path (the others emulate)."""
    if name not in BF16_KERNELS:
        raise ValueError(f"bf16 kernel must be one of {BF16_KERNELS}, got {name!r}")
    if nn_cpu_set_bf16_kernel(BF16_KERNELS.index(name)) != NN_OK:
        raise RuntimeError(f"this CPU (or OS) cannot run the {name} bfloat16 kernel; "
                           f"available: {available_bf16_kernels()}")


# ---- activations --------------------------------------------------------------------------

def activation_forward(x, activation, double alpha=0.01, out=None, n_threads=None):
    """y = act(x) element-wise (softmax: along the last axis). out may be x itself."""
    cdef int t = _float_type(x, "x")
    cdef int act = _act(activation)
    if x.ndim < 1:
        raise ValueError(f"x must have at least 1 dimension, got shape {x.shape}")
    cdef cnp.ndarray X = _arr(x, "x", x.ndim, t)
    cdef cnp.ndarray Y = _output(out, "out", _sh(X), t) if out is not x else X
    if not cnp.PyArray_ISWRITEABLE(Y):
        raise ValueError("out is read-only; nncore writes into it")
    cdef nn_int cols = X.shape[X.ndim - 1], rows = cnp.PyArray_SIZE(X) // cols
    cdef int nt = _threads(n_threads)
    cdef void *py = cnp.PyArray_DATA(Y)
    cdef void *px = cnp.PyArray_DATA(X)
    with nogil:
        if t == F32:
            nn_activation_forward_f32(<float *>py, <float *>px, rows, cols, act, <float>alpha,
                                      nt)
        else:
            nn_activation_forward_f64(<double *>py, <double *>px, rows, cols, act, alpha, nt)
    return Y


def activation_backward(dy, y, z=None, activation="identity", double alpha=0.01, out=None,
                        n_threads=None):
    """dz = dy * act'(z), from the forward output y (and z, the input, where needed:
    gelu, leaky_relu with alpha < 0). out may be dy itself."""
    cdef int t = _float_type(dy, "dy")
    cdef int act = _act(activation)
    if dy.ndim < 1:
        raise ValueError(f"dy must have at least 1 dimension, got shape {dy.shape}")
    cdef cnp.ndarray DY = _arr(dy, "dy", dy.ndim, t)
    cdef cnp.ndarray Y = _arr(y, "y", dy.ndim, t)
    _shape(Y, "y", _sh(DY), " (the shape of dy)")
    cdef cnp.ndarray Z = None
    if nn_activation_needs_z(act, alpha):
        if z is None:
            raise ValueError(f"activation {activation!r} needs z, the forward's input")
    if z is not None:
        Z = _arr(z, "z", dy.ndim, t)
        _shape(Z, "z", _sh(DY), " (the shape of dy)")
    cdef cnp.ndarray DZ = DY if out is dy else _output(out, "out", _sh(DY), t, (("y", Y), ("z", Z)))
    if not cnp.PyArray_ISWRITEABLE(DZ):
        raise ValueError("out is read-only; nncore writes into it")
    cdef nn_int cols = DY.shape[DY.ndim - 1], rows = cnp.PyArray_SIZE(DY) // cols
    cdef int nt = _threads(n_threads)
    cdef void *pdz = cnp.PyArray_DATA(DZ)
    cdef void *pdy = cnp.PyArray_DATA(DY)
    cdef void *py = cnp.PyArray_DATA(Y)
    cdef void *pz = cnp.PyArray_DATA(Z) if Z is not None else NULL
    with nogil:
        if t == F32:
            nn_activation_backward_f32(<float *>pdz, <float *>pdy, <float *>py, <float *>pz,
                                       rows, cols, act, <float>alpha, nt)
        else:
            nn_activation_backward_f64(<double *>pdz, <double *>pdy, <double *>py,
                                       <double *>pz, rows, cols, act, alpha, nt)
    return DZ


def activation_needs_z(activation, double alpha=0.01):
    """True if the backward pass of this activation needs the pre-activation z."""
    return bool(nn_activation_needs_z(_act(activation), alpha))


# ---- dense layer --------------------------------------------------------------------------

def dense_forward(x, w, b=None, activation="identity", double alpha=0.01, *, out=None, z=None,
                  n_threads=None, bint bf16=False):
    """y (n, out) = act(x (n, in) @ w (in, out) + b (out)), bias and activation fused into the
    GEMM write-back. z, if given (n, out), receives the pre-activation. bf16 (float32 only):
    the product in bfloat16 (gemm_bf16). Returns y."""
    cdef int t = _float_type(x, "x")
    if bf16 and t != F32:
        raise TypeError(f"bfloat16 products take float32 arrays, got x of dtype {x.dtype}")
    cdef int act = _act(activation)
    cdef cnp.ndarray X = _arr(x, "x", 2, t)
    cdef cnp.ndarray W = _arr(w, "w", 2, t)
    cdef nn_int n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    if W.shape[0] != n_in:
        raise ValueError(f"w must have shape ({n_in}, out) to match x {_sh(X)}, got {_sh(W)}")
    cdef cnp.ndarray B = None
    if b is not None:
        B = _arr(b, "b", 1, t)
        _shape(B, "b", (n_out,), " (w's columns)")
    ins = (("x", X), ("w", W), ("b", B))
    cdef cnp.ndarray Y = _output(out, "out", (n, n_out), t, ins)
    cdef cnp.ndarray Z = None
    if z is not None:
        Z = _output(z, "z", (n, n_out), t, ins + (("out", Y),))
    cdef int nt = _threads(n_threads), s = NN_OK
    cdef void *py = cnp.PyArray_DATA(Y)
    cdef void *pz = cnp.PyArray_DATA(Z) if Z is not None else NULL
    cdef void *px = cnp.PyArray_DATA(X)
    cdef void *pw = cnp.PyArray_DATA(W)
    cdef void *pb = cnp.PyArray_DATA(B) if B is not None else NULL
    with nogil:
        if bf16:
            s = nn_dense_forward_bf16(<float *>py, <float *>pz, <float *>px, <float *>pw,
                                      <float *>pb, n, n_in, n_out, act, <float>alpha, nt)
        elif t == F32:
            s = nn_dense_forward_f32(<float *>py, <float *>pz, <float *>px, <float *>pw,
                                     <float *>pb, n, n_in, n_out, act, <float>alpha, nt)
        else:
            s = nn_dense_forward_f64(<double *>py, <double *>pz, <double *>px, <double *>pw,
                                     <double *>pb, n, n_in, n_out, act, alpha, nt)
    _status(s, "dense_forward")
    return Y


def dense_backward(dy, x, w, y, z=None, activation="identity", double alpha=0.01, *, dx=None,
                   dw=None, db=None, dz=None, bint need_dx=True, bint need_db=True,
                   bint accumulate=False, n_threads=None, bint bf16=False):
    """Backward of dense_forward. From dy (n, out), x (n, in), w (in, out), y (n, out) and,
    where the activation needs it, z: dz = dy * act', dw = x.T @ dz, db = dz.sum(0),
    dx = dz @ w.T. dw and db are added to when accumulate. dz may be dy itself (in place).
    Returns (dx or None, dw, db or None)."""
    cdef int t = _float_type(dy, "dy")
    cdef int act = _act(activation)
    cdef cnp.ndarray DY = _arr(dy, "dy", 2, t)
    cdef cnp.ndarray X = _arr(x, "x", 2, t)
    cdef cnp.ndarray W = _arr(w, "w", 2, t)
    cdef cnp.ndarray Y = _arr(y, "y", 2, t)
    cdef nn_int n = X.shape[0], n_in = X.shape[1], n_out = W.shape[1]
    if W.shape[0] != n_in:
        raise ValueError(f"w must have shape ({n_in}, out) to match x {_sh(X)}, got {_sh(W)}")
    _shape(DY, "dy", (n, n_out), " (x's rows, w's columns)")
    _shape(Y, "y", (n, n_out), " (the shape of dy)")
    cdef cnp.ndarray Z = None
    if nn_activation_needs_z(act, alpha) and z is None:
        raise ValueError(f"activation {activation!r} needs z, the forward's pre-activation")
    if z is not None:
        Z = _arr(z, "z", 2, t)
        _shape(Z, "z", (n, n_out), " (the shape of dy)")
    if accumulate and (dw is None or (need_db and db is None)):
        raise ValueError("accumulate=True adds into dw and db; pass them")
    ins = (("x", X), ("w", W), ("y", Y), ("z", Z))
    cdef cnp.ndarray DZ = DY if dz is dy else _output(dz, "dz", (n, n_out), t, ins)
    if not cnp.PyArray_ISWRITEABLE(DZ):
        raise ValueError("dz is read-only; nncore writes into it")
    ins = ins + (("dz", DZ),)
    cdef cnp.ndarray DW = _output(dw, "dw", (n_in, n_out), t, ins)
    cdef cnp.ndarray DB = _output(db, "db", (n_out,), t, ins + (("dw", DW),)) if need_db else None
    cdef cnp.ndarray DX = _output(dx, "dx", (n, n_in), t, ins + (("dw", DW), ("db", DB))) \
        if need_dx else None
    cdef int nt = _threads(n_threads), s = NN_OK
    cdef void *pdx = cnp.PyArray_DATA(DX) if DX is not None else NULL
    cdef void *pdw = cnp.PyArray_DATA(DW)
    cdef void *pdb = cnp.PyArray_DATA(DB) if DB is not None else NULL
    cdef void *pdz = cnp.PyArray_DATA(DZ)
    cdef void *pdy = cnp.PyArray_DATA(DY)
    cdef void *px = cnp.PyArray_DATA(X)
    cdef void *pw = cnp.PyArray_DATA(W)
    cdef void *py = cnp.PyArray_DATA(Y)
    cdef void *pz = cnp.PyArray_DATA(Z) if Z is not None else NULL
    if bf16 and t != F32:
        raise TypeError(f"bfloat16 products take float32 arrays, got dy of dtype {dy.dtype}")
    with nogil:
        if bf16:
            s = nn_dense_backward_bf16(<float *>pdx, <float *>pdw, <float *>pdb, <float *>pdz,
                                       <float *>pdy, <float *>px, <float *>pw, <float *>py,
                                       <float *>pz, n, n_in, n_out, act, <float>alpha,
                                       accumulate, nt)
        elif t == F32:
            s = nn_dense_backward_f32(<float *>pdx, <float *>pdw, <float *>pdb, <float *>pdz,
                                      <float *>pdy, <float *>px, <float *>pw, <float *>py,
                                      <float *>pz, n, n_in, n_out, act, <float>alpha,
                                      accumulate, nt)
        else:
            s = nn_dense_backward_f64(<double *>pdx, <double *>pdw, <double *>pdb,
                                      <double *>pdz, <double *>pdy, <double *>px,
                                      <double *>pw, <double *>py, <double *>pz, n, n_in, n_out,
                                      act, alpha, accumulate, nt)
    _status(s, "dense_backward")
    return DX, DW, DB


# ---- losses, optimizers, random numbers, dropout ------------------------------------------

cdef int _reduction(object reduction) except -1:
    try:
        return REDUCTIONS[reduction]
    except (KeyError, TypeError):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}") from None


cdef cnp.ndarray _weights(object weight, nn_int n, int t):
    if weight is None:
        return None
    cdef cnp.ndarray W = _arr(weight, "weight", 1, t)
    _shape(W, "weight", (n,), " (one weight per row)")
    if not np.all(np.isfinite(W)) or np.any(W < 0):
        raise ValueError("weight must be finite and >= 0")
    return W


cdef cnp.ndarray _vec(object a, str name, nn_int d, int t):
    """An optional 1-D array of d values (None passes)."""
    if a is None:
        return None
    cdef cnp.ndarray v = _arr(a, name, 1, t)
    _shape(v, name, (d,), " (one value per feature)")
    return v


cdef void *_ptr(cnp.ndarray a):
    return cnp.PyArray_DATA(a) if a is not None else NULL


def norm_forward(str kind, x, gamma=None, beta=None, *, running_mean=None, running_var=None,
                 double eps=1e-5, double momentum=0.1, bint training=True, out=None,
                 mean=None, invstd=None, n_threads=None):
    """Batch (kind "batch") or layer (kind "layer") normalisation of x (n, d):
    y = gamma (x - mean) invstd + beta. Training saves the statistics in mean and invstd
    ((d,) for batch norm, (n,) for layer norm; new arrays when not given) and batch norm
    updates running_mean and running_var in place; batch norm's inference normalises with
    them. Returns (y, mean, invstd) (mean and invstd None in inference)."""
    cdef int t = _float_type(x, "x")
    cdef cnp.ndarray X = _arr(x, "x", 2, t)
    cdef nn_int n = X.shape[0], d = X.shape[1]
    if kind not in ("batch", "layer"):
        raise ValueError(f"kind must be 'batch' or 'layer', got {kind!r}")
    cdef bint bn = kind == "batch"
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    if bn and not 0 <= momentum <= 1:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum!r}")
    if bn and training and n < 2:
        raise ValueError(f"batch norm in training needs at least 2 rows to estimate a "
                         f"variance, got {n}")
    cdef cnp.ndarray G = _vec(gamma, "gamma", d, t)
    cdef cnp.ndarray B = _vec(beta, "beta", d, t)
    cdef cnp.ndarray RM = None
    cdef cnp.ndarray RV = None
    if bn:
        if (running_mean is None) != (running_var is None):
            raise ValueError("running_mean and running_var go together")
        if running_mean is None and not training:
            raise ValueError("batch norm's inference needs running_mean and running_var")
        if running_mean is not None:
            RM = _arr(running_mean, "running_mean", 1, t, True)
            RV = _arr(running_var, "running_var", 1, t, True)
            _shape(RM, "running_mean", (d,), " (one value per feature)")
            _shape(RV, "running_var", (d,), " (one value per feature)")
    ins = (("x", X), ("gamma", G), ("beta", B), ("running_mean", RM), ("running_var", RV))
    cdef cnp.ndarray Y = _output(out, "out", (n, d), t, ins[1:])
    cdef cnp.ndarray M = None
    cdef cnp.ndarray S = None
    cdef nn_int ns = d if bn else n
    if training:
        M = _output(mean, "mean", (ns,), t, ins + (("out", Y),))
        S = _output(invstd, "invstd", (ns,), t, ins + (("out", Y), ("mean", M)))
    cdef int nt = _threads(n_threads), s = NN_OK
    cdef void *py = _ptr(Y)
    cdef void *pm = _ptr(M)
    cdef void *ps = _ptr(S)
    cdef void *prm = _ptr(RM)
    cdef void *prv = _ptr(RV)
    cdef void *px = _ptr(X)
    cdef void *pg = _ptr(G)
    cdef void *pb = _ptr(B)
    with nogil:
        if bn and t == F32:
            s = nn_batchnorm_forward_f32(<float *>py, <float *>pm, <float *>ps, <float *>prm,
                                         <float *>prv, <float *>px, <float *>pg, <float *>pb,
                                         n, d, eps, momentum, training, nt)
        elif bn:
            s = nn_batchnorm_forward_f64(<double *>py, <double *>pm, <double *>ps,
                                         <double *>prm, <double *>prv, <double *>px,
                                         <double *>pg, <double *>pb, n, d, eps, momentum,
                                         training, nt)
        elif t == F32:
            s = nn_layernorm_forward_f32(<float *>py, <float *>pm, <float *>ps, <float *>px,
                                         <float *>pg, <float *>pb, n, d, eps, nt)
        else:
            s = nn_layernorm_forward_f64(<double *>py, <double *>pm, <double *>ps,
                                         <double *>px, <double *>pg, <double *>pb, n, d, eps,
                                         nt)
    _status(s, f"{kind} norm forward")
    return Y, M, S


def norm_backward(str kind, dy, x, mean, invstd, gamma=None, *, dx=None, dgamma=None,
                  dbeta=None, bint need_dx=True, bint need_params=True,
                  bint accumulate=False, n_threads=None):
    """Backward of norm_forward in training, from dy (n, d), x and the saved mean, invstd:
    dgamma = sum_rows dy xhat, dbeta = sum_rows dy (added to when accumulate; skipped
    without need_params) and dx. dx may be dy itself. Returns (dx or None, dgamma, dbeta)."""
    cdef int t = _float_type(dy, "dy")
    cdef cnp.ndarray DY = _arr(dy, "dy", 2, t)
    cdef nn_int n = DY.shape[0], d = DY.shape[1]
    if kind not in ("batch", "layer"):
        raise ValueError(f"kind must be 'batch' or 'layer', got {kind!r}")
    cdef bint bn = kind == "batch"
    cdef cnp.ndarray X = _arr(x, "x", 2, t)
    _shape(X, "x", (n, d), " (the shape of dy)")
    cdef nn_int ns = d if bn else n
    cdef cnp.ndarray M = _arr(mean, "mean", 1, t)
    cdef cnp.ndarray S = _arr(invstd, "invstd", 1, t)
    _shape(M, "mean", (ns,), " (the forward's statistics)")
    _shape(S, "invstd", (ns,), " (the forward's statistics)")
    cdef cnp.ndarray G = _vec(gamma, "gamma", d, t)
    ins = (("x", X), ("mean", M), ("invstd", S), ("gamma", G))
    cdef cnp.ndarray DX = None
    if need_dx:
        DX = DY if dx is dy else _output(dx, "dx", (n, d), t, ins + (("dy", DY),))
    cdef cnp.ndarray DG = None
    cdef cnp.ndarray DB = None
    if need_params:
        if accumulate and (dgamma is None or dbeta is None):
            raise ValueError("accumulate needs dgamma and dbeta to add to")
        DG = _output(dgamma, "dgamma", (d,), t, ins + (("dy", DY), ("dx", DX)))
        DB = _output(dbeta, "dbeta", (d,), t, ins + (("dy", DY), ("dx", DX), ("dgamma", DG)))
    cdef int nt = _threads(n_threads)
    cdef void *pdx = _ptr(DX)
    cdef void *pdg = _ptr(DG)
    cdef void *pdb = _ptr(DB)
    cdef void *pdy = _ptr(DY)
    cdef void *px = _ptr(X)
    cdef void *pm = _ptr(M)
    cdef void *ps = _ptr(S)
    cdef void *pg = _ptr(G)
    with nogil:
        if bn and t == F32:
            nn_batchnorm_backward_f32(<float *>pdx, <float *>pdg, <float *>pdb, <float *>pdy,
                                      <float *>px, <float *>pm, <float *>ps, <float *>pg, n, d,
                                      accumulate, nt)
        elif bn:
            nn_batchnorm_backward_f64(<double *>pdx, <double *>pdg, <double *>pdb,
                                      <double *>pdy, <double *>px, <double *>pm, <double *>ps,
                                      <double *>pg, n, d, accumulate, nt)
        elif t == F32:
            nn_layernorm_backward_f32(<float *>pdx, <float *>pdg, <float *>pdb, <float *>pdy,
                                      <float *>px, <float *>pm, <float *>ps, <float *>pg, n, d,
                                      accumulate, nt)
        else:
            nn_layernorm_backward_f64(<double *>pdx, <double *>pdg, <double *>pdb,
                                      <double *>pdy, <double *>px, <double *>pm, <double *>ps,
                                      <double *>pg, n, d, accumulate, nt)
    return DX, DG, DB


def _loss(int kind, x, target, weight, reduction, grad, bint need_grad, n_threads,
          str xname, str what, double param=0):
    cdef int t = _float_type(x, xname)
    cdef cnp.ndarray X = _arr(x, xname, 2, t)
    cdef nn_int n = X.shape[0], d = X.shape[1]
    cdef cnp.ndarray TG = None
    cdef cnp.ndarray L = None
    if kind == NN_LOSS_CROSS_ENTROPY:
        if not isinstance(target, np.ndarray):
            raise TypeError(f"labels must be a numpy.ndarray of integers, got "
                            f"{type(target).__name__}")
        if target.dtype.kind not in "iu":
            raise TypeError(f"labels must have an integer dtype, got {target.dtype}; class "
                            f"labels are integers in [0, {d})")
        L = np.ascontiguousarray(target, dtype=np.int64)
        L = _arr(L, "labels", 1, cnp.NPY_INT64)
        _shape(L, "labels", (n,), " (one label per row of logits)")
        if not 0 <= param <= 1:  # also rejects NaN
            raise ValueError(f"label_smoothing must lie in [0, 1], got {param!r}")
    else:
        TG = _arr(target, "target", 2, t)
        _shape(TG, "target", (n, d), f" (the shape of {xname})")
        if kind == NN_LOSS_BCE_LOGITS and not (TG.min() >= 0 and TG.max() <= 1):
            raise ValueError("target must lie in [0, 1] for binary cross-entropy")
        if kind == NN_LOSS_HUBER and not 0 < param < math.inf:
            raise ValueError(f"delta must be positive and finite, got {param!r}")
    cdef cnp.ndarray W = _weights(weight, n, t)
    cdef int red = _reduction(reduction)
    cdef cnp.ndarray G = _output(grad, "grad", (n, d), t, ((xname, X), ("target", TG))) \
        if need_grad else None
    cdef int nt = _threads(n_threads), s = NN_OK
    cdef double loss = 0
    cdef void *pg = cnp.PyArray_DATA(G) if G is not None else NULL
    cdef void *px = cnp.PyArray_DATA(X)
    cdef void *pt = cnp.PyArray_DATA(TG) if TG is not None else NULL
    cdef int64_t *pl = <int64_t *>cnp.PyArray_DATA(L) if L is not None else NULL
    cdef void *pw = cnp.PyArray_DATA(W) if W is not None else NULL
    with nogil:
        if t == F32:
            s = nn_loss_f32(&loss, <float *>pg, <float *>px, <float *>pt, pl, <float *>pw, n,
                            d, kind, param, red, nt)
        else:
            s = nn_loss_f64(&loss, <double *>pg, <double *>px, <double *>pt, pl, <double *>pw,
                            n, d, kind, param, red, nt)
    if s == NN_ERR_ARG:
        raise ValueError(f"{what}: the weights sum to 0, so the mean is undefined")
    if s == NN_ERR_LABEL:  # the C kernel checked every label before writing anything
        bad = L[(L < 0) | (L >= d)][0]
        raise ValueError(f"labels must lie in [0, {d}) for {d} classes; got {bad}")
    _status(s, what)
    return loss, G


def mse_loss(pred, target, weight=None, reduction="mean", *, grad=None, bint need_grad=True,
             n_threads=None):
    """Mean squared error of pred (n, d) against target (n, d); weight (n,) per sample.
    Returns (loss, grad) with grad = dL/dpred (None when need_grad is False)."""
    return _loss(NN_LOSS_MSE, pred, target, weight, reduction, grad, need_grad, n_threads,
                 "pred", "mse_loss")


def l1_loss(pred, target, weight=None, reduction="mean", *, grad=None, bint need_grad=True,
            n_threads=None):
    """Mean absolute error |pred - target| of pred (n, d) against target (n, d); its
    gradient is sign(pred - target), 0 where they are equal. Returns (loss, grad)."""
    return _loss(NN_LOSS_L1, pred, target, weight, reduction, grad, need_grad, n_threads,
                 "pred", "l1_loss")


def huber_loss(pred, target, weight=None, reduction="mean", *, double delta=1.0, grad=None,
               bint need_grad=True, n_threads=None):
    """Huber loss of pred (n, d) against target (n, d): r^2 / 2 where |r| < delta, else
    delta (|r| - delta / 2), r = pred - target (torch.nn.HuberLoss). Returns (loss, grad)."""
    return _loss(NN_LOSS_HUBER, pred, target, weight, reduction, grad, need_grad, n_threads,
                 "pred", "huber_loss", delta)


def poisson_nll_loss(log_rate, target, weight=None, reduction="mean", *, grad=None,
                     bint need_grad=True, n_threads=None):
    """Poisson negative log-likelihood exp(x) - t x of log rates x (n, d) against counts t
    (n, d), without the constant log(t!) (torch.nn.PoissonNLLLoss(log_input=True,
    full=False)). Returns (loss, grad)."""
    return _loss(NN_LOSS_POISSON, log_rate, target, weight, reduction, grad, need_grad,
                 n_threads, "log_rate", "poisson_nll_loss")


def bce_with_logits_loss(logits, target, weight=None, reduction="mean", *, grad=None,
                         bint need_grad=True, n_threads=None):
    """Binary cross-entropy of sigmoid(logits) (n, d) against target in [0, 1] (n, d),
    computed stably from the logits. Returns (loss, grad)."""
    return _loss(NN_LOSS_BCE_LOGITS, logits, target, weight, reduction, grad, need_grad,
                 n_threads, "logits", "bce_with_logits_loss")


def cross_entropy_loss(logits, labels, weight=None, reduction="mean", *,
                       double label_smoothing=0.0, grad=None, bint need_grad=True,
                       n_threads=None):
    """Softmax cross-entropy of logits (n, c) against integer labels (n,) in [0, c), fused
    and stable; with label_smoothing s the target is (1 - s) onehot + s / c, as in
    torch.nn.CrossEntropyLoss. Returns (loss, grad)."""
    return _loss(NN_LOSS_CROSS_ENTROPY, logits, labels, weight, reduction, grad, need_grad,
                 n_threads, "logits", "cross_entropy_loss", label_smoothing)


cdef _nonneg(double value, str name):
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value}")


def clip_grads(g, double clipnorm=0.0, double clipvalue=0.0, *, n_threads=None):
    """In place on the 1-D g: clamp each element to [-clipvalue, clipvalue] (clipvalue > 0),
    then scale g by clipnorm / (||g|| + 1e-6) when that is below 1 (clipnorm > 0), as
    torch.nn.utils.clip_grad_value_ and clip_grad_norm_. Returns ||g|| before the scaling
    (0.0 without clipnorm)."""
    cdef int t = _float_type(g, "g")
    cdef cnp.ndarray G = _arr(g, "g", 1, t, True)
    if not (0 <= clipnorm < math.inf and 0 <= clipvalue < math.inf):
        raise ValueError(f"clipnorm and clipvalue must be finite and >= 0 (0: off), got "
                         f"{clipnorm!r}, {clipvalue!r}")
    cdef nn_int n = G.shape[0]
    cdef double norm = 0
    cdef int nt = _threads(n_threads), s = NN_OK
    cdef void *pg = _ptr(G)
    with nogil:
        if t == F32:
            s = nn_clip_grads_f32(&norm, <float *>pg, n, clipnorm, clipvalue, nt)
        else:
            s = nn_clip_grads_f64(&norm, <double *>pg, n, clipnorm, clipvalue, nt)
    _status(s, "clip_grads")
    return norm


def sgd_update(p, grad, buf=None, *, double lr, double momentum=0.0, double dampening=0.0,
               double weight_decay=0.0, bint nesterov=False, bint first_step=True,
               n_threads=None):
    """One torch.optim.SGD step, in place on p (1-D) and the momentum buffer buf."""
    cdef int t = _float_type(p, "p")
    cdef cnp.ndarray P = _arr(p, "p", 1, t, True)
    cdef nn_int n = P.shape[0]
    cdef cnp.ndarray G = _arr(grad, "grad", 1, t)
    _shape(G, "grad", (n,), " (the shape of p)")
    _nonneg(lr, "lr")
    _nonneg(momentum, "momentum")
    _nonneg(weight_decay, "weight_decay")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("nesterov needs momentum > 0 and dampening == 0")
    cdef cnp.ndarray B = None
    if momentum != 0:
        if buf is None:
            raise ValueError("momentum != 0 needs buf, the momentum buffer (shape of p)")
        B = _arr(buf, "buf", 1, t, True)
        _shape(B, "buf", (n,), " (the shape of p)")
        if _overlap(B, P) or _overlap(B, G):
            raise ValueError("buf overlaps p or grad in memory")
    if _overlap(P, G):
        raise ValueError("p overlaps grad in memory")
    cdef int nt = _threads(n_threads)
    cdef void *pp = cnp.PyArray_DATA(P)
    cdef void *pb = cnp.PyArray_DATA(B) if B is not None else NULL
    cdef void *pg = cnp.PyArray_DATA(G)
    with nogil:
        if t == F32:
            nn_sgd_update_f32(<float *>pp, <float *>pb, <float *>pg, n, lr, momentum,
                              dampening, weight_decay, nesterov, first_step, nt)
        else:
            nn_sgd_update_f64(<double *>pp, <double *>pb, <double *>pg, n, lr, momentum,
                              dampening, weight_decay, nesterov, first_step, nt)
    return P


def adam_update(p, grad, m, v, vmax=None, *, double lr=1e-3, betas=(0.9, 0.999),
                double eps=1e-8, double weight_decay=0.0, step, bint amsgrad=False,
                bint decoupled=False, n_threads=None):
    """One torch.optim.Adam step (AdamW when decoupled), in place on p, m, v (and vmax with
    amsgrad); step counts from 1."""
    cdef int t = _float_type(p, "p")
    cdef cnp.ndarray P = _arr(p, "p", 1, t, True)
    cdef nn_int n = P.shape[0]
    cdef cnp.ndarray G = _arr(grad, "grad", 1, t)
    _shape(G, "grad", (n,), " (the shape of p)")
    cdef cnp.ndarray M = _arr(m, "m", 1, t, True)
    cdef cnp.ndarray V = _arr(v, "v", 1, t, True)
    _shape(M, "m", (n,), " (the shape of p)")
    _shape(V, "v", (n,), " (the shape of p)")
    cdef cnp.ndarray VM = None
    if amsgrad:
        if vmax is None:
            raise ValueError("amsgrad needs vmax, the running maximum of v (shape of p)")
        VM = _arr(vmax, "vmax", 1, t, True)
        _shape(VM, "vmax", (n,), " (the shape of p)")
    arrays = [("p", P), ("grad", G), ("m", M), ("v", V), ("vmax", VM)]
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            if arrays[i][1] is not None and arrays[j][1] is not None and \
                    _overlap(arrays[i][1], arrays[j][1]):
                raise ValueError(f"{arrays[i][0]} overlaps {arrays[j][0]} in memory")
    cdef double beta1, beta2
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
    _nonneg(lr, "lr")
    _nonneg(eps, "eps")
    _nonneg(weight_decay, "weight_decay")
    if not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"step must be an integer >= 1, got {step!r}")
    cdef int64_t st = step
    cdef int nt = _threads(n_threads)
    cdef void *pp = cnp.PyArray_DATA(P)
    cdef void *pm = cnp.PyArray_DATA(M)
    cdef void *pv = cnp.PyArray_DATA(V)
    cdef void *pvm = cnp.PyArray_DATA(VM) if VM is not None else NULL
    cdef void *pg = cnp.PyArray_DATA(G)
    with nogil:
        if t == F32:
            nn_adam_update_f32(<float *>pp, <float *>pm, <float *>pv, <float *>pvm,
                               <float *>pg, n, lr, beta1, beta2, eps, weight_decay, st,
                               amsgrad, decoupled, nt)
        else:
            nn_adam_update_f64(<double *>pp, <double *>pm, <double *>pv, <double *>pvm,
                               <double *>pg, n, lr, beta1, beta2, eps, weight_decay, st,
                               amsgrad, decoupled, nt)
    return P


def rng_hash(uint64_t seed, uint64_t counter):
    """The 64-bit hash behind every random number: value `counter` of stream `seed`."""
    return nn_rng_hash(seed, counter)


def rng_uniform(nn_int n, uint64_t seed, uint64_t offset=0):
    """n uniform doubles in [0, 1): values offset .. offset + n - 1 of stream `seed`."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cdef cnp.ndarray U = np.empty(n, dtype=np.float64)
    cdef double *pu = <double *>cnp.PyArray_DATA(U)
    with nogil:
        nn_rng_uniform_f64(pu, n, seed, offset)
    return U


cdef _dropout_p(double p):
    if not (0 <= p < 1):
        raise ValueError(f"dropout p must lie in [0, 1), got {p}")


def dropout_forward(x, double p, uint64_t seed, uint64_t offset=0, *, out=None, mask=None,
                    n_threads=None):
    """Inverted dropout: element i is kept when uniform value offset + i of stream `seed` is
    >= p, and scaled by 1 / (1 - p). Returns (y, mask) with mask a uint8 array of 0/1."""
    cdef int t = _float_type(x, "x")
    if x.ndim < 1:
        raise ValueError(f"x must have at least 1 dimension, got shape {x.shape}")
    cdef cnp.ndarray X = _arr(x, "x", x.ndim, t)
    _dropout_p(p)
    cdef cnp.ndarray Y = _output(out, "out", _sh(X), t, (("x", X),))
    cdef cnp.ndarray MK
    if mask is None:
        MK = np.empty(_sh(X), dtype=np.uint8)
    else:
        MK = _arr(mask, "mask", X.ndim, cnp.NPY_UINT8, True)
        _shape(MK, "mask", _sh(X), " (the shape of x)")
    cdef nn_int n = cnp.PyArray_SIZE(X)
    cdef int nt = _threads(n_threads)
    cdef void *py = cnp.PyArray_DATA(Y)
    cdef uint8_t *pm = <uint8_t *>cnp.PyArray_DATA(MK)
    cdef void *px = cnp.PyArray_DATA(X)
    with nogil:
        if t == F32:
            nn_dropout_forward_f32(<float *>py, pm, <float *>px, n, p, seed, offset, nt)
        else:
            nn_dropout_forward_f64(<double *>py, pm, <double *>px, n, p, seed, offset, nt)
    return Y, MK


def dropout_backward(dy, mask, double p, *, out=None, n_threads=None):
    """dx = dy * mask / (1 - p). out may be dy itself."""
    cdef int t = _float_type(dy, "dy")
    if dy.ndim < 1:
        raise ValueError(f"dy must have at least 1 dimension, got shape {dy.shape}")
    cdef cnp.ndarray DY = _arr(dy, "dy", dy.ndim, t)
    cdef cnp.ndarray MK = _arr(mask, "mask", DY.ndim, cnp.NPY_UINT8)
    _shape(MK, "mask", _sh(DY), " (the shape of dy)")
    _dropout_p(p)
    cdef cnp.ndarray DX = DY if out is dy else _output(out, "out", _sh(DY), t, (("mask", MK),))
    if not cnp.PyArray_ISWRITEABLE(DX):
        raise ValueError("out is read-only; nncore writes into it")
    cdef nn_int n = cnp.PyArray_SIZE(DY)
    cdef int nt = _threads(n_threads)
    cdef void *pdx = cnp.PyArray_DATA(DX)
    cdef void *pdy = cnp.PyArray_DATA(DY)
    cdef uint8_t *pm = <uint8_t *>cnp.PyArray_DATA(MK)
    with nogil:
        if t == F32:
            nn_dropout_backward_f32(<float *>pdx, <float *>pdy, pm, n, p, nt)
        else:
            nn_dropout_backward_f64(<double *>pdx, <double *>pdy, pm, n, p, nt)
    return DX


def first_nonfinite(a):
    """The flat index of the first NaN or infinity in a C-contiguous float32/float64 array,
    or -1 when all values are finite."""
    cdef int t = _float_type(a, "a")
    cdef cnp.ndarray A = <cnp.ndarray>a
    if not cnp.PyArray_IS_C_CONTIGUOUS(A):
        raise ValueError("a must be C-contiguous; pass numpy.ascontiguousarray(a)")
    cdef nn_int n = cnp.PyArray_SIZE(A), r
    cdef void *p = cnp.PyArray_DATA(A)
    with nogil:
        r = nn_first_nonfinite_f32(<float *>p, n) if t == F32 else \
            nn_first_nonfinite_f64(<double *>p, n)
    return r


# ---- the compiled training plan -----------------------------------------------------------

from libc.stdlib cimport calloc, free
from libc.string cimport memset

LOSSES = {"mse": NN_LOSS_MSE, "bce_with_logits": NN_LOSS_BCE_LOGITS,
          "cross_entropy": NN_LOSS_CROSS_ENTROPY, "l1": NN_LOSS_L1, "huber": NN_LOSS_HUBER,
          "poisson": NN_LOSS_POISSON}
METRICS = {"accuracy": NN_METRIC_ACCURACY, "mse": NN_METRIC_MSE, "mae": NN_METRIC_MAE}
LAYERS = {"dense": NN_LAYER_DENSE, "dropout": NN_LAYER_DROPOUT,
          "activation": NN_LAYER_ACTIVATION, "batchnorm": NN_LAYER_BATCHNORM,
          "layernorm": NN_LAYER_LAYERNORM, "residual_begin": NN_LAYER_RESIDUAL_BEGIN,
          "residual_end": NN_LAYER_RESIDUAL_END}


cdef void *_buf(object a, str name, int typenum, nn_int size) except? NULL:
    """The data pointer of a C-contiguous, writable array of at least `size` elements of the
    given type, or NULL for None."""
    if a is None:
        return NULL
    cdef cnp.ndarray arr = _arr(a, name, (<cnp.ndarray>a).ndim, typenum, True) \
        if isinstance(a, np.ndarray) else _arr(a, name, 1, typenum, True)
    if cnp.PyArray_SIZE(arr) < size:
        raise ValueError(f"plan buffer {name} has {cnp.PyArray_SIZE(arr)} elements, needs "
                         f"{size}")
    return cnp.PyArray_DATA(arr)


cdef int _plan_hook(void *ctx, int event, int layer, double *loss) noexcept with gil:
    """nn_plan_hook: the plan's events to its exchange object (see Plan.data_parallel); an
    exception stops the plan, and Plan.train raises it."""
    cdef Plan plan = <Plan>ctx
    try:
        if event == NN_HOOK_LAYER:
            plan.exchange.layer_done(plan.hook_of[layer])
        elif event == NN_HOOK_GRADS:
            loss[0] = plan.exchange.grads_done(loss[0])
        else:
            plan.exchange.updated()
        return NN_OK
    except BaseException as e:
        plan.hook_error = e
        return NN_ERR_HOOK


cdef class Plan:
    """A model's training step compiled into one C loop (``nn_plan`` in nncore.h).

    Built once from the model's layers, loss, metrics, optimizer and buffers; every array it
    points into is kept alive here. ``train`` runs a range of mini-batches without the GIL;
    ``forward`` runs inference. The mutable counters (learning rate, optimizer steps,
    dropout counter) are read and written through attributes between calls.
    """
    cdef nn_plan plan
    cdef nn_plan_stats st
    cdef int typenum
    cdef list keep
    cdef nn_int row_work  # multiply-adds per row of inference
    cdef object exchange  # data-parallel: the object the hook calls (data_parallel)
    cdef object hook_error
    cdef const void **peer_data  # data-parallel: the peers' gradient buffers
    cdef object peers
    cdef list hook_of  # per plan layer: the model layer whose backward pass ends there, or -1
    cdef object step_arrays  # step_schedule's tables, kept alive

    def __cinit__(self):
        self.plan.layers = NULL
        self.peer_data = NULL

    def __dealloc__(self):
        free(self.plan.layers)
        free(self.peer_data)

    def __init__(self, dtype, layers, *, int first_param, nn_int n_features, nn_int n_outputs,
                 nn_int capacity, grad, scratch, str loss, prob_act, metrics, str optimizer,
                 double loss_param=0,
                 dict hyper, params, grads, state, uint64_t dropout_seed, backup=None,
                 layer_state=None, layer_state_backup=None,
                 rows=None, bint training=True, n_threads=None, bint bf16=False):
        self.typenum = F32 if np.dtype(dtype) == np.float32 else F64
        cdef int t = self.typenum
        if bf16 and t != F32:
            raise ValueError("plan: bfloat16 products need a float32 plan")
        if not 0 < len(layers) < 2**31:
            raise ValueError(f"a plan takes 1 to 2**31 - 1 layers, got {len(layers)}")
        if len(metrics) > NN_PLAN_MAX_METRICS:
            raise ValueError(f"a plan takes at most {NN_PLAN_MAX_METRICS} metrics")
        self.keep = [layers, grad, scratch, params, grads, state, backup, rows, layer_state,
                     layer_state_backup]
        cdef nn_plan *p = &self.plan
        memset(p, 0, sizeof(nn_plan))
        p.layers = <nn_plan_layer *>calloc(len(layers), sizeof(nn_plan_layer))
        if p.layers == NULL:
            raise MemoryError("plan: could not allocate its layer table")
        p.n_layers = len(layers)
        cdef nn_plan_layer *L
        cdef nn_int cap = capacity
        for i, spec in enumerate(layers):
            L = &p.layers[i]
            L.kind = LAYERS[spec["kind"]]
            L.act = _act(spec.get("act", "identity"))
            L.alpha = spec.get("alpha", 0.0)
            L.p = spec.get("p", 0.0)
            L.in_ = spec["in"]
            L.out = spec["out"]
            norm = L.kind in (NN_LAYER_BATCHNORM, NN_LAYER_LAYERNORM)  # w: gamma (out)
            L.w = _buf(spec.get("w"), "w", t, L.out if norm else L.in_ * L.out)
            L.b = _buf(spec.get("b"), "b", t, L.out)
            L.dw = _buf(spec.get("dw"), "dw", t, L.out if norm else L.in_ * L.out)
            L.db = _buf(spec.get("db"), "db", t, L.out)
            L.y = _buf(spec.get("y"), "y", t, cap * L.out)
            L.z = _buf(spec.get("z"), "z", t, cap * L.out)
            L.dx = _buf(spec.get("dx"), "dx", t, cap * L.in_)
            L.mask = <uint8_t *>_buf(spec.get("mask"), "mask", cnp.NPY_UINT8, cap * L.out)
            L.link = spec.get("link", -1)
            if L.kind in (NN_LAYER_RESIDUAL_BEGIN, NN_LAYER_RESIDUAL_END):
                other = NN_LAYER_RESIDUAL_END if L.kind == NN_LAYER_RESIDUAL_BEGIN \
                    else NN_LAYER_RESIDUAL_BEGIN
                if not (0 <= L.link < len(layers) and layers[L.link]["kind"] ==
                        ("residual_end" if other == NN_LAYER_RESIDUAL_END
                         else "residual_begin") and layers[L.link].get("link") == i
                        and (L.link > i) == (L.kind == NN_LAYER_RESIDUAL_BEGIN)):
                    raise ValueError(f"plan layer {i}: a residual marker needs its pair's "
                                     f"index in link")
                if L.in_ != L.out:
                    raise ValueError(f"plan layer {i}: a residual block keeps the width")
                if L.kind == NN_LAYER_RESIDUAL_END and (L.y == NULL or
                                                        (training and L.dx == NULL)):
                    raise ValueError(f"plan layer {i}: a residual end needs y (and dx in "
                                     f"training)")
            L.eps = spec.get("eps", 0.0)
            L.momentum = spec.get("momentum", 0.0)
            L.running_mean = _buf(spec.get("running_mean"), "running_mean", t, L.out)
            L.running_var = _buf(spec.get("running_var"), "running_var", t, L.out)
            L.stats = _buf(spec.get("stats"), "stats", t,
                           2 * (L.out if L.kind == NN_LAYER_BATCHNORM else cap))
            if L.kind in (NN_LAYER_BATCHNORM, NN_LAYER_LAYERNORM):
                if L.w == NULL or L.b == NULL or L.y == NULL or not L.eps > 0:
                    raise ValueError(f"plan layer {i}: a norm needs w, b, y and eps > 0")
                if training and (L.stats == NULL or L.dw == NULL or L.db == NULL):
                    raise ValueError(f"plan layer {i}: a norm in training needs stats, dw "
                                     f"and db")
                if L.kind == NN_LAYER_BATCHNORM and (L.running_mean == NULL or
                                                     L.running_var == NULL):
                    raise ValueError(f"plan layer {i}: batch norm needs its running "
                                     f"statistics")
            if L.kind == NN_LAYER_DENSE and (L.w == NULL or L.dw == NULL or L.y == NULL):
                raise ValueError(f"plan layer {i}: a dense layer needs w, dw and y")
            if L.kind == NN_LAYER_DENSE and (L.b == NULL) != (L.db == NULL):
                raise ValueError(f"plan layer {i}: b and db go together")
            if (training and L.kind == NN_LAYER_DENSE and nn_activation_needs_z(L.act, L.alpha)
                    and L.z == NULL):
                raise ValueError(f"plan layer {i}: activation needs z")
            if L.kind == NN_LAYER_ACTIVATION and L.y == NULL:
                raise ValueError(f"plan layer {i}: an activation layer needs y")
            if (training and L.kind == NN_LAYER_DROPOUT and L.p > 0 and
                    (L.y == NULL or L.mask == NULL)):
                raise ValueError(f"plan layer {i}: dropout needs y and mask")
            if (training and i > first_param and L.kind != NN_LAYER_DROPOUT and
                    L.dx == NULL):
                raise ValueError(f"plan layer {i}: needs dx (above the first parameter layer)")
        self.hook_of = [spec.get("hook_of", i) for i, spec in enumerate(layers)]
        p.first_param = first_param
        p.n_features, p.n_outputs, p.capacity = n_features, n_outputs, capacity
        self.row_work = n_features + sum(spec["in"] * spec["out"] for spec in layers
                                         if spec["kind"] == "dense")
        p.grad = _buf(grad, "grad", t, cap * n_outputs)
        p.scratch = _buf(scratch, "scratch", t, cap * n_outputs)
        p.loss = LOSSES[loss]
        p.loss_param = loss_param
        p.prob_act = _act(prob_act)
        p.n_metrics = len(metrics)
        for k, m in enumerate(metrics):
            p.metrics[k] = METRICS[m]
        if (p.prob_act != NN_ACT_IDENTITY and p.scratch == NULL and
                any(m in ("mse", "mae") for m in metrics)):
            raise ValueError("plan: mse/mae metrics on probabilities need scratch")
        p.optimizer = NN_OPT_SGD if optimizer == "sgd" else NN_OPT_ADAM
        p.lr = hyper.get("lr", 0.0)
        p.momentum = hyper.get("momentum", 0.0)
        p.dampening = hyper.get("dampening", 0.0)
        p.weight_decay = hyper.get("weight_decay", 0.0)
        p.nesterov = hyper.get("nesterov", False)
        p.beta1, p.beta2 = hyper.get("betas", (0.9, 0.999))
        p.eps = hyper.get("eps", 1e-8)
        p.amsgrad = hyper.get("amsgrad", False)
        p.decoupled = hyper.get("decoupled", False)
        p.clipnorm = hyper.get("global_clipnorm") or 0.0
        p.clipvalue = hyper.get("clipvalue") or 0.0
        p.n_params = params.shape[0]
        p.params = _buf(params, "params", t, p.n_params)
        p.grads = _buf(grads, "grads", t, p.n_params)
        s1, s2, s3 = (tuple(state) + (None, None, None))[:3]
        p.state1 = _buf(s1, "state1", t, p.n_params)
        p.state2 = _buf(s2, "state2", t, p.n_params)
        p.state3 = _buf(s3, "state3", t, p.n_params)
        if p.optimizer == NN_OPT_SGD and p.momentum != 0 and p.state1 == NULL:
            raise ValueError("plan: SGD with momentum needs its buffer")
        if p.optimizer == NN_OPT_ADAM and (p.state1 == NULL or p.state2 == NULL or
                                           (p.amsgrad and p.state3 == NULL)):
            raise ValueError("plan: Adam needs m, v (and vmax with amsgrad)")
        p.dropout_seed = dropout_seed
        p.backup = _buf(backup, "backup", t, p.n_params)
        p.n_state = 0 if layer_state is None else layer_state.shape[0]
        p.state = _buf(layer_state, "layer_state", t, p.n_state)
        p.state_backup = _buf(layer_state_backup, "layer_state_backup", t, p.n_state)
        if p.backup != NULL and p.n_state > 0 and p.state_backup == NULL:
            raise ValueError("plan: the NaN guard needs a backup of the layer state")
        # (x, targets or labels, weights) buffers of capacity rows for train's perm, or None
        rx, rt, rw = (None, None, None) if rows is None else rows
        p.rows_x = _buf(rx, "rows_x", t, cap * n_features)
        if p.loss == NN_LOSS_CROSS_ENTROPY:
            p.rows_labels = <int64_t *>_buf(rt, "rows_labels", cnp.NPY_INT64, cap)
        else:
            p.rows_t = _buf(rt, "rows_t", t, cap * n_outputs)
        p.rows_w = _buf(rw, "rows_w", t, cap)
        p.n_threads = _threads(n_threads)
        p.bf16 = bf16
        p.update_lo, p.update_hi = 0, p.n_params
        p.shard_rank, p.shard_size = 0, 1
        self.reset_stats()

    def data_parallel(self, exchange=None, int rank=0, int size=1, layers=(), update=None,
                      peers=()):
        """Train as rank ``rank`` of ``size`` (nn_plan's hook), or as one process again when
        exchange is None. Each global batch of ``train`` is split over the ranks; for each
        batch the plan calls ``exchange.layer_done(i)`` after the backward pass of each layer
        i in ``layers`` (last first), ``exchange.grads_done(loss)`` after the backward pass
        (it sums the ranks' gradients into grads over at least ``update``, and returns the
        sum of the ranks' losses), and ``exchange.updated()`` after the update.
        ``update``: the (start, stop) range of the parameters this rank updates (and the NaN
        guard keeps), default all. ``peers``: other ranks' gradient buffers (like grads) that
        the plan adds to grads over the update range before the update (the exchange then
        leaves that sum to the plan)."""
        cdef nn_plan *p = &self.plan
        lo, hi = (0, p.n_params) if update is None else update
        if not (0 <= rank < size and 0 <= lo <= hi <= p.n_params):
            raise ValueError("data_parallel: rank or update range out of bounds")
        if exchange is not None and p.rows_w == NULL:
            raise ValueError("data_parallel needs a plan built with rows buffers")
        peers = list(peers) if exchange is not None else []
        cdef const void **data = <const void **>calloc(max(len(peers), 1), sizeof(void *))
        if data == NULL:
            raise MemoryError("data_parallel: could not allocate the peers' table")
        try:
            for k, a in enumerate(peers):
                data[k] = _buf(a, f"peers[{k}]", self.typenum, p.n_params)
        except BaseException:
            free(data)
            raise
        # Checked: from here on nothing fails, so a refused call leaves the plan as it was.
        for i in range(p.n_layers):
            p.layers[i].hook = exchange is not None and self.hook_of[i] in layers
        free(self.peer_data)
        self.peer_data, self.peers = data, peers
        p.peers, p.n_peers = data, len(peers)
        p.update_lo, p.update_hi = lo, hi
        self.exchange = exchange
        if exchange is None:
            p.shard_rank, p.shard_size, p.hook, p.hook_ctx = 0, 1, NULL, NULL
        else:
            p.shard_rank, p.shard_size, p.hook, p.hook_ctx = rank, size, _plan_hook, <void *>self

    def step_schedule(self, lr=None, momentum=None, int64_t origin=0):
        """Per-step rates: step s of the next train calls takes lr[s - origin] (float64,
        1-D) and, with momentum, SGD's momentum or Adam's beta1 from momentum[s - origin];
        None: the rate set by the lr attribute for every step."""
        cdef nn_plan *p = &self.plan
        if lr is None:
            p.step_lr = p.step_momentum = NULL
            p.step_len = 0
            self.step_arrays = None
            return
        cdef cnp.ndarray L = _arr(lr, "lr", 1, F64)
        cdef cnp.ndarray M = None if momentum is None else _arr(momentum, "momentum", 1, F64)
        if M is not None:
            _shape(M, "momentum", _sh(L), " (one per step, as lr)")
        if not (np.all(L >= 0) and np.all(np.isfinite(L))) or (
                M is not None and not (np.all(M >= 0) and np.all(M < 1))):
            raise ValueError("step_schedule: rates must be finite and >= 0, momenta in [0, 1)")
        self.step_arrays = (L, M)
        p.step_lr = <const double *>cnp.PyArray_DATA(L)
        p.step_momentum = <const double *>cnp.PyArray_DATA(M) if M is not None else NULL
        p.step_origin, p.step_len = origin, L.shape[0]

    # -- counters the caller keeps in step ------------------------------------------------
    property lr:
        def __get__(self): return self.plan.lr
        def __set__(self, double v): self.plan.lr = v

    property steps:
        def __get__(self): return self.plan.steps
        def __set__(self, int64_t v): self.plan.steps = v

    property rng_counter:
        def __get__(self): return self.plan.rng_counter
        def __set__(self, uint64_t v): self.plan.rng_counter = v

    property backup_valid:
        def __get__(self): return bool(self.plan.backup_valid)
        def __set__(self, v): self.plan.backup_valid = bool(v)

    property n_threads:
        def __get__(self): return self.plan.n_threads
        def __set__(self, v): self.plan.n_threads = _threads(v)

    def reset_stats(self):
        memset(&self.st, 0, sizeof(nn_plan_stats))
        self.st.nonfinite_batch = -1

    def stats(self):
        """(loss_sum, weight_sum, metric_sums, metric_counts, batches, nonfinite_batch,
        last_loss, nonfinite_state) since reset_stats."""
        cdef int k, nm = self.plan.n_metrics
        return (self.st.loss_sum, self.st.weight_sum,
                [self.st.metric_sum[k] for k in range(nm)],
                [self.st.metric_count[k] for k in range(nm)], self.st.batches,
                self.st.nonfinite_batch, self.st.last_loss, bool(self.st.nonfinite_state))

    cdef _inputs(self, x, t, w, nn_int n, void **px, void **pt, int64_t **pl, void **pw):
        cdef cnp.ndarray X = _arr(x, "x", 2, self.typenum)
        if X.shape[0] != n or X.shape[1] != self.plan.n_features:
            raise ValueError(f"x must have shape ({n}, {self.plan.n_features})")
        px[0] = cnp.PyArray_DATA(X)
        pt[0] = NULL
        pl[0] = NULL
        pw[0] = NULL
        cdef cnp.ndarray T
        if t is not None:
            if self.plan.loss == NN_LOSS_CROSS_ENTROPY:
                T = _arr(t, "labels", 1, cnp.NPY_INT64)
                if T.shape[0] != n:
                    raise ValueError(f"labels must have shape ({n},)")
                pl[0] = <int64_t *>cnp.PyArray_DATA(T)
            else:
                T = _arr(t, "t", 2, self.typenum)
                if T.shape[0] != n or T.shape[1] != self.plan.n_outputs:
                    raise ValueError(f"t must have shape ({n}, {self.plan.n_outputs})")
                pt[0] = cnp.PyArray_DATA(T)
        cdef cnp.ndarray W
        if w is not None:
            W = _arr(w, "w", 1, self.typenum)
            if W.shape[0] != n:
                raise ValueError(f"w must have shape ({n},)")
            pw[0] = cnp.PyArray_DATA(W)
        return (x, t, w)  # keep the arrays referenced by the caller's frame

    cdef const int64_t *_perm(self, perm, nn_int n, nn_int i0, nn_int i1,
                              bint weights) except? NULL:
        """The data of perm, checked: a C-contiguous int64 array (n,) whose entries i0 .. i1 - 1
        (the rows a call reads: O(rows), so an epoch in chunks checks each entry once) are in
        [0, n); and the plan has the rows buffers the gather needs."""
        if not isinstance(perm, np.ndarray):
            raise ValueError(f"perm must be a numpy.ndarray of int64 row indices, got "
                             f"{type(perm).__name__}")
        cdef cnp.ndarray P = <cnp.ndarray>perm
        if cnp.PyArray_TYPE(P) != cnp.NPY_INT64:
            raise ValueError(f"perm must have dtype int64, got {P.dtype}; pass "
                             f"perm.astype(numpy.int64)")
        _native(P, "perm")
        if P.ndim != 1 or P.shape[0] != n:
            raise ValueError(f"perm must have shape ({n},) (one index per row of x), got "
                             f"{_sh(P)}")
        if not cnp.PyArray_IS_C_CONTIGUOUS(P):
            raise ValueError("perm must be C-contiguous; pass numpy.ascontiguousarray(perm)")
        cdef nn_plan *p = &self.plan
        if (p.rows_x == NULL or (p.rows_t == NULL and p.rows_labels == NULL) or
                (weights and p.rows_w == NULL)):
            raise ValueError("train with perm needs a plan built with rows=(x, targets, "
                             "weights) buffers")
        cdef const int64_t *pp = <const int64_t *>cnp.PyArray_DATA(P)
        cdef nn_int i, bad = -1
        with nogil:
            for i in range(i0, i1):
                if <uint64_t>pp[i] >= <uint64_t>n:  # negatives too
                    bad = i
                    break
        if bad >= 0:
            raise ValueError(f"perm[{bad}] = {pp[bad]} is not a row index in [0, {n})")
        return pp

    def train(self, x, t, w, nn_int batch_size, nn_int b0, nn_int b1, perm=None):
        """Run batches b0 .. b1 - 1 over the validated arrays x (n, features), t (targets
        or int64 labels), w (or None); with perm (an int64 permutation of range(n)), the
        batches take rows perm[b * batch_size ...] (the bits of training on x[perm], t[perm],
        w[perm]). Returns False when a non-finite loss stopped it."""
        cdef nn_int n = x.shape[0]
        cdef nn_int share = (batch_size + self.plan.shard_size - 1) // self.plan.shard_size
        if batch_size < 1 or share > self.plan.capacity:
            raise ValueError(f"batch_size must be in [1, {self.plan.capacity}] (rows a rank "
                             f"runs)")
        if b0 < 0 or b1 > (n + batch_size - 1) // batch_size or b0 > b1:
            raise ValueError("batch range out of bounds")
        if t is None:
            raise ValueError("train needs targets")
        cdef void *px
        cdef void *pt
        cdef int64_t *pl
        cdef void *pw
        self._inputs(x, t, w, n, &px, &pt, &pl, &pw)
        cdef const int64_t *pp = NULL
        if perm is not None:
            pp = self._perm(perm, n, b0 * batch_size, min(b1 * batch_size, n), pw != NULL)
        cdef int s
        with nogil:
            if self.typenum == F32:
                s = nn_plan_train_f32(&self.plan, &self.st, <float *>px, <float *>pt, pl,
                                      <float *>pw, pp, n, batch_size, b0, b1)
            else:
                s = nn_plan_train_f64(&self.plan, &self.st, <double *>px, <double *>pt, pl,
                                      <double *>pw, pp, n, batch_size, b0, b1)
        if s == NN_ERR_HOOK:
            error, self.hook_error = self.hook_error, None
            raise error
        if s == NN_ERR_ARG:
            return False
        _status(s, "training plan")
        return True

    def predict(self, x):
        """The outputs for x, when x is a non-empty, finite, C-contiguous
        (n, n_features) array of the plan's dtype; otherwise None (the caller then checks
        x and reports what is wrong). The fast path of Sequential.predict: a one-sample
        predict of a small network is a microsecond, so this is lean, and keeps the GIL for
        work too small to be worth releasing and taking it back (two of them cost 0.1 us)."""
        if type(x) is not cnp.ndarray:
            return None
        cdef cnp.ndarray X = <cnp.ndarray>x
        if (X.ndim != 2 or cnp.PyArray_TYPE(X) != self.typenum or X.shape[0] == 0 or
                X.shape[1] != self.plan.n_features or not cnp.PyArray_IS_C_CONTIGUOUS(X) or
                not cnp.PyArray_ISNOTSWAPPED(X)):
            return None
        cdef nn_int n = X.shape[0]
        cdef cnp.npy_intp dims[2]
        dims[0], dims[1] = n, self.plan.n_outputs
        cdef cnp.ndarray O = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
        cdef void *po = cnp.PyArray_DATA(O)
        cdef void *px = cnp.PyArray_DATA(X)
        cdef int s
        if n * self.row_work >= NOGIL_MIN_WORK:
            with nogil:
                s = self._predict(po, px, n)
        else:
            s = self._predict(po, px, n)
        if s == NOT_FINITE:  # the caller names the row
            return None
        if s != NN_OK:
            _status(s, "inference plan")
        return O

    cdef int _predict(self, void *po, void *px, nn_int n) noexcept nogil:
        """out (n, n_outputs) for a finite x (n, n_features); NOT_FINITE if x is not."""
        if self.typenum == F32:
            if nn_first_nonfinite_f32(<float *>px, n * self.plan.n_features) >= 0:
                return NOT_FINITE
            return nn_plan_forward_f32(&self.plan, NULL, <float *>po, <float *>px, NULL, NULL,
                                       NULL, n)
        if nn_first_nonfinite_f64(<double *>px, n * self.plan.n_features) >= 0:
            return NOT_FINITE
        return nn_plan_forward_f64(&self.plan, NULL, <double *>po, <double *>px, NULL, NULL,
                                   NULL, n)

    def forward(self, x, out=None, t=None, w=None):
        """Inference over x (n, features) in batches of the plan's capacity: fills out
        (n, outputs) when given; with targets, adds loss (sum reduction) and metric sums to
        the stats."""
        cdef nn_int n = x.shape[0]
        cdef void *px
        cdef void *pt
        cdef int64_t *pl
        cdef void *pw
        self._inputs(x, t, w, n, &px, &pt, &pl, &pw)
        cdef void *po = NULL
        if out is not None:
            O = _arr(out, "out", 2, self.typenum, True)
            if O.shape[0] != n or O.shape[1] != self.plan.n_outputs:
                raise ValueError(f"out must have shape ({n}, {self.plan.n_outputs})")
            po = cnp.PyArray_DATA(O)
        cdef int s
        with nogil:
            if self.typenum == F32:
                s = nn_plan_forward_f32(&self.plan, &self.st, <float *>po, <float *>px,
                                        <float *>pt, pl, <float *>pw, n)
            else:
                s = nn_plan_forward_f64(&self.plan, &self.st, <double *>po, <double *>px,
                                        <double *>pt, pl, <double *>pw, n)
        _status(s, "inference plan")
        return out
