#!/usr/bin/env python
"""GPU check of DiffInject's stages: images/s in fp32 and bf16 for diffusion training (the `paper` Colored MNIST
preset), the classifiers, bias mining and synthesis, then the side-by-side ratios of `diffinject_bench compare` on
the device.

    python .ci/gpu_check.py                 # on a GPU (under 8 minutes on an H200)
    python .ci/gpu_check.py --smoke         # the same code on the CPU with the tiny preset, in seconds
    python .ci/gpu_check.py --gd_path DIR   # also compare with guided-diffusion from a checkout at DIR

Never needed by the tests; `nbs/26a_bench_commands.ipynb` runs the smoke version.
"""

import argparse, json, sys, time
import numpy as np
import torch

from diffinject.config import _paper

# the diffusion settings of the pipeline's `paper` preset for Colored MNIST, from diffinject.config (not a copy)
PAPER_CMNIST = _paper('cmnist')['diffusion']
PRECISIONS = ('fp32', 'bf16')


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--smoke', action='store_true', help='tiny preset and batches on the CPU: a few seconds')
    p.add_argument('--device', default=None, help="default: 'cuda' when available ('cpu' with --smoke)")
    p.add_argument('--steps', type=int, default=300, help='timed diffusion training steps per precision')
    p.add_argument('--gd_path', default=None, help='folder of an openai/guided-diffusion checkout (optional)')
    p.add_argument('--json', default=None, help='also write every number to this JSON file')
    return p.parse_args(argv)


def sync(dev):
    if dev.type == 'cuda':
        torch.cuda.synchronize(dev)


def timed(fn, dev):
    "Seconds of one call of `fn` on `dev` (synchronised)."
    sync(dev)
    t0 = time.perf_counter()
    fn()
    sync(dev)
    return time.perf_counter() - t0


def coloured_digits(n):
    "n Colored-MNIST-like images in memory (the shipped MNIST-5k digits, each in a random colour), uint8 [N,28,28,3]."
    from diffinject.core import asset_path

    with np.load(asset_path('mnist_5k.npz')) as z:
        gray = z['images'][:n].astype(np.float32) / 255
    rgb = np.random.default_rng(0).uniform(0.2, 1, (len(gray), 1, 1, 3)).astype(np.float32)
    return (gray[..., None] * rgb * 255).round().astype(np.uint8)


def stage_diffusion(a, dev, precision, data):
    "Train the diffusion preset for a.steps steps (after a warm-up); returns (images/s, EMA model, alphas_cumprod)."
    from diffinject.train import build_model_and_diffusion, DiffusionTrainer, TrainConfig

    model, diffusion, _ = build_model_and_diffusion(
        a.preset, p2_gamma=PAPER_CMNIST['p2_gamma'], p2_k=PAPER_CMNIST['p2_k']
    )
    cfg = TrainConfig(
        batch_size=a.batch_size,
        lr=PAPER_CMNIST['lr'],
        ema_rate=PAPER_CMNIST['ema_rate'],
        image_fit=PAPER_CMNIST['image_fit'],
        amp=precision == 'bf16',
        ckpt_every=0,
        sample_every=0,
        log_every=10,
    )
    tr = DiffusionTrainer(model, diffusion, data, cfg, device=dev, show_progress=False)
    tr.fit(a.warmup)  # allocator, cuDNN autotuning
    dt = timed(lambda: tr.fit(a.warmup + a.steps), dev)
    return a.steps * a.batch_size / dt, tr.ema, diffusion.alphas_cumprod


def stage_classifiers(a, dev, precision):
    "Images/s of training the CMNIST MLP and a ResNet-18 at 32 px, and of mining (per-sample loss) with the MLP."
    from diffinject.classifiers import CMNISTMLP, resnet18
    from diffinject.classifier_training import FitConfig, train_classifier, toy_biased_dataset, per_sample_loss

    out = {}
    for name, model, size, bs in (
        ('classifier MLP (CMNIST)', CMNISTMLP(), 28, a.mlp_batch),
        ('classifier ResNet-18 (32 px)', resnet18(10), 32, a.resnet_batch),
    ):
        ds = toy_biased_dataset(max(bs * 4, 64), 0.05, size=size)
        fit = dict(bs=bs, lr=1e-3, eval_every=10**9, preload=True, precision=precision)
        kw = dict(device=dev, show_progress=False)
        train_classifier(model, ds, cfg=FitConfig(steps=a.cls_warmup, **fit), **kw)
        out[name] = (
            a.cls_steps
            * bs
            / timed(lambda: train_classifier(model, ds, cfg=FitConfig(steps=a.cls_steps, **fit), **kw), dev)
        )
        if name.startswith('classifier MLP'):
            big = toy_biased_dataset(a.mine_n, 0.05, size=size)
            per_sample_loss(model, big, device=dev, precision=precision)
            out['bias mining (per-sample loss, MLP)'] = a.mine_n / timed(
                lambda: per_sample_loss(model, big, device=dev, precision=precision), dev
            )
    return out


