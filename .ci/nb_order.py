#!/usr/bin/env python
"""Fail unless the notebooks are numbered in dependency order, one notebook per number.

Each notebook `nbs/NN_name.ipynb` has a number `NN` (the leading digits of its name), optionally followed by one
lower-case letter: `00a_files` comes after `00_core` and before `00b_checkpoints` and `01_data`, so that a module split
out of a notebook can sit right after it without renumbering the later ones. Two notebooks with the same number and
letter (`15_a` and `15_b`, or `16a_x` and `16a_y`) are an error. A notebook with `#| default_exp m` exports module `m`;
that module may import (anywhere in the file: at the top, or inside a function, where the import runs on a call) only
modules exported by notebooks earlier in that order, so that the notebooks read in order define everything before it
is used. Prints each problem on one line and exits with status 1.
Usage: python .ci/nb_order.py [notebook folder, default nbs] [package folder, default diffinject]
"""

import ast, json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nbs_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else root / 'nbs'
pkg_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else root / 'diffinject'
pkg = pkg_dir.name
problems = []

notebooks = sorted(
    p
    for p in nbs_dir.rglob('*.ipynb')
    if not p.name.startswith('_') and '.ipynb_checkpoints' not in p.parts and p.name != 'index.ipynb'
)
number, exported = {}, {}  # notebook -> its (number, letter); module -> ((number, letter), notebook)
for nb in notebooks:
    m = re.match(r'(\d+)([a-z]?)_', nb.name)
    if not m:
        problems.append(f'{nb.relative_to(nbs_dir.parent)}: no number (NN_ or NNa_) at the start of its name')
        continue
    n = (int(m.group(1)), m.group(2))
    for other, k in number.items():
        if k == n:
            problems.append(
                f'{nb.relative_to(nbs_dir.parent)} and {other.relative_to(nbs_dir.parent)} share the number '
                f'{m.group(1)}{m.group(2)}'
            )
    number[nb] = n
    for cell in json.loads(nb.read_text())['cells']:
        if cell['cell_type'] != 'code':
            continue
        for line in ''.join(cell['source']).splitlines():
            d = re.match(r'#\|\s*default_exp\s+(\S+)', line)
            if d:
                exported[d.group(1)] = (n, nb)


def imported(node):
    "The package modules an import statement names (relative, `diffinject.x`, `from diffinject import x`)."
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ''
        if node.level == 1:
            names = [f'{pkg}.{base}'] if base else [f'{pkg}.{a.name}' for a in node.names]
        elif base == pkg:
            names = [f'{pkg}.{a.name}' for a in node.names]
        elif base.startswith(pkg + '.'):
            names = [base]
        else:
            return []
    else:
        return []
    return [n.split('.')[1] for n in names if n.split('.')[0] == pkg and len(n.split('.')) > 1]


edges = 0
for mod, (n, nb) in sorted(exported.items(), key=lambda kv: kv[1][0]):
    f = pkg_dir / f'{mod}.py'
    if not f.exists():
        problems.append(f'{nb.relative_to(nbs_dir.parent)} exports {mod}, but {f} is missing (run nbdev_export)')
        continue
    for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
        for t in imported(node):
            if t == mod or t not in exported:
                continue
            edges += 1
            tn, tnb = exported[t]
            if tn >= n:
                problems.append(
                    f'{pkg}/{mod}.py ({nb.name}) imports {pkg}.{t} (line {node.lineno}), '
                    f'exported by the later notebook {tnb.name}'
                )

if problems:
    print('\n'.join(problems))
    sys.exit(1)
print(
    f'{len(number)} notebooks, one per number (and letter); the {len(exported)} modules import only modules of earlier notebooks '
    f'({edges} imports checked, inside functions too)'
)
