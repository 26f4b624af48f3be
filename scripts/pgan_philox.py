"""pgan's random numbers and fixture sampling, for the scripts that compute golden fixtures independently of pgan:
Philox-4x32-10 (Salmon et al. 2011) with pgan's counter layout (block, sample index, step, stream | substream << 8 |
(step >> 32) << 24) and key = the seed, as Sources/ParallelTensor/Random/Philox.swift draws them, so a reference and
pgan start from identical weights, noise and dropout masks.
"""
import numpy as np

M0, M1, W0, W1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57), 0x9E3779B9, 0xBB67AE85
MASK = np.uint64(0xFFFFFFFF)


def philox(c0, c1, c2, c3, key0, key1):
    c = [np.asarray(x, np.uint64) & MASK for x in (c0, c1, c2, c3)]
    c = np.broadcast_arrays(*c)
    c = [x.copy() for x in c]
    k0, k1 = key0, key1
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
        p0, p1 = M0 * c[0], M1 * c[2]
        c = [((p1 >> np.uint64(32)) ^ c[1] ^ np.uint64(k0)) & MASK, p1 & MASK,
             ((p0 >> np.uint64(32)) ^ c[3] ^ np.uint64(k1)) & MASK, p0 & MASK]
    return np.stack(c, -1)  # (..., 4) words


assert [hex(int(w)) for w in philox(0, 0, 0, 0, 0, 0)] == ["0x6627e8d5", "0xe169c58d", "0xbc57ac4c", "0x9b00dbd8"]


def words(seed, step, stream, substream, index, count):
    blocks = np.arange((count + 3) // 4)
    w = philox(blocks, index, step & 0xFFFFFFFF, stream | (substream << 8) | ((step >> 32) << 24),
               seed & 0xFFFFFFFF, seed >> 32)
    return w.reshape(-1)[:count] if w.ndim == 2 else w


def uniform(seed, step, stream, substream, index, count):
    """U[0, 1) floats: the top 24 bits of each word."""
    w = words(seed, step, stream, substream, index, count)
    return ((w >> np.uint64(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)).astype(np.float32)


def normal(seed, step, stream, index, count, substream=0):
    """Standard normals, Box-Muller on word pairs in float64, rounded to float32."""
    blocks = np.arange((count + 3) // 4)
    w = philox(blocks, index, step, stream | (substream << 8), seed & 0xFFFFFFFF, seed >> 32).astype(np.float64)
    out = []
    for a, b in ((0, 1), (2, 3)):
        u1 = (w[:, a] + 0.5) / 4294967296.0
        u2 = w[:, b] / 4294967296.0
        radius, angle = np.sqrt(-2 * np.log(u1)), 2 * np.pi * u2
        out.append((radius * np.cos(angle)).astype(np.float32))
        out.append((radius * np.sin(angle)).astype(np.float32))
    return np.stack(out, -1).reshape(-1)[:count]


def sample(array, count=64):
    """A fixed spread of elements (every k-th) and the root-mean-square of the whole tensor."""
    flat = np.asarray(array, np.float64).reshape(-1)
    stride = max(1, len(flat) // count)
    indices = list(range(0, len(flat), stride))[:count]
    return {"indices": indices, "values": [float(flat[i]) for i in indices],
            "rms": float(np.sqrt(np.mean(flat ** 2)))}
