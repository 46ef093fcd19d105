#!/usr/bin/env python
"""Fail if the modules of `diffinject/` import each other in a cycle at module level.

Reads every `diffinject/*.py` with `ast` and collects the imports that run when the module is imported: statements at
the top level of the file, also inside a top-level `if` / `try` / `with` (imports inside functions and classes run
later, on a call, and are not counted). `from .x import y`, `from diffinject.x import y`, `import diffinject.x` and
`from . import x` all count as an edge to `x`. Prints each cycle found, as `a -> b -> a`, and exits with status 1.
Usage: python .ci/import_cycles.py [package folder, default diffinject]
"""

import ast, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
pkg_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else root / 'diffinject'
pkg = pkg_dir.name
modules = {p.stem for p in pkg_dir.glob('*.py') if p.stem != '__init__'}


def module_level(body):
    "The statements of `body` that run at import time: top level, and inside top-level if / try / with blocks."
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ('body', 'orelse', 'finalbody'):
                yield from module_level(getattr(node, block, []))
            for h in getattr(node, 'handlers', []):
                yield from module_level(h.body)


def imported(node):
    "The package modules an import statement names."
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ''
        if node.level == 1 or base == pkg or base.startswith(pkg + '.'):
            base = base[len(pkg) + 1 :] if base.startswith(pkg) else base
            names = [base] if base else [a.name for a in node.names]  # `from . import x`
        else:
            return []
        names = [f'{pkg}.{n}' for n in names]
    else:
        return []
    out = []
    for n in names:
        parts = n.split('.')
        if parts[0] == pkg and len(parts) > 1 and parts[1] in modules:
            out.append(parts[1])
    return out


graph = {}
for m in sorted(modules):
    tree = ast.parse((pkg_dir / f'{m}.py').read_text(), filename=f'{pkg}/{m}.py')
    graph[m] = sorted({t for node in module_level(tree.body) for t in imported(node) if t != m})

cycles, state, stack = [], {}, []


def visit(m):
    state[m] = 'open'
    stack.append(m)
    for t in graph[m]:
        if state.get(t) == 'open':
            cycles.append(stack[stack.index(t) :] + [t])
        elif t not in state:
            visit(t)
    stack.pop()
    state[m] = 'done'


for m in graph:
    if m not in state:
        visit(m)

if cycles:
    for c in cycles:
        print(f'import cycle at module level: {" -> ".join(c)}')
    sys.exit(1)
print(
    f'no import cycle among the {len(graph)} modules of {pkg}/ '
    f'({sum(map(len, graph.values()))} module-level imports between them)'
)
