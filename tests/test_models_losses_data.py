"""gradkit.losses against the seed-001 numbers and optax.losses; gradkit.models against hand
NumPy forward passes and finite differences; gradkit.data loaders on shipped and written files."""

from __future__ import annotations

import gzip
import struct

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradkit import data, losses, models

# ----------------------------------------------------------------------------- losses

SEED_SCORES = jnp.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])  # rows: cat, car, frog images
SEED_LABELS = jnp.array([0, 1, 2])


def test_multiclass_hinge_seed_001_numbers():
    per_example = losses.multiclass_hinge(SEED_SCORES, SEED_LABELS)
    np.testing.assert_allclose(per_example, [2.9, 0.0, 12.9], rtol=1e-12)
    np.testing.assert_allclose(jnp.mean(per_example), 5.2666666666666, rtol=1e-12)  # the seed's 5.27
    crammer_singer = losses.multiclass_hinge(SEED_SCORES, SEED_LABELS, kind="max")
    np.testing.assert_allclose(crammer_singer, optax.losses.multiclass_hinge_loss(SEED_SCORES, SEED_LABELS), rtol=1e-12)


def test_losses_match_optax():
    key = jax.random.PRNGKey(0)
    logits = 4 * jax.random.normal(key, (16, 5))
    labels = jax.random.randint(jax.random.PRNGKey(1), (16,), 0, 5)
    np.testing.assert_allclose(losses.softmax_cross_entropy(logits, labels),
                               optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels), rtol=1e-12)
    one_hot = jax.nn.one_hot(labels, 5)
    np.testing.assert_allclose(losses.softmax_cross_entropy(logits, one_hot),
                               optax.losses.softmax_cross_entropy(logits, one_hot), rtol=1e-12)
    np.testing.assert_allclose(losses.negative_log_likelihood(jax.nn.log_softmax(logits), labels),
                               optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels), rtol=1e-12)
    z = 30 * jax.random.normal(key, (32,))
    y = (jax.random.uniform(jax.random.PRNGKey(2), (32,)) > 0.5).astype(z.dtype)
    np.testing.assert_allclose(losses.binary_cross_entropy(z, y), optax.losses.sigmoid_binary_cross_entropy(z, y),
                               rtol=1e-12)
    np.testing.assert_allclose(losses.hinge(z, y), optax.losses.hinge_loss(z, 2 * y - 1), rtol=1e-12)
    pred, target = jax.random.normal(key, (8, 3)), jax.random.normal(jax.random.PRNGKey(3), (8, 3))
    np.testing.assert_allclose(losses.mse(pred, target), jnp.mean(optax.losses.squared_error(pred, target)), rtol=1e-12)
    np.testing.assert_allclose(losses.mae(pred, target), np.mean(np.abs(np.asarray(pred - target))), rtol=1e-12)


