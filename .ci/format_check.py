#!/usr/bin/env python
"""Fail unless the library is formatted by `ruff format` (settings in pyproject.toml), up to what nbdev writes itself.

`diffinject/` is exported from the notebooks, which are formatted with `ruff format nbs`. nbdev then joins the cells
with one blank line and wraps the `__all__` it generates its own way; `nbdev_export` rewrites both on every export,
so they are not ours to format. This script formats each module with `ruff format` (stdin, so nothing is written) and
compares the two with blank lines dropped and `__all__` read as a list: any other difference is code that was not
formatted, and is printed as the diff ruff would apply. Exits with status 1 if a module differs.
Usage: python .ci/format_check.py [package folder, default diffinject]
"""

import ast, difflib, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
pkg_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else root / 'diffinject'
GENERATED = {'_modidx.py'}  # nbdev's index of symbols (excluded in pyproject.toml too)


def normal(code: str) -> list:
    "The lines of `code` without blank lines, with the `__all__` assignment as one line holding its list."
    tree = ast.parse(code)
    alls = [
        n for n in tree.body if isinstance(n, ast.Assign) and [getattr(t, 'id', None) for t in n.targets] == ['__all__']
    ]
    lines = code.splitlines()
    for n in reversed(alls):
        lines[n.lineno - 1 : n.end_lineno] = [f'__all__ = {ast.literal_eval(n.value)!r}']
    return [line for line in lines if line.strip()]


bad = []
for f in sorted(pkg_dir.glob('*.py')):
    if f.name in GENERATED:
        continue
    code = f.read_text()
    r = subprocess.run(
        ['ruff', 'format', '--stdin-filename', str(f), '-'], input=code, capture_output=True, text=True, cwd=root
    )
    if r.returncode != 0:
        sys.exit(f'ruff format failed on {f}: {r.stderr.strip()}')
    a, b = normal(code), normal(r.stdout)
    if a != b:
        bad.append(f)
        print(f'{f}: not formatted (run `ruff format nbs` and `nbdev_export`):')
        print('\n'.join(list(difflib.unified_diff(a, b, 'as exported', 'formatted', lineterm='', n=1))[:40]))
if bad:
    sys.exit(1)
print(
    f'{len(list(pkg_dir.glob("*.py"))) - len(GENERATED)} modules of {pkg_dir.name}/ formatted by ruff format '
    "(up to nbdev's blank lines between cells and its __all__)"
)
