#!/usr/bin/env python3
"""Golden fixture for pgan: one training step of the seed DCGAN computed independently in JAX (float64).

    python3 -m venv /tmp/jax-venv && /tmp/jax-venv/bin/pip install jax numpy
    /tmp/jax-venv/bin/python scripts/make-golden-fixtures.py [MNIST_DIR]

Writes Tests/DCGANParallelTests/Fixtures/golden-step.json. The Swift test (GoldenTests) runs the same step with
GANTrainer and compares losses, logits, generated images, every parameter gradient and the BatchNorm running
statistics.

Nothing here shares code with pgan: the model is written from docs/ARCHITECTURE.md §1 with jax.lax convolutions ("SAME"
padding; the transposed convolution is the exact vector-Jacobian product of the "same" convolution, which is what
Keras' Conv2DTranspose computes), BatchNorm, SELU, tanh, LeakyReLU and the sigmoid cross-entropy from their
definitions, and gradients from jax.grad. Only the random numbers are shared by construction: Philox-4x32-10 with
pgan's counter layout (block, sample index, step, stream | substream << 8) gives the initial weights, the noise and
the dropout masks, so both sides start from identical inputs.
"""
import gzip, json, os, struct, sys

import numpy as np
import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

SEED, BATCH, CODINGS = 42, 4, 100
STREAM_INIT, STREAM_D_NOISE, STREAM_G_NOISE, STREAM_DROPOUT = 1, 2, 3, 4
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
mnist = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared", "data", "mnist")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgan_philox  # noqa: E402  (the random numbers pgan draws; nothing of its model code)


def uniform(step, stream, substream, index, count):
    return pgan_philox.uniform(SEED, step, stream, substream, index, count)


def normal(step, stream, index, count):
    return pgan_philox.normal(SEED, step, stream, index, count)


sample = pgan_philox.sample


def glorot(shape, substream):
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.float32(np.sqrt(6.0 / (fan_in + fan_out)))
    u = uniform(0, STREAM_INIT, substream, 0, int(np.prod(shape)))
    return ((u * np.float32(2) - np.float32(1)) * limit).reshape(shape).astype(np.float32)


# ---- the seed model, channels-last --------------------------------------------------------------------------
G = {"generator.dense.kernel": glorot((CODINGS, 7 * 7 * 128), 0), "generator.dense.bias": np.zeros(6272, np.float32),
     "generator.batch_norm.gamma": np.ones(128, np.float32), "generator.batch_norm.beta": np.zeros(128, np.float32),
     "generator.conv_transpose.kernel": glorot((5, 5, 64, 128), 1), "generator.conv_transpose.bias": np.zeros(64, np.float32),
     "generator.batch_norm_1.gamma": np.ones(64, np.float32), "generator.batch_norm_1.beta": np.zeros(64, np.float32),
     "generator.conv_transpose_1.kernel": glorot((5, 5, 1, 64), 2), "generator.conv_transpose_1.bias": np.zeros(1, np.float32)}
D = {"discriminator.conv2d.kernel": glorot((5, 5, 1, 64), 10), "discriminator.conv2d.bias": np.zeros(64, np.float32),
     "discriminator.conv2d_1.kernel": glorot((5, 5, 64, 128), 11), "discriminator.conv2d_1.bias": np.zeros(128, np.float32),
     "discriminator.dense.kernel": glorot((6272, 1), 12), "discriminator.dense.bias": np.zeros(1, np.float32)}
moving = {"generator.batch_norm.moving_mean": np.zeros(128), "generator.batch_norm.moving_variance": np.ones(128),
          "generator.batch_norm_1.moving_mean": np.zeros(64), "generator.batch_norm_1.moving_variance": np.ones(64)}
DN = ("NHWC", "HWIO", "NHWC")


def conv_same(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (2, 2), "SAME", dimension_numbers=DN)


def conv_transpose_same(x, kernel):
    """Keras Conv2DTranspose(same, stride 2): the adjoint of the same-padded conv from (2h, 2w) to (h, w)."""
    n, h, w, _ = x.shape
    zeros = jnp.zeros((n, 2 * h, 2 * w, kernel.shape[2]), x.dtype)
    _, vjp = jax.vjp(lambda y: conv_same(y, kernel), zeros)
    return vjp(x)[0]


def selu(x):
    return 1.0507009873554805 * jnp.where(x > 0, x, 1.6732632423543772 * (jnp.exp(x) - 1))


def batch_norm(x, gamma, beta, mean, variance):
    return gamma * (x - mean) / jnp.sqrt(variance + 1e-3) + beta


def generator(p, z, stats):
    """stats: None for training mode (batch statistics, returned), else the running statistics."""
    h0 = (z @ p["generator.dense.kernel"] + p["generator.dense.bias"]).reshape(-1, 7, 7, 128)
    used = []
    def norm(x, name):
        if stats is None:
            m, v = x.mean((0, 1, 2)), x.var((0, 1, 2))
            used.append((name, m, v))
        else:
            m, v = stats[name + ".moving_mean"], stats[name + ".moving_variance"]
        return batch_norm(x, p[name + ".gamma"], p[name + ".beta"], m, v)
    a0 = norm(h0, "generator.batch_norm")
    s1 = selu(conv_transpose_same(a0, p["generator.conv_transpose.kernel"]) + p["generator.conv_transpose.bias"])
    b1 = norm(s1, "generator.batch_norm_1")
    image = jnp.tanh(conv_transpose_same(b1, p["generator.conv_transpose_1.kernel"]) + p["generator.conv_transpose_1.bias"])
    return image, used


