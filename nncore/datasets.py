"""Small datasets for examples and tests, and a train/test split.

* :func:`load_digits`: the 8x8 optical handwritten digits shipped with nncore (1,797 samples,
  10 classes), from the UCI Machine Learning Repository, "Optical Recognition of Handwritten
  Digits", E. Alpaydin and C. Kaynak (1998), licensed CC BY 4.0 (see
  ``nncore/data/README.md``).
* :func:`make_moons`, :func:`make_spirals`, :func:`make_xor`: 2-D toy classification sets.
* :func:`train_test_split`.

Every generator takes a ``seed`` (None: fresh randomness).
"""

import gzip
import os

import numpy as np

from ._validation import check_int, check_number

__all__ = ["load_digits", "make_moons", "make_spirals", "make_xor", "train_test_split"]

_DATA = os.path.join(os.path.dirname(__file__), "data")


def load_digits():
    """The optical handwritten digits: 1,797 images of 8x8 pixels, digits 0-9.

    Source: UCI Machine Learning Repository, Optical Recognition of Handwritten Digits
    (E. Alpaydin, C. Kaynak, 1998; the test set, as bundled by scikit-learn), CC BY 4.0.

    Returns
    -------
    X : ndarray of float64, shape (1797, 64)
        Pixel counts in 0..16, row by row of the 8x8 image (divide by 16 to scale to [0, 1]).
    y : ndarray of int64, shape (1797,)
        The digit, 0..9.
    """
    with gzip.open(os.path.join(_DATA, "digits.csv.gz"), "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return np.ascontiguousarray(data[:, :-1]), data[:, -1].astype(np.int64)


def _rng_and_n(n_samples, seed, minimum=1):
    n = check_int(n_samples, "n_samples", minimum)
    if seed is not None:
        seed = check_int(seed, "seed", 0)
    return np.random.default_rng(seed), n


def make_moons(n_samples=200, noise=0.1, seed=None):
    """Two interleaving half circles (class 0 on top, class 1 below), shuffled.

    Parameters
    ----------
    n_samples : int, default 200
    noise : float, default 0.1
        Standard deviation of Gaussian noise added to the points.
    seed : int, optional

    Returns
    -------
    X : ndarray of float64, shape (n_samples, 2)
    y : ndarray of int64, shape (n_samples,)
    """
    rng, n = _rng_and_n(n_samples, seed, 2)
    noise = check_number(noise, "noise", 0.0)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    X = np.vstack([np.column_stack([np.cos(t_out), np.sin(t_out)]),
                   np.column_stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)])])
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    X += rng.normal(0.0, noise, X.shape) if noise else 0.0
    perm = rng.permutation(n)
    return X[perm], y[perm]


def make_spirals(n_samples=300, n_classes=3, noise=0.2, seed=None):
    """Interleaved spiral arms, one per class (the classic CS231n example), shuffled.

    Parameters
    ----------
    n_samples : int, default 300
        Total number of points (split as evenly as possible among the classes).
    n_classes : int, default 3
    noise : float, default 0.2
        Standard deviation of the noise on each point's angle.
    seed : int, optional

    Returns
    -------
    X : ndarray of float64, shape (n_samples, 2)
    y : ndarray of int64, shape (n_samples,)
    """
    n_classes = check_int(n_classes, "n_classes", 2)
    rng, n = _rng_and_n(n_samples, seed, n_classes)
    noise = check_number(noise, "noise", 0.0)
    sizes = [n // n_classes + (k < n % n_classes) for k in range(n_classes)]
    Xs, ys = [], []
    for k, m in enumerate(sizes):
        r = np.linspace(0.05, 1.0, m)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, m) * (3.0 / n_classes) \
            + rng.normal(0.0, noise, m)
        Xs.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
        ys.append(np.full(m, k, np.int64))
    X, y = np.vstack(Xs), np.concatenate(ys)
    perm = rng.permutation(n)
    return X[perm], y[perm]


def make_xor(n_samples=200, noise=0.0, seed=None):
    """Points uniform in [-1, 1]^2 labelled by XOR of their signs: class 1 where exactly one
    coordinate is positive (not linearly separable).

    Parameters
    ----------
    n_samples : int, default 200
    noise : float, default 0
        Standard deviation of Gaussian noise added to the points after labelling.
    seed : int, optional

    Returns
    -------
    X : ndarray of float64, shape (n_samples, 2)
    y : ndarray of int64, shape (n_samples,)
    """
    rng, n = _rng_and_n(n_samples, seed)
    noise = check_number(noise, "noise", 0.0)
    X = rng.uniform(-1.0, 1.0, (n, 2))
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(np.int64)
    if noise:
        X += rng.normal(0.0, noise, X.shape)
    return X, y


def train_test_split(*arrays, test_size=0.25, shuffle=True, stratify=None, seed=None):
    """Split arrays into random train and test parts (scikit-learn's order of results).

    Parameters
    ----------
    *arrays : array_like
        Arrays with the same number of rows.
    test_size : float or int, default 0.25
        Fraction of the rows (0 < test_size < 1) or number of rows for the test part.
    shuffle : bool, default True
        Shuffle before splitting (False: the last rows are the test part).
    stratify : array_like, optional
        Class labels: keep their proportions in both parts (needs shuffle=True).
    seed : int, optional

    Returns
    -------
    list
        ``[a_train, a_test, b_train, b_test, ...]``.

    Examples
    --------
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0)
    """
    if not arrays:
        raise ValueError("train_test_split needs at least one array")
    arrays = [np.asarray(a) for a in arrays]
    n = arrays[0].shape[0] if arrays[0].ndim else 0
    for i, a in enumerate(arrays):
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(f"arrays[{i}] has {a.shape[0] if a.ndim else 0} rows but "
                             f"arrays[0] has {n}; all arrays need the same number of rows")
    if isinstance(test_size, (float, np.floating)):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size must be in (0, 1) as a fraction, got {test_size}")
        n_test = int(np.ceil(test_size * n))
    else:
        n_test = check_int(test_size, "test_size", 1)
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size!r} leaves {n - n_test} training and {n_test} "
                         f"test rows of {n}; both parts need at least one")
    rng = np.random.default_rng(None if seed is None else check_int(seed, "seed", 0))
    if stratify is not None:
        if not shuffle:
            raise ValueError("stratify needs shuffle=True")
        labels = np.asarray(stratify)
        if labels.shape[0] != n:
            raise ValueError(f"stratify has {labels.shape[0]} labels but there are {n} rows")
        classes, inv = np.unique(labels, return_inverse=True)
        test = []
        for k in range(len(classes)):
            idx = rng.permutation(np.flatnonzero(inv == k))
            test.append(idx[:int(round(n_test * idx.size / n))])
        test_idx = np.concatenate(test)
        rest = np.setdiff1d(np.arange(n), test_idx)
        # top up or trim rounding differences so that the test part has exactly n_test rows
        if test_idx.size < n_test:
            test_idx = np.concatenate([test_idx, rng.choice(rest, n_test - test_idx.size,
                                                            replace=False)])
        elif test_idx.size > n_test:
            test_idx = rng.choice(test_idx, n_test, replace=False)
        test_idx = rng.permutation(test_idx)
        train_idx = rng.permutation(np.setdiff1d(np.arange(n), test_idx))
    elif shuffle:
        perm = rng.permutation(n)
        train_idx, test_idx = perm[n_test:], perm[:n_test]
    else:
        train_idx, test_idx = np.arange(n - n_test), np.arange(n - n_test, n)
    out = []
    for a in arrays:
        out += [a[train_idx], a[test_idx]]
    return out
