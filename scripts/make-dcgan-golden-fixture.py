#!/usr/bin/env python3
"""Golden fixture for pgan's `--model dcgan`: one training step of PyTorch's DCGAN example, in float64.

    python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch numpy
    /tmp/torch-venv/bin/python scripts/make-dcgan-golden-fixture.py

Writes Tests/DCGANParallelTests/Fixtures/dcgan-golden-step.json, which GoldenTests compares with one
`GANTrainer` step of `GANModel.dcgan(imageSide: 32, channels: 3, generatorWidth: 8, discriminatorWidth: 8)`:
losses, logits, the fakes, every parameter gradient, the BatchNorm running statistics of both networks after the step
and the weights after Adam.

The model and the step are PyTorch's own: `nn.ConvTranspose2d`/`nn.Conv2d` (bias=False), `nn.BatchNorm2d`,
`nn.ReLU`/`nn.LeakyReLU(0.2)`/`nn.Tanh`/`nn.Sigmoid`, `nn.BCELoss` and `torch.optim.Adam(lr=2e-4, betas=(0.5,
0.999))`, written and stepped as pytorch/examples' dcgan/main.py does (D on reals, D on `fake.detach()`, D's step,
the same fakes through the updated D for G, G's step; both networks in training mode throughout). Only the inputs are
pgan's, by construction: the initial weights (N(0, 0.02) kernels and N(1, 0.02) BatchNorm gammas, the example's
`weights_init`) and the noise come from Philox with pgan's counters (scripts/pgan_philox.py), and the reals from a
fixed integer formula.
"""
import json, os, sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgan_philox  # noqa: E402

torch.set_default_dtype(torch.float64)
SEED, BATCH, NZ, SIDE, NC, NGF, NDF = 42, 4, 100, 32, 3, 8, 8
STREAM_INIT, STREAM_G_NOISE = 1, 3
G_SUBSTREAM, D_SUBSTREAM = 0, 10  # GANTrainer.networks
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generator():
    # 32×32: 1 → 4 → 8 → 16 → 32, as the example's 64×64 generator with one doubling fewer.
    return nn.Sequential(
        nn.ConvTranspose2d(NZ, NGF * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(NGF * 4), nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 2), nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF), nn.ReLU(True),
        nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False), nn.Tanh())


def discriminator_logits():
    # The example's discriminator without its final nn.Sigmoid, which `discriminate` applies.
    return nn.Sequential(
        nn.Conv2d(NC, NDF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 4, 1, 4, 1, 0, bias=False))


def pgan_names(net, prefix):
    """pgan's (Keras-style) parameter names for a Sequential's conv and BatchNorm modules, in model order."""
    names, convs, norms = {}, 0, 0
    for module in net:
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            kind = "conv2d" if isinstance(module, nn.Conv2d) else "conv_transpose"
            names[module] = f"{prefix}.{kind}" + (f"_{convs}" if convs else "")
            convs += 1
        elif isinstance(module, nn.BatchNorm2d):
            names[module] = f"{prefix}.batch_norm" + (f"_{norms}" if norms else "")
            norms += 1
    return names


def to_pgan(weight):
    """PyTorch conv (out, in, kh, kw) or transposed conv (in, out, kh, kw) → pgan's (kh, kw, in, out) or
    (kh, kw, out, in): the same permutation for both."""
    return weight.permute(2, 3, 1, 0)


def initialise(net, names, substream):
    """pgan's `Network.initialize` with PyTorch conventions: the k-th kernel N(0, 0.02) from substream base + k,
    the b-th BatchNorm's gamma N(1, 0.02) from substream base + b at index 1, beta 0."""
    kernels = norms = 0
    with torch.no_grad():
        for module in net:
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                shape = to_pgan(module.weight).shape
                values = pgan_philox.normal(SEED, 0, STREAM_INIT, 0, int(np.prod(shape)), substream + kernels)
                pgan = torch.tensor(np.float32(0.02) * values.reshape(shape), dtype=torch.float32)
                module.weight.copy_(pgan.permute(3, 2, 0, 1).to(torch.float64))
                kernels += 1
            elif isinstance(module, nn.BatchNorm2d):
                values = pgan_philox.normal(SEED, 0, STREAM_INIT, 1, module.num_features, substream + norms)
                module.weight.copy_(torch.tensor(np.float32(1) + np.float32(0.02) * values, dtype=torch.float32))
                module.bias.zero_()
                norms += 1


netG, netDlogits = generator(), discriminator_logits()
g_names, d_names = pgan_names(netG, "generator"), pgan_names(netDlogits, "discriminator")
initialise(netG, g_names, G_SUBSTREAM)
initialise(netDlogits, d_names, D_SUBSTREAM)