def discriminator(p, x, masks):
    c1 = conv_same(x, p["discriminator.conv2d.kernel"]) + p["discriminator.conv2d.bias"]
    d1 = jnp.where(c1 < 0, 0.2 * c1, c1) * masks[0]
    c2 = conv_same(d1, p["discriminator.conv2d_1.kernel"]) + p["discriminator.conv2d_1.bias"]
    d2 = jnp.where(c2 < 0, 0.2 * c2, c2) * masks[1]
    return (d2.reshape(x.shape[0], -1) @ p["discriminator.dense.kernel"] + p["discriminator.dense.bias"])[:, 0]


def bce(logits, labels):
    return jnp.mean(jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def dropout_masks(step, phase, count):
    rate, keep = np.float32(0.3), np.float32(1) / (np.float32(1) - np.float32(0.3))
    masks = []
    for substream, shape in ((0, (14, 14, 64)), (1, (7, 7, 128))):
        rows = [uniform(step, STREAM_DROPOUT, substream + phase * 16, i, int(np.prod(shape))) for i in range(count)]
        masks.append(np.where(np.stack(rows) < rate, np.float32(0), keep).reshape((count,) + shape))
    return masks


def rmsprop(params, grads, lr=1e-3, rho=0.9, eps=1e-7):
    out = {}
    for k in params:
        v = (1 - rho) * grads[k] ** 2
        out[k] = params[k] - lr * grads[k] / (jnp.sqrt(v) + eps)
    return out


def load_reals():
    with gzip.open(os.path.join(mnist, "train-images-idx3-ubyte.gz")) as f:
        _, n, r, c = struct.unpack(">IIII", f.read(16))
        images = np.frombuffer(f.read(), np.uint8).reshape(n, r, c)
    with gzip.open(os.path.join(mnist, "train-labels-idx1-ubyte.gz")) as f:
        f.read(8)
        labels = np.frombuffer(f.read(), np.uint8)
    zeros = images[labels == 0][:BATCH].astype(np.float32)
    return (zeros / np.float32(127.5) - np.float32(1)).reshape(BATCH, 28, 28, 1)


f64 = lambda d: {k: jnp.asarray(v, jnp.float64) for k, v in d.items()}
Gp, Dp, stats = f64(G), f64(D), f64(moving)
reals = jnp.asarray(load_reals(), jnp.float64)

# D phase: fakes from G in inference mode (noise of samples 0..B-1), then reals; labels 0 then 1.
z_d = jnp.asarray(np.stack([normal(0, STREAM_D_NOISE, i, CODINGS) for i in range(BATCH)]), jnp.float64)
fakes_d, _ = generator(Gp, z_d, stats)
x = jnp.concatenate([fakes_d, reals])
labels_d = jnp.concatenate([jnp.zeros(BATCH), jnp.ones(BATCH)])
masks_d = [jnp.asarray(m, jnp.float64) for m in dropout_masks(0, 0, 2 * BATCH)]
d_loss_fn = lambda p: bce(discriminator(p, x, masks_d), labels_d)
d_loss, d_grads = jax.value_and_grad(d_loss_fn)(Dp)
d_logits = discriminator(Dp, x, masks_d)
Dp_updated = rmsprop(Dp, d_grads)

# G phase: fresh noise, G in training mode, through the updated (frozen) D with labels 1.
z_g = jnp.asarray(np.stack([normal(0, STREAM_G_NOISE, i, CODINGS) for i in range(BATCH)]), jnp.float64)
masks_g = [jnp.asarray(m, jnp.float64) for m in dropout_masks(0, 1, BATCH)]
g_loss_fn = lambda p: bce(discriminator(Dp_updated, generator(p, z_g, None)[0], masks_g), jnp.ones(BATCH))
g_loss, g_grads = jax.value_and_grad(g_loss_fn)(Gp)
fakes_g, used = generator(Gp, z_g, None)
g_logits = discriminator(Dp_updated, fakes_g, masks_g)
new_moving = {}
for name, m, v in used:
    new_moving[name + ".moving_mean"] = stats[name + ".moving_mean"] * 0.99 + m * 0.01
    new_moving[name + ".moving_variance"] = stats[name + ".moving_variance"] * 0.99 + v * 0.01


fixture = {
    "seed": SEED, "batch_size": BATCH, "optimizer": "rmsprop",
    "d_loss": float(d_loss), "g_loss": float(g_loss),
    "d_logits": [float(v) for v in d_logits], "g_logits": [float(v) for v in g_logits],
    "fakes_d_phase": sample(fakes_d, 256), "fakes_g_phase": sample(fakes_g, 256),
    "gradients": {k: sample(v) for k, v in list(d_grads.items()) + list(g_grads.items())},
    "moving": {k: sample(v, 128) for k, v in new_moving.items()},
    "updated_discriminator": {k: sample(v) for k, v in Dp_updated.items()},
}
out = os.path.join(root, "Tests", "DCGANParallelTests", "Fixtures", "golden-step.json")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump(fixture, f, indent=1, sort_keys=True)
print(f"{out}: d_loss {float(d_loss):.6f}, g_loss {float(g_loss):.6f}")
