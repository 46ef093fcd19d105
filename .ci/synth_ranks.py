#!/usr/bin/env python
"""Synthesis under torchrun: images/s of one process against 2 ranks (gloo on the CPU, 1 thread each), same pairs.

    python .ci/synth_ranks.py              # 64 images, 25 steps, the shipped Colored MNIST model: about 2 minutes
    python .ci/synth_ranks.py --images 16  # quicker

Rank r of W synthesises the batches b = r (mod W) (`synth.synthesize`), so the ratio is what sharding buys on this
machine. Never needed by the tests (`12_synth` checks that both give the same images).
"""

import argparse, os, subprocess, sys, tempfile, time
from pathlib import Path


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', type=int, default=64, help='synthetic images')
    p.add_argument('--steps', type=int, default=25, help='DDIM steps (inversion and sampling)')
    p.add_argument('--batch_size', type=int, default=8)
    p.add_argument('--ranks', type=int, default=2)
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    p.add_argument('--data', default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(a):
    "One process (or one rank): synthesise `a.images` images into `a.worker`; rank 0 prints the seconds it took."
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from diffinject.train_helpers import init_distributed
    from diffinject.core import dist_barrier
    from diffinject.layout import load_split
    from diffinject.pretrained import load_pretrained
    from diffinject.synth import synthesize, SynthConfig
    from diffinject.inject import InjectConfig

    rank, world, _ = init_distributed()
    train = load_split(a.data, 'cmnist', 'train', 0.05, transform=None)
    model, ac = load_pretrained('cmnist')
    rng = np.random.default_rng(0)
    content, style = rng.choice(len(train), 20, replace=False), rng.choice(len(train), 200, replace=False)
    dist_barrier()
    t0 = time.perf_counter()
    synthesize(
        model,
        ac,
        train,
        content,
        style,
        a.worker,
        0.05,
        SynthConfig(n=a.images, batch_size=a.batch_size, image_fit='pad'),
        InjectConfig(steps=a.steps, gamma=0.7, t_edit=200, t_boost=200),
        progress=False,
    )
    if rank == 0:
        print(f'SECONDS {time.perf_counter() - t0:.3f} WORLD {world}', flush=True)


def run(cmd):
    cmd = [str(c) for c in cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    if r.returncode:
        sys.exit(f'{" ".join(cmd)} failed:\n{r.stderr[-2000:]}')
    return float(next(line.split()[1] for line in r.stdout.splitlines() if line.startswith('SECONDS')))


def main(argv=None):
    a = parse(argv)
    if a.worker:  # a torchrun rank ends as diffinject_run's ranks do: leave the group, flush, os._exit (00_core)
        from diffinject.core import as_torchrun_rank

        return as_torchrun_rank(lambda: worker(a)) if int(os.environ.get('WORLD_SIZE', 1)) > 1 else worker(a)
    from diffinject.colored_mnist import build_colored_mnist

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        build_colored_mnist(d / 'data', ratios=(0.05,))
        base = [__file__, '--data', d / 'data', '--images', a.images, '--steps', a.steps, '--batch_size', a.batch_size]
        one = run([sys.executable, *base, '--worker', d / 'one'])
        many = run(
            [
                sys.executable,
                '-m',
                'torch.distributed.run',
                '--standalone',
                '--nproc_per_node',
                a.ranks,
                *base,
                '--worker',
                d / 'many',
            ]
        )
    print(
        f'synthesis of {a.images} images ({a.steps} steps, batch {a.batch_size}), 1 thread per process: '
        f'1 process {a.images / one:.2f} images/s, {a.ranks} ranks {a.images / many:.2f} images/s -> {one / many:.2f}x'
    )


if __name__ == '__main__':
    main([str(x) for x in sys.argv[1:]])