def discriminate(x):
    logits = netDlogits(x).view(-1)
    return logits, torch.sigmoid(logits)


noise = torch.tensor(np.stack([pgan_philox.normal(SEED, 0, STREAM_G_NOISE, i, NZ) for i in range(BATCH)]),
                     dtype=torch.float32).to(torch.float64).view(BATCH, NZ, 1, 1)
# GoldenTests builds the same reals: element i of the NHWC batch is ((i·7919) mod 2001 − 1000) / 1000 in float32.
flat = np.arange(BATCH * SIDE * SIDE * NC)
reals_nhwc = (((flat * 7919) % 2001 - 1000).astype(np.float32) / np.float32(1000)).reshape(BATCH, SIDE, SIDE, NC)
real = torch.tensor(reals_nhwc).to(torch.float64).permute(0, 3, 1, 2)

criterion = nn.BCELoss()
optimizerD = torch.optim.Adam(netDlogits.parameters(), lr=2e-4, betas=(0.5, 0.999))
optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
ones, zeros = torch.ones(BATCH), torch.zeros(BATCH)

# (1) Update D: maximize log(D(x)) + log(1 - D(G(z))), as dcgan/main.py.
netDlogits.zero_grad()
real_logits, output = discriminate(real)
errD_real = criterion(output, ones)
errD_real.backward()
fake = netG(noise)
fake_logits, output = discriminate(fake.detach())
errD_fake = criterion(output, zeros)
errD_fake.backward()
d_gradients = {m: m.weight.grad.clone() for m in d_names}
d_norm_gradients = {m: (m.weight.grad.clone(), m.bias.grad.clone()) for m in d_names if isinstance(m, nn.BatchNorm2d)}
optimizerD.step()

# (2) Update G: maximize log(D(G(z))), through the updated D.
netG.zero_grad()
g_logits, output = discriminate(fake)
errG = criterion(output, ones)
errG.backward()
optimizerG.step()

sample = pgan_philox.sample


def tensors(names, gradients):
    out = {}
    for module, name in names.items():
        if isinstance(module, nn.BatchNorm2d):
            gamma, beta = (module.weight, module.bias) if gradients is None else (module.weight.grad, module.bias.grad)
            out[name + ".gamma"], out[name + ".beta"] = gamma.detach(), beta.detach()
        else:
            weight = module.weight if gradients is None else gradients.get(module, module.weight.grad)
            out[name + ".kernel"] = to_pgan(weight.detach())
    return out


d_grad_tensors = tensors(d_names, d_gradients)
for module, (gamma, beta) in d_norm_gradients.items():
    d_grad_tensors[d_names[module] + ".gamma"], d_grad_tensors[d_names[module] + ".beta"] = gamma, beta
# The running statistics less what is left of their initial values (mean 0, variance 1) after the step's updates (G:
# one, D: three), so the batch statistics' share — small beside the initial variance — is what gets compared.
running = {}
for names, updates in ((g_names, 1), (d_names, 3)):
    for module, name in names.items():
        if isinstance(module, nn.BatchNorm2d):
            running[name + ".moving_mean"] = module.running_mean
            running[name + ".moving_variance"] = module.running_var - 0.9 ** updates
nhwc = lambda images: images.detach().permute(0, 2, 3, 1)
fixture = {
    "seed": SEED, "batch_size": BATCH, "image_side": SIDE, "channels": NC, "generator_width": NGF,
    "discriminator_width": NDF, "reals": "((i*7919) % 2001 - 1000) / 1000",
    # pgan reports the discriminator's loss as the mean over its 2B samples: (errD_real + errD_fake) / 2.
    "d_loss": (errD_real + errD_fake).item() / 2, "g_loss": errG.item(),
    "d_logits": torch.cat([fake_logits, real_logits]).tolist(), "g_logits": g_logits.tolist(),
    "fakes": sample(nhwc(fake).numpy(), 256),
    "gradients": {k: sample(v.numpy()) for k, v in list(d_grad_tensors.items()) + list(tensors(g_names, {}).items())},
    "running": {k: sample(v.numpy(), 128) for k, v in running.items()},
    "updated": {k: sample(v.numpy()) for k, v in list(tensors(d_names, None).items()) + list(tensors(g_names, None).items())},
}
out = os.path.join(root, "Tests", "DCGANParallelTests", "Fixtures", "dcgan-golden-step.json")
with open(out, "w") as f:
    json.dump(fixture, f, indent=1, sort_keys=True)
print(f"{out}: d_loss {fixture['d_loss']:.6f}, g_loss {fixture['g_loss']:.6f}")
