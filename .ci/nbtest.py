"""Run the README's test command, `nbdev_test`, once per notebook and count the results.

nbdev_test prints only `Success.` or a list of failed notebooks; CI wants `N passed, N failed`.
Usage: python .ci/nbtest.py [--flags "slow gpu"] [--jobs 2] [glob]
"""

import argparse, os, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

root = Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument('glob', nargs='?', default='*.ipynb')
ap.add_argument('--flags', default='')
ap.add_argument('--jobs', type=int, default=2)
args = ap.parse_args()

nbs = sorted(
    p for p in (root / 'nbs').rglob(args.glob) if not p.name.startswith('_') and '.ipynb_checkpoints' not in p.parts
)
if not nbs:
    sys.exit(f'no notebooks match nbs/{args.glob}')
# the longest notebooks start first, so that with several jobs no long one starts last and runs alone at the end
LONG_FIRST = [
    '19_pipeline',
    '18b_runner',
    '11_inject',
    '03_oracles',
    '10_train',
    '21_corrupted_mnist',
    '12_synth',
    '20_cmnist',
    '25_report',
]
nbs.sort(key=lambda p: LONG_FIRST.index(p.stem) if p.stem in LONG_FIRST else len(LONG_FIRST))


def run(nb):
    t0 = time.time()
    cmd = ['nbdev_test', '--path', str(nb), '--n_workers', '0', '--do_print']
    if args.flags:
        cmd += ['--flags', args.flags]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    return nb, r, time.time() - t0


passed = failed = 0
t_all = time.time()
with ThreadPoolExecutor(args.jobs) as ex:
    for f in as_completed([ex.submit(run, nb) for nb in nbs]):
        nb, r, dt = f.result()
        ok = r.returncode == 0
        passed += ok
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {nb.relative_to(root)} {dt:.1f}s", flush=True)
        if not ok:
            print(r.stdout[-4000:], r.stderr[-8000:], sep='\n', flush=True)
print(f'{passed} passed, {failed} failed in {time.time() - t_all:.0f}s')
sys.exit(1 if failed else 0)
