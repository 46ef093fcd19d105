"""The house's size rules, checked: modules, functions and export cells small enough to read.

- a module of diffinject/ at most 450 lines (the UNet and nbdev's generated index excepted);
- a function or method at most 60 lines and 12 parameters (self / cls not counted, *args and **kwargs counted once);
- an export cell at most 60 non-blank lines, and the median export cell at most 12.

Prints the numbers; exits 1 naming every file, function or cell that breaks a rule."""

import ast
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE_LINES, EXEMPT = 450, {'unet.py', '_modidx.py'}
FUNC_LINES, FUNC_PARAMS = 60, 12
CELL_LINES, CELL_MEDIAN = 60, 12


def n_params(f: ast.FunctionDef) -> int:
    "Parameters of `f`, less a leading self / cls; *args and **kwargs count one each."
    a = f.args
    n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
    first = (a.posonlyargs + a.args)[:1]
    return n - bool(first and first[0].arg in ('self', 'cls'))


def module_problems(pkg: Path) -> tuple:
    "(number of modules, problems) of the modules' and functions' sizes."
    out, mods = [], sorted(pkg.glob('*.py'))
    for p in mods:
        text, name = p.read_text(), p.relative_to(pkg.parent)
        if p.name not in EXEMPT and len(text.splitlines()) > MODULE_LINES:
            out.append(f'{name}: {len(text.splitlines())} lines (at most {MODULE_LINES})')
        for f in ast.walk(ast.parse(text)):
            if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            where, lines, k = f'{name}:{f.lineno} {f.name}', f.end_lineno - f.lineno + 1, n_params(f)
            if lines > FUNC_LINES:
                out.append(f'{where}: {lines} lines (at most {FUNC_LINES})')
            if k > FUNC_PARAMS:
                out.append(f'{where}: {k} parameters (at most {FUNC_PARAMS}: group settings in a dataclass)')
    return len(mods), out


def export_cells(nbs: Path) -> list:
    "(notebook, cell index, non-blank lines) of every `#| export` cell."
    out = []
    for nb in sorted(nbs.glob('*.ipynb')):
        for i, c in enumerate(json.loads(nb.read_text())['cells']):
            s = ''.join(c['source'])
            if c['cell_type'] == 'code' and s.lstrip().startswith('#| export'):
                out.append((nb.name, i, sum(bool(x.strip()) for x in s.splitlines())))
    return out


def main(root: Path = ROOT) -> int:
    n_mods, problems = module_problems(root / 'diffinject')
    cells = export_cells(root / 'nbs')
    problems += [f'nbs/{nb} cell {i}: {n} lines (at most {CELL_LINES})' for nb, i, n in cells if n > CELL_LINES]
    med = statistics.median(n for *_, n in cells)
    if med > CELL_MEDIAN:
        problems.append(f'nbs/: median export cell {med} lines (at most {CELL_MEDIAN})')
    print(f'{n_mods} modules, {len(cells)} export cells (median {med} lines): {len(problems)} size problems')
    for p in problems:
        print('  ' + p)
    return 1 if problems else 0


def self_test() -> int:
    "The checker on a made-up house: clean, then with each rule broken once; it must pass, then fail naming each."
    import contextlib
    import io
    import tempfile

    def run(root):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            return main(root), out.getvalue()

    def cell(n):
        return {'cell_type': 'code', 'source': ['#| export\n'] + [f'x{i} = {i}\n' for i in range(n - 1)]}

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / 'diffinject').mkdir()
        (root / 'nbs').mkdir()
        ok = 'def f(a, b):\n    return a + b\n'
        (root / 'diffinject' / 'small.py').write_text(ok)
        nb = {'cells': [cell(5), cell(5), cell(5)]}
        (root / 'nbs' / '00_a.ipynb').write_text(json.dumps(nb))
        code, out = run(root)
        assert code == 0 and '0 size problems' in out, out
        args = ', '.join(f'a{i}' for i in range(FUNC_PARAMS + 1))
        long_body = ''.join(f'    y{i} = {i}\n' for i in range(FUNC_LINES))
        (root / 'diffinject' / 'many.py').write_text(f'def wide(self, {args}):\n    pass\n\n\ndef long():\n{long_body}')
        (root / 'diffinject' / 'big.py').write_text('x = 0\n' * (MODULE_LINES + 1))
        nb['cells'].append(cell(CELL_LINES + 1))
        (root / 'nbs' / '00_a.ipynb').write_text(json.dumps(nb))
        code, out = run(root)
        want = [
            'many.py:1 wide: 13 parameters',
            'many.py:5 long: 61 lines',
            'big.py: 451 lines',
            '00_a.ipynb cell 3: 61',
        ]
        assert code == 1 and all(w in out for w in want), out
        nb['cells'] = [cell(CELL_MEDIAN + 2)] * 3
        (root / 'nbs' / '00_a.ipynb').write_text(json.dumps(nb))
        assert 'median export cell 14 lines' in run(root)[1]
    print('house_check self-test: a clean house passes; each broken rule fails, named')
    return 0


if __name__ == '__main__':
    sys.exit(self_test() if sys.argv[1:] == ['--self-test'] else main())
