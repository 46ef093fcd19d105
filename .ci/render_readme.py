"""Render README.md from nbs/index.ipynb without Quarto (nbdev_readme needs Quarto, which cannot be installed here).

Hidden cells (`#| hide`) are dropped, nbdev directives are stripped, code cells become ```python fences and their saved
text outputs ``` blocks. Nothing is executed: the notebook's saved outputs are used, as nbdev_readme does.
Usage: python .ci/render_readme.py  (CI checks README.md is up to date with `--check`)
"""

import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nb = json.loads((root / 'nbs' / 'index.ipynb').read_text())
directive = re.compile(r'^\s*#\s*\|')


def src(c):
    return ''.join(c['source'])


def hidden(c):
    return any(re.match(r'^\s*#\s*\|\s*(hide|exporti?|eval:\s*false)\b', l) for l in src(c).splitlines())


out = []
for c in nb['cells']:
    if hidden(c):
        continue
    s = '\n'.join(l for l in src(c).splitlines() if not directive.match(l)).strip('\n')
    if c['cell_type'] == 'markdown':
        out.append(s)
    elif c['cell_type'] == 'code' and s:
        out.append(f'```python\n{s}\n```')
        texts = []
        for o in c.get('outputs', []):
            if o.get('output_type') == 'stream':
                texts.append(''.join(o['text']))
            elif 'text/markdown' in o.get('data', {}):
                out.append(''.join(o['data']['text/markdown']))
            elif 'text/plain' in o.get('data', {}):
                texts.append(''.join(o['data']['text/plain']))
        if texts:
            out.append('```\n' + ''.join(texts).rstrip('\n') + '\n```')
md = (
    '<!-- Rendered from nbs/index.ipynb by .ci/render_readme.py: edit the notebook, not this file. -->\n\n'
    + '\n\n'.join(out)
    + '\n'
)
readme = root / 'README.md'
if '--check' in sys.argv:
    if not readme.exists() or readme.read_text() != md:
        sys.exit('README.md is out of date: run python .ci/render_readme.py')
else:
    readme.write_text(md)
