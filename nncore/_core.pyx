"""nncore._core: thin wrappers over the C API (src_c/nncore.h).

Each wrapper checks its arguments (type, dtype, shape, contiguity, writability, emptiness,
overlap) with an error that names the argument, then releases the GIL around one C call.
Arrays must be C-contiguous float32 or float64, all of one dtype; outputs are allocated when
not given. ``n_threads=None`` uses the library default (``nncore.get_num_threads()``).
"""
cimport numpy as cnp
import numpy as np
from libc.stdint cimport int64_t, uint8_t, uint64_t

cnp.import_array()

ACTIVATIONS = {
    "identity": NN_ACT_IDENTITY, "linear": NN_ACT_IDENTITY, None: NN_ACT_IDENTITY,
    "relu": NN_ACT_RELU, "leaky_relu": NN_ACT_LEAKY_RELU, "sigmoid": NN_ACT_SIGMOID,
    "tanh": NN_ACT_TANH, "gelu": NN_ACT_GELU, "softmax": NN_ACT_SOFTMAX,
}
REDUCTIONS = {"mean": NN_REDUCE_MEAN, "sum": NN_REDUCE_SUM}
CPU_PATHS = ("generic", "avx2", "avx512")

cdef int F32 = cnp.NPY_FLOAT32
cdef int F64 = cnp.NPY_FLOAT64


# ---- argument checks ----------------------------------------------------------------------

cdef int _float_type(object a, str name) except -1:
    """The dtype code of a main input, which must be a float32 or float64 ndarray."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32 or float64, "
                        f"got {type(a).__name__}")
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if t != F32 and t != F64:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}; "
                        f"convert it with {name}.astype(numpy.float32)")
    return t


cdef cnp.ndarray _arr(object a, str name, int ndim, int typenum, bint writable=False):
    """a as a C-contiguous, non-empty ndarray of the given ndim and dtype, or a clear error."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        want = "float32" if typenum == F32 else "float64" if typenum == F64 else "int64"
        raise TypeError(f"{name} must have dtype {want} like the other arrays, "
                        f"got {arr.dtype}")
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
    if out is None:
        return np.empty(shape, dtype=np.float32 if typenum == F32 else np.float64)
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


# ---- GEMM ---------------------------------------------------------------------------------

def _gemm(a, b, out, bint trans_a, bint trans_b, bint accumulate, n_threads, bint naive):
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
    cdef cnp.ndarray C = _output(out, "out", (m, n), t, (("a", A), ("b", B)))
    cdef int nt = _threads(n_threads), s = NN_OK
    cdef void *pc = cnp.PyArray_DATA(C)
    cdef void *pa = cnp.PyArray_DATA(A)
    cdef void *pb = cnp.PyArray_DATA(B)
    cdef nn_int lda = A.shape[1], ldb = B.shape[1]
    with nogil:
        if naive and t == F32:
            nn_gemm_naive_f32(<float *>pc, <float *>pa, <float *>pb, m, n, k, lda, ldb, n,
                              trans_a, trans_b, accumulate)
        elif naive:
            nn_gemm_naive_f64(<double *>pc, <double *>pa, <double *>pb, m, n, k, lda, ldb, n,
                              trans_a, trans_b, accumulate)
        elif t == F32:
            s = nn_gemm_f32(<float *>pc, <float *>pa, <float *>pb, m, n, k, lda, ldb, n,
                            trans_a, trans_b, accumulate, nt)
        else:
            s = nn_gemm_f64(<double *>pc, <double *>pa, <double *>pb, m, n, k, lda, ldb, n,
                            trans_a, trans_b, accumulate, nt)
    _status(s, "gemm")
    return C


def gemm(a, b, out=None, *, trans_a=False, trans_b=False, accumulate=False, n_threads=None):
    """out (m, n) = op(a) @ op(b) [+ out], op(x) = x.T when trans_x. Returns out."""
    return _gemm(a, b, out, trans_a, trans_b, accumulate, n_threads, False)


def gemm_naive(a, b, out=None, *, trans_a=False, trans_b=False, accumulate=False):
    """The triple-loop GEMM (the ground truth), same arguments as gemm."""
    return _gemm(a, b, out, trans_a, trans_b, accumulate, 1, True)


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
                  n_threads=None):
    """y (n, out) = act(x (n, in) @ w (in, out) + b (out)), bias and activation fused into the
    GEMM write-back. z, if given (n, out), receives the pre-activation. Returns y."""
    cdef int t = _float_type(x, "x")
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
        if t == F32:
            s = nn_dense_forward_f32(<float *>py, <float *>pz, <float *>px, <float *>pw,
                                     <float *>pb, n, n_in, n_out, act, <float>alpha, nt)
        else:
            s = nn_dense_forward_f64(<double *>py, <double *>pz, <double *>px, <double *>pw,
                                     <double *>pb, n, n_in, n_out, act, alpha, nt)
    _status(s, "dense_forward")
    return Y


def dense_backward(dy, x, w, y, z=None, activation="identity", double alpha=0.01, *, dx=None,
                   dw=None, db=None, dz=None, bint need_dx=True, bint need_db=True,
                   bint accumulate=False, n_threads=None):
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
    with nogil:
        if t == F32:
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
