#!/usr/bin/env python3
"""PyTorch's DCGAN example (pytorch/examples, dcgan/main.py) on CPU: the peer `pgan bench --model dcgan` is measured
against, and the model scripts/make-dcgan-golden-fixture.py checks pgan's numbers with.

    python3 Benchmarks/dcgan_torch.py --image-size 64 --channels 3 --batches 64 --threads 1,2

The networks are the example's, generalised from 64×64 to any power-of-two side ≥ 16 the way pgan's
`ModelDescription.dcganGenerator`/`dcganDiscriminator` are (one stride-2 layer per doubling from 4×4); `weights_init`
and the step are the example's: D on reals, D on `fake.detach()`, Adam(2e-4, β1 0.5) on D, the same fakes through D
for G, Adam on G. One image is one real image through that step (the example's iteration over a batch of B reals).
Reals are random tensors in [−1, 1]. Prints one line per point, "batch B threads T: X images/s", the median of
--rounds timed runs of --steps steps each after --warmup steps.
"""
import argparse, math, platform, statistics, time

import torch
import torch.nn as nn

NZ = 100


def generator(side, nc, ngf):
    doublings = int(math.log2(side)) - 2
    layers = [nn.ConvTranspose2d(NZ, ngf << (doublings - 1), 4, 1, 0, bias=False),
              nn.BatchNorm2d(ngf << (doublings - 1)), nn.ReLU(True)]
    for power in reversed(range(doublings - 1)):
        layers += [nn.ConvTranspose2d(ngf << (power + 1), ngf << power, 4, 2, 1, bias=False),
                   nn.BatchNorm2d(ngf << power), nn.ReLU(True)]
    layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(side, nc, ndf, sigmoid=True):
    doublings = int(math.log2(side)) - 2
    layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
    for power in range(1, doublings):
        layers += [nn.Conv2d(ndf << (power - 1), ndf << power, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf << power),
                   nn.LeakyReLU(0.2, inplace=True)]
    layers.append(nn.Conv2d(ndf << (doublings - 1), 1, 4, 1, 0, bias=False))
    if sigmoid:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class Trainer:
    def __init__(self, batch, side, nc, ngf, ndf):
        self.netG, self.netD = generator(side, nc, ngf), discriminator(side, nc, ndf)
        self.netG.apply(weights_init)
        self.netD.apply(weights_init)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.real_label, self.fake_label = torch.full((batch,), 1.0), torch.full((batch,), 0.0)
        self.batch = batch

    def step(self, real):
        netD, netG, criterion = self.netD, self.netG, self.criterion
        netD.zero_grad()
        errD_real = criterion(netD(real).view(-1), self.real_label)
        errD_real.backward()
        fake = netG(torch.randn(self.batch, NZ, 1, 1))
        errD_fake = criterion(netD(fake.detach()).view(-1), self.fake_label)
        errD_fake.backward()
        self.optimizerD.step()
        netG.zero_grad()
        errG = criterion(netD(fake).view(-1), self.real_label)
        errG.backward()
        self.optimizerG.step()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="64")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--generator-width", type=int, default=64)
    ap.add_argument("--discriminator-width", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    print(f"torch {torch.__version__} | {platform.processor() or platform.machine()}")
    torch.manual_seed(0)
    for batch in map(int, a.batches.split(",")):
        for threads in map(int, a.threads.split(",")):
            torch.set_num_threads(threads)
            trainer = Trainer(batch, a.image_size, a.channels, a.generator_width, a.discriminator_width)
            real = torch.rand(batch, a.channels, a.image_size, a.image_size) * 2 - 1
            for _ in range(a.warmup):
                trainer.step(real)
            rates = []
            for _ in range(a.rounds):
                start = time.perf_counter()
                for _ in range(a.steps):
                    trainer.step(real)
                rates.append(a.steps * batch / (time.perf_counter() - start))
            print(f"batch {batch} threads {threads}: {statistics.median(rates):.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