def test_cross_entropies_are_stable_at_extreme_logits():
    z = jnp.array([1000.0, -1000.0])
    np.testing.assert_allclose(losses.binary_cross_entropy(z, jnp.array([1.0, 0.0])), 0.0, atol=1e-12)
    np.testing.assert_allclose(losses.binary_cross_entropy(z, jnp.array([0.0, 1.0])), 1000.0, rtol=1e-12)
    g = jax.grad(lambda z: jnp.sum(losses.binary_cross_entropy(z, jnp.array([0.0, 1.0]))))(z)
    np.testing.assert_allclose(g, [1.0, -1.0])  # σ(z) - y, never NaN
    big = jnp.array([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(losses.softmax_cross_entropy(big, jnp.array([2])), 2000.0, rtol=1e-12)


def test_regularizers():
    params = {"w": jnp.array([[1.0, -2.0], [3.0, 0.0]]), "b": jnp.array([-1.0]), "step": jnp.array(3)}
    np.testing.assert_allclose(losses.l1_penalty(params, 0.1), 0.1 * 7.0)  # integer leaves are skipped
    np.testing.assert_allclose(losses.l2_penalty(params, 0.1), 0.05 * 15.0)
    np.testing.assert_allclose(losses.elastic_net_penalty(params, 0.1, 0.3), 0.1 * (0.3 * 7.0 + 0.5 * 0.7 * 15.0))
    grads = jax.grad(lambda p: losses.l2_penalty(p, 0.1))({"w": params["w"]})
    np.testing.assert_allclose(grads["w"], 0.1 * params["w"])  # weight decay


def test_loss_bad_input():
    with pytest.raises(ValueError, match="differ"):
        losses.mse(jnp.zeros(3), jnp.zeros(4))
    with pytest.raises(ValueError, match="labels"):
        losses.softmax_cross_entropy(jnp.zeros((3, 4)), jnp.zeros((4,), jnp.int32))
    with pytest.raises(ValueError, match="kind"):
        losses.multiclass_hinge(SEED_SCORES, SEED_LABELS, kind="mean")


# ----------------------------------------------------------------------------- models


def test_linear_logistic_softmax_models_compute_their_formulas():
    x = np.random.default_rng(0).normal(size=(5, 3))
    for model, shape in [(models.linear_regression(3, 2), (5, 2)), (models.logistic_regression(3), (5,)),
                         (models.softmax_regression(3, 4), (5, 4))]:
        params = model.init(jax.random.PRNGKey(0))
        params = jax.tree.map(lambda p: jnp.asarray(np.random.default_rng(1).normal(size=p.shape)), params)
        out = model.apply(params, jnp.asarray(x))
        assert out.shape == shape
        np.testing.assert_allclose(out, (x @ np.asarray(params["w"]) + np.asarray(params["b"])).reshape(shape),
                                   rtol=1e-12)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_mlp_forward_and_gradient(activation):
    model = models.mlp([4, 6, 5, 3], activation=activation, dtype=jnp.float64)
    params = model.init(jax.random.PRNGKey(0))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(7, 4)))
    numpy_act = {"sigmoid": lambda a: 1 / (1 + np.exp(-a)), "tanh": np.tanh, "relu": lambda a: np.maximum(a, 0)}
    h = np.asarray(x)
    for layer in params[:-1]:
        h = numpy_act[activation](h @ np.asarray(layer["w"]) + np.asarray(layer["b"]))
    expected = h @ np.asarray(params[-1]["w"]) + np.asarray(params[-1]["b"])
    np.testing.assert_allclose(model.apply(params, x), expected, rtol=1e-12)
    labels = jnp.array([0, 1, 2, 0, 1, 2, 0])
    loss = lambda p: jnp.mean(losses.softmax_cross_entropy(model.apply(p, x), labels))
    # a central difference along a random direction agrees with jax.grad
    v = jax.tree.map(lambda p: jnp.asarray(np.random.default_rng(2).normal(size=p.shape)), params)
    eps = 1e-6
    plus = loss(jax.tree.map(lambda p, d: p + eps * d, params, v))
    minus = loss(jax.tree.map(lambda p, d: p - eps * d, params, v))
    directional = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(jax.grad(loss)(params)), jax.tree.leaves(v)))
    np.testing.assert_allclose((plus - minus) / (2 * eps), directional, rtol=1e-6)


def numpy_conv_same(x, k, b):
    """Explicit loops: SAME-padded 2D cross-correlation, NHWC x HWIO."""
    n, h, w, c = x.shape
    kh, kw, _, o = k.shape
    padded = np.pad(x, ((0, 0), (kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2), (0, 0)))
    out = np.zeros((n, h, w, o))
    for i in range(h):
        for j in range(w):
            patch = padded[:, i:i + kh, j:j + kw, :]
            out[:, i, j, :] = np.einsum("nabc,abco->no", patch, k)
    return out + b


