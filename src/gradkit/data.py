"""Data without downloads: the Advertising set shipped in the package, scikit-learn's digits
(optional dependency), an IDX reader for MNIST-style files already on disk, synthetic sets,
and a minibatch iterator shuffled by an explicit key.

The Advertising data (200 markets: TV, Radio, Newspaper budgets in thousands of dollars;
Sales in thousands of units) is the data set of James, Witten, Hastie & Tibshirani,
*An Introduction to Statistical Learning* (www.statlearning.com), used in seed 000.
"""

from __future__ import annotations

import csv
import gzip
import importlib.resources
import io
import struct
from pathlib import Path
from typing import Any, NamedTuple
from collections.abc import Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


class Dataset(NamedTuple):
    """``features (n, d)``, ``targets (n,)`` and the feature names."""

    features: np.ndarray
    targets: np.ndarray
    feature_names: tuple[str, ...]


def load_advertising(dtype: Any = np.float64) -> Dataset:
    """The Advertising data shipped with gradkit: features TV, Radio, Newspaper; target Sales."""
    text = importlib.resources.files("gradkit").joinpath("datasets", "advertising.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], np.asarray(rows[1:], dtype=dtype)
    if header != ["TV", "Radio", "Newspaper", "Sales"]:
        raise ValueError(f"advertising.csv has unexpected columns {header}")
    return Dataset(body[:, :3], body[:, 3], tuple(header[:3]))


def load_digits(dtype: Any = np.float32) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images, pixel values 0..16 scaled to [0, 1]), classes 0-9.
    Needs scikit-learn (``pip install gradkit[data]``); nothing is downloaded."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("load_digits needs scikit-learn: pip install 'gradkit[data]'") from error
    digits = sklearn_digits()
    return Dataset((digits.data / 16.0).astype(dtype), digits.target.astype(np.int32),
                   tuple(f"pixel_{i}" for i in range(64)))


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST / Fashion-MNIST format; ``.gz`` is decompressed): a big-endian
    header ``0x00 0x00 <type> <ndim>``, ``ndim`` uint32 sizes, then the data."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX data type 0x{type_code:02x}")
    shape = struct.unpack(f">{ndim}I", raw[4: 4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[type_code])
    count = int(np.prod(shape)) if shape else 1
    offset = 4 + 4 * ndim
    if len(raw) - offset != count * dtype.itemsize:
        raise ValueError(f"{path}: header says {shape} of {dtype} ({count * dtype.itemsize} bytes), "
                         f"the file holds {len(raw) - offset}")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist_like(images_path: str | Path, labels_path: str | Path) -> Dataset:
    """MNIST-style image and label IDX files from disk: images scaled to [0, 1], shape
    ``(n, rows, cols)``; labels ``int32``."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    return Dataset(images.astype(np.float32) / 255.0, labels.astype(np.int32), ("pixels",))


def make_regression(key: jax.Array, n: int, dim: int, noise: float = 0.1) -> tuple[Dataset, jax.Array]:
    """``y = x w* + b* + noise·ε`` with ``x, w*, ε ~ N(0, I)``, ``b* ~ N(0, 1)``; returns the data
    and the true ``(w*, b*)`` stacked as ``concat(w*, [b*])``."""
    kx, kw, kb, ke = jax.random.split(key, 4)
    x = jax.random.normal(kx, (n, dim))
    w, b = jax.random.normal(kw, (dim,)), jax.random.normal(kb, ())
    y = x @ w + b + noise * jax.random.normal(ke, (n,))
    return Dataset(np.asarray(x), np.asarray(y), tuple(f"x{i}" for i in range(dim))), jnp.append(w, b)


def make_classification(key: jax.Array, n: int, dim: int, num_classes: int, separation: float = 2.0
                        ) -> Dataset:
    """Gaussian blobs: class ``k`` (balanced, ``n // num_classes`` each, remainder to the first)
    centred at ``separation · c_k`` with ``c_k ~ N(0, I)``, unit noise; shuffled."""
    kc, kx, kp = jax.random.split(key, 3)
    labels = jnp.arange(n) % num_classes
    centers = separation * jax.random.normal(kc, (num_classes, dim))
    x = centers[labels] + jax.random.normal(kx, (n, dim))
    order = jax.random.permutation(kp, n)
    return Dataset(np.asarray(x[order]), np.asarray(labels[order], dtype=np.int32),
                   tuple(f"x{i}" for i in range(dim)))


def num_examples(data: PyTree) -> int:
    """The shared leading-axis length of a pytree of arrays (a ``ValueError`` if they disagree)."""
    sizes = {np.shape(leaf)[0] for leaf in jax.tree.leaves(data)}
    if len(sizes) != 1:
        raise ValueError(f"the arrays of a dataset disagree on the number of examples: {sorted(sizes)}")
    return sizes.pop()


def minibatches(key: jax.Array, data: PyTree, batch_size: int, *, shuffle: bool = True,
                drop_last: bool = True) -> Iterator[PyTree]:
    """One epoch of minibatches of ``data`` (any pytree of arrays sharing the leading axis),
    in the order of ``jax.random.permutation(key, n)`` (or in order when ``shuffle=False``).
    ``drop_last`` drops the final short batch, so every batch has the same shape (one compile)."""
    n = num_examples(data)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    order = np.asarray(jax.random.permutation(key, n)) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = order[start: start + batch_size]
        yield jax.tree.map(lambda leaf: leaf[index], data)


def train_test_split(key: jax.Array, data: Sequence[np.ndarray] | Mapping[str, np.ndarray], test_fraction: float = 0.2
                     ) -> tuple[PyTree, PyTree]:
    """Split a pytree of arrays into (train, test) by a random permutation from ``key``."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n = num_examples(data)
    order = np.asarray(jax.random.permutation(key, n))
    n_test = max(1, int(round(test_fraction * n)))
    test, train = order[:n_test], order[n_test:]
    return jax.tree.map(lambda leaf: leaf[train], data), jax.tree.map(lambda leaf: leaf[test], data)
