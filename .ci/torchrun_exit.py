"""How often a two-rank torchrun program aborts at exit ("terminate called without an active exception", -6) after
its work, with a normal ending and with `diffinject.core.as_torchrun_rank`. Not part of CI (it takes minutes):

    python .ci/torchrun_exit.py 40        # 40 runs of each ending; prints the failures of each
"""

import subprocess, sys, tempfile
from pathlib import Path

PROGRAM = '''
import sys, torch, torch.distributed as dist
torch.set_num_threads(1)
dist.init_process_group('gloo')
net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
m = torch.nn.parallel.DistributedDataParallel(net)
opt = torch.optim.SGD(m.parameters(), 0.01)
for _ in range(30):
    loss = m(torch.randn(32, 64)).square().mean()
    opt.zero_grad(); loss.backward(); opt.step()
x = torch.ones(1)
dist.all_reduce(x)
if sys.argv[1] == 'as_torchrun_rank':
    from diffinject.core import as_torchrun_rank
    as_torchrun_rank(lambda: None)
dist.barrier(); dist.destroy_process_group()
'''


def failures(ending: str, n: int, script: Path) -> int:
    "How many of `n` two-rank runs of the program with `ending` exit non-zero."
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script), ending]
    return sum(subprocess.run(cmd, capture_output=True).returncode != 0 for _ in range(n))


if __name__ == '__main__':
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / 'program.py'
        script.write_text(PROGRAM)
        for ending in ('plain', 'as_torchrun_rank'):
            print(f'{ending}: {failures(ending, n, script)} of {n} runs failed', flush=True)