def test_cnn_matches_an_explicit_loop_implementation():
    model = models.cnn((8, 8, 1), num_classes=10, channels=(3, 4), dtype=jnp.float64)
    params = model.init(jax.random.PRNGKey(0))
    x = np.random.default_rng(0).normal(size=(2, 8, 8))
    h = x[..., None]
    for layer in params["conv"]:
        h = np.maximum(numpy_conv_same(h, np.asarray(layer["w"]), np.asarray(layer["b"])), 0)
        n, hh, ww, c = h.shape
        h = h.reshape(n, hh // 2, 2, ww // 2, 2, c).mean(axis=(2, 4))
    expected = h.reshape(2, -1) @ np.asarray(params["dense"]["w"]) + np.asarray(params["dense"]["b"])
    np.testing.assert_allclose(model.apply(params, jnp.asarray(x)), expected, rtol=1e-10)
    # composes with vmap over seeds and grad
    batch = jax.vmap(model.init)(jax.random.split(jax.random.PRNGKey(1), 3))
    outs = jax.vmap(model.apply, in_axes=(0, None))(batch, jnp.asarray(x))
    assert outs.shape == (3, 2, 10)
    assert jax.tree.structure(jax.grad(lambda p: jnp.sum(model.apply(p, jnp.asarray(x))))(params)) == \
        jax.tree.structure(params)


def test_model_bad_input():
    with pytest.raises(ValueError, match="activation"):
        models.mlp([2, 3], activation="gelu")
    with pytest.raises(ValueError, match="at least"):
        models.mlp([2])
    with pytest.raises(ValueError, match="shrink"):
        models.cnn((4, 4, 1), 10, channels=(2, 2, 2))


# ----------------------------------------------------------------------------- data


def test_advertising_is_shipped_with_the_seed_column_sums():
    ds = data.load_advertising()
    assert ds.features.shape == (200, 3) and ds.targets.shape == (200,)
    assert ds.feature_names == ("TV", "Radio", "Newspaper")
    np.testing.assert_allclose(ds.features.sum(axis=0), [29408.5, 4652.8, 6110.8], rtol=1e-12)
    np.testing.assert_allclose(ds.targets.sum(), 2804.5, rtol=1e-12)


def test_digits_from_scikit_learn():
    pytest.importorskip("sklearn")
    ds = data.load_digits()
    assert ds.features.shape == (1797, 64) and ds.features.max() == 1.0 and ds.features.min() == 0.0
    assert set(np.unique(ds.targets)) == set(range(10))


def write_idx(path, array, type_code, compress=False):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def test_idx_reader_on_files_the_test_writes(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(5,), dtype=np.uint8)
    write_idx(tmp_path / "images.idx", images, 0x08)
    write_idx(tmp_path / "labels.idx.gz", labels, 0x08, compress=True)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "images.idx"), images)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "labels.idx.gz"), labels)
    floats = rng.normal(size=(2, 3)).astype(np.float32)
    write_idx(tmp_path / "floats.idx", floats, 0x0D)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "floats.idx"), floats)
    ds = data.load_mnist_like(tmp_path / "images.idx", tmp_path / "labels.idx.gz")
    np.testing.assert_allclose(ds.features, images / 255.0, rtol=1e-6)
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(tmp_path / "bad.idx")
    (tmp_path / "short.idx").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="holds"):
        data.read_idx(tmp_path / "short.idx")


def test_synthetic_sets_and_minibatches():
    ds, truth = data.make_regression(jax.random.PRNGKey(0), 500, 3, noise=0.01)
    design = np.c_[ds.features, np.ones(500)]
    np.testing.assert_allclose(np.linalg.lstsq(design, ds.targets, rcond=None)[0], truth, atol=5e-3)
    blobs = data.make_classification(jax.random.PRNGKey(1), 300, 2, 3)
    assert np.bincount(blobs.targets).tolist() == [100, 100, 100]
    arrays = (np.arange(10), np.arange(10) * 10)
    batches = list(data.minibatches(jax.random.PRNGKey(0), arrays, 3))
    assert len(batches) == 3 and all(b[0].shape == (3,) for b in batches)
    seen = np.concatenate([b[0] for b in batches])
    assert len(set(seen.tolist())) == 9
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), seen * 10)  # rows stay paired
    again = np.concatenate([b[0] for b in data.minibatches(jax.random.PRNGKey(0), arrays, 3)])
    np.testing.assert_array_equal(seen, again)  # same key, same order
    other = np.concatenate([b[0] for b in data.minibatches(jax.random.PRNGKey(1), arrays, 3)])
    assert not np.array_equal(seen, other)
    tail = list(data.minibatches(jax.random.PRNGKey(0), arrays, 4, drop_last=False, shuffle=False))
    assert [len(b[0]) for b in tail] == [4, 4, 2] and tail[0][0].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="disagree"):
        list(data.minibatches(jax.random.PRNGKey(0), (np.arange(3), np.arange(4)), 2))
    train, test = data.train_test_split(jax.random.PRNGKey(0), arrays, 0.3)
    assert len(train[0]) == 7 and len(test[0]) == 3
    assert sorted(np.concatenate([train[0], test[0]]).tolist()) == list(range(10))