def stage_synthesis(a, dev, precision, ema, ac):
    "Images/s of DiffInject synthesis: contents inverted once, style inversion + injected sampling of a batch of pairs."
    from diffinject.inject import InjectConfig, invert_content, select_h, diff_inject

    g = torch.Generator().manual_seed(0)
    C, S = ema.in_channels, ema.image_size
    style = (torch.rand(a.synth_pairs, C, S, S, generator=g) * 2 - 1).to(dev)
    content = (torch.rand(a.synth_contents, C, S, S, generator=g) * 2 - 1).to(dev)
    cfg = InjectConfig(gamma=0.3, steps=a.synth_steps, precision=precision)
    which = torch.arange(a.synth_pairs) % a.synth_contents

    def run():
        h = invert_content(ema, content, ac, a.synth_steps, precision=precision)
        return diff_inject(ema, style, ac, content_h={t: v.to(dev) for t, v in select_h(h, which).items()}, cfg=cfg)

    with torch.no_grad():
        run()
        return a.synth_pairs / timed(run, dev)


def main(argv=None):
    a = parse(argv)
    dev = torch.device(a.device or ('cpu' if a.smoke or not torch.cuda.is_available() else 'cuda'))
    if a.smoke:
        a.preset, a.batch_size, a.steps, a.warmup = 'tiny_32', 4, 2, 1
        a.mlp_batch, a.resnet_batch, a.cls_steps, a.cls_warmup, a.mine_n = 8, 4, 2, 1, 64
        a.synth_pairs, a.synth_contents, a.synth_steps = 2, 1, 2
        torch.set_num_threads(1)
    else:
        a.preset, a.batch_size, a.warmup = PAPER_CMNIST['preset'], PAPER_CMNIST['batch_size'], 20
        a.mlp_batch, a.resnet_batch, a.cls_steps, a.cls_warmup, a.mine_n = 256, 256, 100, 10, 20_000
        a.synth_pairs, a.synth_contents, a.synth_steps = 64, 8, 50
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'
    print(
        f'gpu_check: {dev} ({name}), torch {torch.__version__}, preset {a.preset}, batch {a.batch_size}, '
        f'{a.steps} timed steps',
        flush=True,
    )
    t_all, rates = time.perf_counter(), {}
    from diffinject.images import ArrayImages

    data = ArrayImages(coloured_digits(5000), 'coloured MNIST-5k')
    for p in PRECISIONS:
        t0 = time.perf_counter()
        r, ema, ac = stage_diffusion(a, dev, p, data)
        rates.setdefault('diffusion training', {})[p] = r
        print(f'  [{p}] diffusion training: {r:9.1f} img/s ({time.perf_counter() - t0:.0f} s)', flush=True)
        for k, v in stage_classifiers(a, dev, p).items():
            rates.setdefault(k, {})[p] = v
            print(f'  [{p}] {k}: {v:9.1f} img/s', flush=True)
        r = stage_synthesis(a, dev, p, ema, ac)
        rates.setdefault('synthesis', {})[p] = r
        print(
            f'  [{p}] synthesis ({a.synth_steps} + {a.synth_steps} steps, {a.synth_pairs} pairs): {r:9.2f} img/s',
            flush=True,
        )
    print(f"\n{'stage':<40} {'fp32 img/s':>12} {'bf16 img/s':>12} {'bf16/fp32':>10}")
    for k, v in rates.items():
        print(f"{k:<40} {v['fp32']:12.1f} {v['bf16']:12.1f} {v['bf16'] / v['fp32']:10.2f}")
    print('\ncompare (fp32, side by side):', flush=True)
    from diffinject.bench_commands import bench_compare, CompareConfig

    kw = (
        dict(cfg=CompareConfig.smoke())
        if a.smoke
        else dict(
            cfg=CompareConfig(
                batch_size=64,
                train_batch=64,
                inject_batch=64,
                rounds=5,
                synth_pairs=32,
                synth_contents=4,
                synth_steps=20,
            ),
            threads=None,
        )
    )
    cmp = bench_compare(device=dev, gd_path=a.gd_path, **kw)
    print(f'gpu_check done in {time.perf_counter() - t_all:.0f} s')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(dict(device=str(dev), name=name, rates=rates, compare=cmp), f, indent=1, default=str)
    return 0


if __name__ == '__main__':
    sys.exit(main())
