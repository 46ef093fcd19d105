"""An independent probe set (written from the README, each command's --help and the public API, before reading 27_probes).
usage: PROBE_DIR=<work folder> PROBE_TEMPLATE=<a run folder, made if missing> python tests/blind_probes.py TABLE [filter]"""

import json, os, re, shutil, signal, struct, subprocess, sys, time, zlib
from pathlib import Path

import numpy as np
from PIL import Image

W = Path(os.environ.get('PROBE_DIR', '/tmp/blindp'))
TPL = Path(os.environ.get('PROBE_TEMPLATE', str(W / 'template')))  # a finished run made with RUN0 (see below)
SMALL = (
    '--ratios 0.01 --seeds 0 --classifier_steps 5 --bias_steps 5 --synth_size 4 --max_train_per_class 20 --threads 1'
)
RUN0 = SMALL + ' --method vanilla,diffinject'  # the options TPL was made with
ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
PROBES, ROWS = [], []


def probe(name, kind):
    def deco(f):
        PROBES.append((name, kind, f))
        return f

    return deco


def sh(args, timeout=240, cwd=None):
    "Run `args` (a list, or a string split on spaces); (rc, stdout, stderr); rc None on timeout."
    if isinstance(args, str):
        args = args.split()
    try:
        r = subprocess.run(['nice', '-n', '5', *args], capture_output=True, timeout=timeout, env=ENV, cwd=cwd or W,
                           preexec_fn=_dfl)  # fmt: skip
        return r.returncode, r.stdout.decode(errors='replace'), r.stderr.decode(errors='replace')
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b'').decode(errors='replace'), (e.stderr or b'').decode(errors='replace')


def err_lines(err):
    "stderr lines without argparse's usage block and blank lines."
    ls = [line for line in err.splitlines() if line.strip()]
    if ls and ls[0].startswith('usage:'):
        k = next((i for i, line in enumerate(ls) if re.match(r'^\S+: error:', line)), len(ls))
        ls = ls[k:]
    return ls


def judge(rc, out, err, names=(), fresh=None, ok=None, must=False):
    """Outcome of one run: 'clean' (refused in one line naming one of `names`, nothing written to `fresh`, or accepted
    and `ok()` is true), else traceback / silent / multi-line / unnamed / half-written / hang / refused-valid."""
    ls = err_lines(err)
    msg = ls[-1][:160] if ls else (out.strip().splitlines() or [''])[-1][:160]
    if rc is None:
        return 'hang', msg
    if 'Traceback (most recent call last)' in err + out:
        tb = [line for line in err.splitlines() if line.strip()]
        return 'traceback', (tb[-1] if tb else msg)[:160]
    if rc < 0:
        return 'crash', f'signal {-rc}: {msg}'
    if rc == 0:
        if ok is None:
            return 'silent', 'accepted: ' + msg
        res = ok()
        return ('clean', 'accepted: ' + msg) if res is True else ('silent', f'accepted, but {res}')
    if must:
        return 'refused-valid', msg
    body = [line for line in ls if not line.startswith('  ')]  # indented lines: a list of problems under the first
    if len(body) != 1:
        return 'multi-line', ' | '.join(ls)[:160]
    if names and not named(' '.join(ls), names):
        return 'unnamed', msg
    if fresh is not None and (Path(fresh) / 'config.json').exists():
        return 'half-written', msg
    return 'clean', msg


def named(text, names):
    "Does `text` name one of `names` (an option as --x_y, --x-y or x_y; a path or a value)?"
    t = text.lower()
    return any(
        n.lower() in t or n.lstrip('-').lower() in t or n.lstrip('-').replace('_', '-').lower() in t for n in names
    )


def _dfl():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a child of a background job would ignore Ctrl-C


def fresh_dir(name):
    d = W / 'runs' / name
    if d.exists() or d.is_symlink():
        shutil.rmtree(d) if d.is_dir() and not d.is_symlink() else d.unlink()
    return d


def run_cli(name, opts, names, base=SMALL, stage='data', ok=None, timeout=240):
    d = fresh_dir(name)
    given = {o.split('=')[0] for o in opts if o.startswith('--')}
    if name != 'repeated-option':  # an option of the probe replaces the base's (given twice is its own probe)
        bt = base.split()
        base = ' '.join(t for i, t in enumerate(bt) if t not in given and not (i and bt[i - 1] in given))
    args = ['diffinject_run', '--run_dir', str(d), *base.split(), *(['--stage', stage] if stage else []), *opts]
    return judge(*sh(args, timeout), names=names, fresh=d, ok=ok)


def py(code, timeout=240):
    "Run python `code` in a child; it prints RESULT ok|Type: msg as its last stdout line."
    wrapped = (
        'import sys\ntry:\n'
        + ''.join('    ' + line + '\n' for line in code.strip().splitlines())
        + "    print('RESULT ok', flush=True)\n"
        + 'except Exception as e:\n'
        + "    u = 'USER ' if isinstance(e, (ValueError, TypeError, OSError)) else ''\n"
        + "    print('RESULT ' + u + type(e).__name__ + ': ' + ' / '.join(str(e).splitlines()), flush=True)\n"
    )
    return sh([sys.executable, '-c', wrapped], timeout)


USER_ERRORS = ('ValueError', 'TypeError', 'FileNotFoundError', 'NotADirectoryError', 'FileExistsError', 'OSError')


def judge_api(rc, out, err, names, fresh=None, accept=None):
    "A call that should raise a user-facing error (ValueError, TypeError, ...) naming one of `names`, or be accepted."
    if rc is None:
        return 'hang', ''
    line = next((line for line in reversed(out.splitlines()) if line.startswith('RESULT ')), None)
    if line is None:
        return 'crash', (err.strip().splitlines() or ['no result'])[-1][:160]
    res = line[7:]
    user = res.startswith('USER ')
    res = res[5:] if user else res
    if res.startswith('ok'):
        if accept is None:
            return 'silent', 'accepted'
        a = accept()
        return ('clean', 'accepted') if a is True else ('silent', f'accepted, but {a}')
    if not user:
        return 'traceback', res[:160]  # an internal error type (KeyError, AttributeError, ...)
    if names and not named(res, names):
        return 'unnamed', res[:160]
    if fresh is not None and (Path(fresh) / 'config.json').exists():
        return 'half-written', res[:160]
    return 'clean', res[:160]


# ---------------------------------------------------------------- fixtures
def png_bytes(a, bitdepth, colour):
    "A PNG of uint16/uint8 array `a` (H,W[,C]) with the given bit depth and colour type, written by hand."
    h, w = a.shape[:2]
    raw = b''.join(b'\x00' + a[i].astype('>u2' if bitdepth == 16 else 'u1').tobytes() for i in range(h))

    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack('>IIBBBBB', w, h, bitdepth, colour, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')


def rgb(seed, h=10, w=12):
    return (np.random.RandomState(seed).rand(h, w, 3) * 255).astype('uint8')


def image_folder(root, classes=('cat', 'dog'), n=(12, 0, 4)):
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    for split, k in zip(('train', 'valid', 'test'), n):
        for ci, c in enumerate(classes):
            if not k:
                continue
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(k):
                Image.fromarray(rgb(100 * ci + i)).save(root / split / c / f'{i}.png')
    return root


def data_only(name, root, extra=(), names=(), ok=None, must=False):
    d = fresh_dir(name)
    args = ['diffinject_run', '--run_dir', str(d), '--threads', '1', '--stage', 'data', '--source', 'imagefolder']
    return judge(*sh([*args, '--data_root', str(root), *extra]), names=names, fresh=d, ok=ok, must=must)


def stage_done(d):
    return True if (Path(d) / 'data' / 'stage.json').exists() else 'no finished data stage'


# ---------------------------------------------------------------- diffinject_run: option values
BAD_OPTS = [
    ('ratio-not-number', ['--ratios', '0.01,abc'], ['--ratios']),
    ('ratio-zero', ['--ratios', '0'], ['--ratios']),
    ('ratio-nan', ['--ratios', 'nan'], ['--ratios']),
    ('seeds-dup-nonadjacent', ['--seeds', '0,1,0'], ['--seeds']),
    ('seeds-empty', ['--seeds', ''], ['--seeds']),
    ('seeds-float', ['--seeds', '1.5'], ['--seeds']),
    ('method-empty', ['--method', ''], ['--method']),
    ('method-empty-item', ['--method', 'diffinject,,vanilla'], ['--method']),
    ('method-unicode', ['--method', 'diffinjéct'], ['--method', 'diffinjéct']),
    ('classifier-steps-zero', ['--classifier_steps', '0'], ['--classifier_steps']),
    ('bias-steps-fraction', ['--bias_steps', '2.5'], ['--bias_steps']),
    ('synth-size-negative', ['--synth_size', '-4'], ['--synth_size']),
    ('gamma-above-1', ['--gamma', '1.5'], ['--gamma']),
    ('gamma-overflow', ['--gamma', '1e400'], ['--gamma']),
    ('t-edit-beyond-T', ['--t_edit', '5000'], ['--t_edit']),
    ('t-boost-negative', ['--t_boost=-1'], ['--t_boost']),
    ('precision-fp64', ['--precision', 'fp64'], ['--precision']),
    ('loss-mse', ['--loss', 'mse'], ['--loss']),
    ('stage-unknown', ['--stage', 'train'], ['--stage']),
    ('label-from-unknown', ['--label_from', 'both'], ['--label_from']),
    ('preset-unknown', ['--preset', 'fast'], ['--preset']),
    ('dataset-unknown', ['--dataset', 'mnist'], ['--dataset']),
    ('imagefolder-no-root', ['--source', 'imagefolder'], ['--data_root']),
    ('threads-zero', ['--threads', '0'], ['--threads']),
    ('num-workers-negative', ['--num_workers=-1'], ['--num_workers']),
    ('max-train-zero', ['--max_train_per_class', '0'], ['--max_train_per_class']),
    ('abbrev-run-d', ['--run_d', str(W / 'runs' / 'abbrev')], ['--run_d']),
    ('abbrev-seed', ['--seed', '3'], ['--seed']),
    ('repeated-option', ['--ratios', '0.05'], ['--ratios']),  # SMALL already has --ratios 0.01
    ('source-vs-dataset', ['--source', 'cifar10', '--dataset', 'corrupted_mnist'], ['--source', '--dataset']),
    (
        'style-pool-aligned-imagefolder',
        ['--source', 'imagefolder', '--data_root', str(W / 'if0'), '--style_pool', 'aligned'],
        ['--style_pool'],
    ),  # fmt: skip
    ('download-imagefolder', ['--source', 'imagefolder', '--data_root', str(W / 'if0'), '--download'], ['--download']),
    ('device-cuda-index', ['--device', 'cuda:7'], ['--device']),
    ('ckpt-zero-byte', ['--diffusion_ckpt', str(W / 'empty.safetensors')], ['empty.safetensors', '--diffusion_ckpt']),
    ('ckpt-text-as-pt', ['--diffusion_ckpt', str(W / 'notes.pt')], ['notes.pt', '--diffusion_ckpt']),
    (
        'ckpt-preset-mismatch',
        ['--diffusion_ckpt', str(W / 'shipped.safetensors'), '--diffusion_preset', 'ffhq_p2'],
        ['shipped.safetensors', '--diffusion_ckpt', '--diffusion_preset'],
    ),  # fmt: skip
]
IF_BASE = '--threads 1 --max_train_per_class 20'  # an image folder has no --ratios
for _n, _o, _names in BAD_OPTS:
    _b = IF_BASE if 'imagefolder' in _o else SMALL
    probe(f'run:{_n}', 'bad option')(lambda _n=_n, _o=_o, _names=_names, _b=_b: run_cli(_n, _o, _names, base=_b))

IGNORED = [  # options the chosen source/model ignores: an error, or a warning naming the option
    ('ignored-image-size', ['--image_size', '48'], '--image_size'),
    ('ignored-minutes', ['--minutes', '5'], '--minutes'),
    ('ignored-train-on', ['--train_on', 'train'], '--train_on'),
]


def _ignored(n, o, opt):
    d = fresh_dir(n)
    rc, out, err = sh(['diffinject_run', '--run_dir', str(d), *SMALL.split(), '--stage', 'data', *o])
    if rc == 0:
        return ('clean', f'warned: {opt}') if opt in err + out else ('silent', f'accepted, {opt} not named')
    return judge(rc, out, err, names=[opt], fresh=d)


for _n, _o, _opt in IGNORED:
    probe(f'run:{_n}', 'ignored option')(lambda _n=_n, _o=_o, _opt=_opt: _ignored(_n, _o, _opt))


@probe('run:diffusion-steps-trains-here', 'option')
def _():
    def ok():
        dc = json.loads((W / 'runs' / 'dsteps' / 'config.json').read_text())['diffusion']
        return True if (dc['pretrained'], dc['steps']) == ('', 100) else f'diffusion config {dc}'

    return run_cli('dsteps', ['--diffusion_steps', '100'], ['--diffusion_steps'], ok=ok)


@probe('run:max-train-huge', 'huge number')
def _():
    return run_cli('huge', ['--max_train_per_class', str(10**25)], ['--max_train_per_class'], ok=lambda: True)


@probe('run:int-as-1e3', 'type')
def _():
    return run_cli('int1e3', ['--t_edit', '1e3'], ['--t_edit'], ok=lambda: True)


# ---------------------------------------------------------------- diffinject_run: paths
@probe('run:run-dir-is-file', 'path')
def _():
    f = W / 'afile'
    f.write_text('x')
    return judge(*sh(['diffinject_run', '--run_dir', str(f), *SMALL.split(), '--stage', 'data']), names=['afile'])


@probe('run:run-dir-under-file', 'path')
def _():
    f = W / 'afile'
    f.write_text('x')
    return judge(
        *sh(['diffinject_run', '--run_dir', str(f / 'sub'), *SMALL.split(), '--stage', 'data']), names=['afile']
    )


@probe('run:run-dir-symlink-loop', 'path')
def _():
    d = fresh_dir('loop')
    d.symlink_to(d)
    return judge(*sh(['diffinject_run', '--run_dir', str(d), *SMALL.split(), '--stage', 'data']), names=['loop'])


@probe('run:run-dir-empty-string', 'path')
def _():
    return judge(*sh(['diffinject_run', '--run_dir', '', *SMALL.split(), '--stage', 'data']), names=['--run_dir'])


@probe('run:run-dir-in-proc', 'path')
def _():
    return judge(*sh(['diffinject_run', '--run_dir', '/proc/diffinject_probe', *SMALL.split(), '--stage', 'data']),
                 names=['/proc/diffinject_probe'])  # fmt: skip


@probe('run:run-dir-non-utf8-name', 'path')
def _():
    d = os.fsencode(str(W / 'runs')) + b'/bad\xff\xfename'
    if os.path.lexists(d):
        shutil.rmtree(d)
    r = subprocess.run([b'nice', b'-n', b'5', b'diffinject_run', b'--run_dir', d, *SMALL.encode().split(), b'--stage',
                        b'data'], capture_output=True, env=ENV, timeout=240)  # fmt: skip
    return judge(r.returncode, r.stdout.decode(errors='replace'), r.stderr.decode(errors='replace'),
                 names=['--run_dir', 'bad'], ok=lambda: os.path.isdir(os.path.join(d, b'data')) or 'no data stage')  # fmt: skip


@probe('run:data-root-is-file', 'path')
def _():
    return data_only('droot-file', W / 'afile', names=['afile'])


@probe('run:bias-csv-is-folder', 'path')
def _():
    return data_only('csv-folder', W / 'if0', ['--bias_csv', str(W / 'if0')], names=['--bias_csv', 'if0'])


# ---------------------------------------------------------------- image folders with odd files
@probe('data:odd-but-valid-images', 'image folder')
def _():
    root = image_folder(W / 'dätä ✓ odd', n=(6, 0, 2))
    a = root / 'train' / 'cat'
    Image.fromarray(rgb(1)).convert('P').save(a / 'pal.png')
    Image.fromarray(rgb(2)).convert('RGBA').save(a / 'rgba.png')
    Image.fromarray(rgb(3)).convert('L').save(a / 'gray.png')
    Image.fromarray(rgb(4)).convert('LA').save(a / 'la.png')
    Image.fromarray(rgb(5)).convert('CMYK').save(a / 'cmyk.jpg')
    Image.fromarray(rgb(6)).convert('1').save(a / 'bits.png')
    Image.fromarray(rgb(7)[:1, :1]).save(a / 'one_pixel.png')
    Image.fromarray(rgb(8)).save(a / 'UPPER.PNG')
    Image.fromarray(rgb(9)).save(a / 'ü ñ.bmp')
    (a / 'sixteen.png').write_bytes(png_bytes(np.full((9, 9), 30000, np.uint16), 16, 0))
    (a / '.DS_Store').write_bytes(b'\x00\x01junk')
    return data_only('odd-valid', root, names=[], ok=lambda: stage_done(W / 'runs' / 'odd-valid'), must=True)


def _broken(name, write, names):
    root = image_folder(W / f'if-{name}')
    write(root / 'train' / 'dog')
    return data_only(f'data-{name}', root, names=names)


_PNG = (W / 'if0' / 'train' / 'cat' / '0.png') if False else None
BROKEN = [
    ('zero-byte', lambda d: (d / 'z.png').write_bytes(b''), ['z.png']),
    ('truncated', lambda d: (d / 't.png').write_bytes((d / '0.png').read_bytes()[:60]), ['t.png']),
    ('text-as-jpg', lambda d: (d / 'notes.jpg').write_text('hello, not an image\n'), ['notes.jpg']),
    ('float-tiff', lambda d: Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(d / 'f.tif'), ['f.tif']),
    (
        'decompression-bomb',
        lambda d: (d / 'bomb.png').write_bytes(
            png_bytes(np.zeros((1, 1), np.uint8), 8, 0).replace(
                struct.pack('>II', 1, 1), struct.pack('>II', 20000, 20000)
            )
        ),
        ['bomb.png'],
    ),  # fmt: skip
    ('symlink-loop-entry', lambda d: (d / 'loop.png').symlink_to(d / 'loop.png'), ['loop.png']),
]
for _n, _w, _names in BROKEN:
    probe(f'data:{_n}', 'image folder')(lambda _n=_n, _w=_w, _names=_names: _broken(_n, _w, _names))


@probe('data:one-class', 'image folder')
def _():
    return data_only('one-class', image_folder(W / 'if-one', classes=('solo',)), names=['class'])


@probe('data:empty-class', 'image folder')
def _():
    root = image_folder(W / 'if-emptyc')
    (root / 'train' / 'emu').mkdir()
    return data_only('empty-class', root, names=['emu'])


@probe('data:train-is-file', 'image folder')
def _():
    root = W / 'if-trainfile'
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    (root / 'train').write_text('x')
    return data_only('train-file', root, names=['train'])


@probe('data:test-class-not-in-train', 'image folder')
def _():
    root = image_folder(W / 'if-extra')
    (root / 'test' / 'fox').mkdir()
    Image.fromarray(rgb(0)).save(root / 'test' / 'fox' / 'a.png')
    return data_only('test-extra', root, names=['fox'])


@probe('data:valid-without-classes', 'image folder')
def _():
    root = image_folder(W / 'if-emptyvalid')
    (root / 'valid').mkdir()
    return data_only('empty-valid', root, names=['valid'])


@probe('data:nested-dir-in-class', 'image folder')
def _():
    root = image_folder(W / 'if-nested')
    (root / 'train' / 'cat' / 'more').mkdir()
    Image.fromarray(rgb(50)).save(root / 'train' / 'cat' / 'more' / 'deep.png')
    return data_only('nested', root, names=['deep.png'], ok=lambda: stage_done(W / 'runs' / 'nested'))


# ---------------------------------------------------------------- images read as they are (16-bit etc.)
def _read_mean(path, expect, tol=1.0):
    rc, out, err = py(
        f'from diffinject.data import read_image\nimport numpy as np\n'
        f'a = np.asarray(read_image({str(path)!r}), dtype=float)\nprint("MEAN", [float(v) for v in a.reshape(-1, 3).mean(0)])'
    )
    m = re.search(r'MEAN \[(.*)\]', out)
    if not m:
        return judge_api(rc, out, err, names=[Path(path).name])
    got = [float(v) for v in m.group(1).split(',')]
    good = all(abs(g - e) <= tol for g, e in zip(got, expect))
    return ('clean' if good else 'silent'), f'channel means {[round(g, 1) for g in got]}, expected {expect}'


@probe('read:16bit-gray-alpha-png', 'image read')
def _():
    p = W / 'la16.png'
    a = np.stack([np.full((6, 6), 40000), np.full((6, 6), 65535)], -1).astype(np.uint16)
    p.write_bytes(png_bytes(a, 16, 4))
    return _read_mean(p, [40000 / 257] * 3)


@probe('read:16bit-rgb-png', 'image read')
def _():
    p = W / 'rgb16.png'
    a = np.zeros((6, 6, 3), np.uint16) + np.array([10000, 30000, 50000], np.uint16)
    p.write_bytes(png_bytes(a, 16, 2))
    return _read_mean(p, [10000 / 257, 30000 / 257, 50000 / 257])


@probe('read:16bit-bigendian-tiff', 'image read')
def _():
    p = W / 'be16.tif'
    Image.frombytes('I;16B', (6, 6), np.full((6, 6), 20000, '>u2').tobytes()).save(p)
    return _read_mean(p, [20000 / 257] * 3)


@probe('read:palette-with-alpha', 'image read')
def _():
    p = W / 'pa.png'
    im = Image.new('P', (4, 4), 1)
    im.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    im.info['transparency'] = 0
    im.save(p, transparency=0)
    return _read_mean(p, [200, 100, 50])


# ---------------------------------------------------------------- bias CSV
def _csv(name, text, names, ok=None, raw=None, must=False):
    root = W / 'if0'
    f = W / f'{name}.csv'
    f.write_bytes(raw if raw is not None else text.encode())
    return data_only(f'csv-{name}', root, ['--bias_csv', str(f)], names=names, ok=ok, must=must)


CSVS = [
    ('header-only', 'path,bias\n', ['header-only.csv']),
    ('abs-outside', 'path,bias\n/etc/hostname,cat\n', ['/etc/hostname']),
    ('unknown-class', 'path,bias\ntrain/cat/0.png,zebra\n', ['zebra']),
    ('missing-image', 'path,bias\ntrain/cat/99.png,dog\n', ['99.png']),
    ('wrong-header', 'file,label\ntrain/cat/0.png,dog\n', ['wrong-header.csv']),
    ('index-out-of-range', 'path,bias\ntrain/cat/1.png,7\n', ["'7'", '7']),
    ('non-image-row', 'path,bias\ntrain/cat/0.png,dog\nREADME.txt,cat\n', ['README.txt']),
    ('symlink-out', 'path,bias\ntrain/cat/link.png,dog\n', ['link.png']),
]
for _n, _t, _names in CSVS:
    probe(f'csv:{_n}', 'bias csv')(lambda _n=_n, _t=_t, _names=_names: _csv(_n, _t, _names))


@probe('csv:bom', 'bias csv')
def _():
    t = 'path,bias\ntrain/cat/0.png,dog\ntrain/dog/0.png,cat\n'
    return _csv('bom', '', [], raw=t.encode('utf-8-sig'), ok=lambda: stage_done(W / 'runs' / 'csv-bom'), must=True)


@probe('csv:extra-columns', 'bias csv')
def _():
    t = 'path,bias,note\ntrain/cat/0.png,dog,odd one\ntrain/dog/1.png,cat,x\n'
    return _csv('extra', t, [], ok=lambda: stage_done(W / 'runs' / 'csv-extra'), must=True)


@probe('csv:latin1-bytes', 'bias csv')
def _():
    return _csv('latin1', '', ['latin1.csv'], raw='path,bias\ntrain/cat/0.png,dög\n'.encode('latin-1'))


# ---------------------------------------------------------------- tampered files inside a finished run
def tampered(name, edit, names, ok_check=None, timeout=300):
    d = fresh_dir(f'tamper-{name}')
    shutil.copytree(TPL, d, symlinks=True)
    (d / 'run.lock').unlink(missing_ok=True)
    edit(d)
    rc, out, err = sh(['diffinject_run', '--run_dir', str(d), *RUN0.split()], timeout)
    ok = (lambda: ok_check(d)) if ok_check else None
    if rc != 0:
        return judge(rc, out, err, names=names)
    return judge(rc, out, err, names=names, ok=ok)


def resha(d, rel):
    "Record the current sha256 of `rel` (a file of a finished stage) in its stage.json: a consistent tamper."
    import hashlib

    p = Path(d) / rel
    st = next(q for q in p.parents if (q / 'stage.json').exists())
    meta = json.loads((st / 'stage.json').read_text())
    meta['files'][p.relative_to(st).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    (st / 'stage.json').write_text(json.dumps(meta))


def edit_json(p, f):
    p = Path(p)
    p.write_text(json.dumps(f(json.loads(p.read_text()))))


BIAS = '1pct/seed0/bias'
SYN = '1pct/seed0/synth'


def _redo_synth(d):
    shutil.rmtree(d / SYN)
    shutil.rmtree(d / '1pct/seed0/diffinject')


def _cfg_type(d):
    edit_json(d / 'config.json', lambda c: {**c, 'ratios': '0.01'})


def _cfg_trunc(d):
    p = d / 'config.json'
    p.write_text(p.read_text()[:40])


def _metrics_list(d):
    (d / 'metrics.json').write_text('[1, 2, 3]')


def _topk_strings(d):
    edit_json(d / BIAS / 'bias.json', lambda b: {**b, 'topk': [str(i) for i in b['topk']]})
    resha(d, BIAS + '/bias.json')
    _redo_synth(d)


def _topk_negative(d):
    edit_json(d / BIAS / 'bias.json', lambda b: {**b, 'topk': [-5 - i for i in range(len(b['topk']))]})
    resha(d, BIAS + '/bias.json')
    _redo_synth(d)


def _fb_inf(d):
    from safetensors.numpy import load_file, save_file

    p = d / BIAS / 'f_B.safetensors'
    t = load_file(p)
    k = sorted(t)[0]
    t[k] = t[k].copy()
    t[k].flat[0] = np.inf
    save_file(t, p)


def _fb_shape(d):
    from safetensors.numpy import load_file, save_file

    p = d / BIAS / 'f_B.safetensors'
    t = load_file(p)
    k = max(t, key=lambda k: t[k].size)
    t[k] = np.zeros((3, 3), t[k].dtype)
    save_file(t, p)
    resha(d, BIAS + '/f_B.safetensors')
    _redo_synth(d)


def _vanilla_deleted(d):
    (d / '1pct/seed0/vanilla/model_best_valid.safetensors').unlink()


def _batch_truncated(d):
    p = d / SYN / '1pct/synth_parts/batch_00000.npz'
    p.write_bytes(p.read_bytes()[:100])


def _partial_batch_shape(d):
    "The synthesis stage interrupted after its first batch, which holds images of the wrong shape."
    s = d / SYN
    part = d / (SYN + '.partial')
    s.rename(part)
    edit_json(part / 'stage.json', lambda m: {k: v for k, v in m.items() if k not in ('files', 'wall_s')} | {'status': 'running'})  # fmt: skip
    np.savez(part / '1pct/synth_parts/batch_00000.npz', images=np.zeros((4, 9, 9, 3), np.uint8))
    shutil.rmtree(d / '1pct/seed0/diffinject')


def _partial_batch_bad_index(d):
    "The synthesis stage interrupted after its first batch, whose json names a content image out of range."
    s = d / SYN
    part = d / (SYN + '.partial')
    s.rename(part)
    edit_json(part / 'stage.json', lambda m: {k: v for k, v in m.items() if k not in ('files', 'wall_s')} | {'status': 'running'})  # fmt: skip
    j = part / '1pct/synth_parts/batch_00000.json'
    edit_json(j, lambda b: {**b, 'items': [{**it, 'content_index': 10**6} for it in b['items']]})
    shutil.rmtree(d / '1pct/seed0/diffinject')


def _stage_json_garbage(d):
    (d / BIAS / 'stage.json').write_text('{"key": 5, "status": [], "files": "x"}')


def _same_metrics(d):
    a, b = json.loads((TPL / 'metrics.json').read_text()), json.loads((Path(d) / 'metrics.json').read_text())
    strip = lambda m: json.dumps(m.get('results', m), sort_keys=True) if isinstance(m, dict) else m  # noqa: E731
    return True if isinstance(b, dict) and strip(a) == strip(b) else 'metrics.json differs from the untampered run'


TAMPER = [
    ('config-wrong-type', _cfg_type, ['config.json', 'ratios'], None),
    ('config-truncated', _cfg_trunc, ['config.json'], None),
    ('metrics-list', _metrics_list, ['metrics.json'], _same_metrics),
    ('bias-topk-strings-consistent-sha', _topk_strings, ['bias.json'], None),
    ('bias-topk-negative-consistent-sha', _topk_negative, ['bias.json'], None),
    ('fb-inf-weight', _fb_inf, ['f_B.safetensors'], None),
    ('fb-wrong-shape-consistent-sha', _fb_shape, ['f_B.safetensors'], None),
    ('vanilla-weights-deleted', _vanilla_deleted, ['model_best_valid.safetensors'], _same_metrics),
    ('synth-batch-truncated', _batch_truncated, ['batch_00000.npz'], None),
    ('synth-partial-batch-wrong-shape', _partial_batch_shape, ['batch_00000.npz'], None),
    ('synth-partial-batch-index-out-of-range', _partial_batch_bad_index, ['batch_00000.json'], None),
    ('stage-json-garbage', _stage_json_garbage, ['stage.json'], None),
]
for _n, _e, _names, _ok in TAMPER:
    probe(f'tamper:{_n}', 'tampered run')(lambda _n=_n, _e=_e, _names=_names, _ok=_ok: tampered(_n, _e, _names, _ok))


# ---------------------------------------------------------------- locks and signals
def start(args):
    return subprocess.Popen(['nice', '-n', '5', *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=W,
                            preexec_fn=_dfl)  # fmt: skip


def wait_for(cond, t=120):
    t0 = time.time()
    while time.time() - t0 < t:
        if cond():
            return True
        time.sleep(0.5)
    return False


def lock_and_signal(args, ready, sig, lock_names, rerun=None, again_args=None):
    """Start `args`; when `ready()`, run the same command again (must be refused: locked), send `sig` to the first
    (one line 'interrupted; rerun to resume', no traceback), then optionally `rerun` (must finish)."""
    p = start(args)
    try:
        if not wait_for(lambda: ready() or p.poll() is not None):
            return 'hang', 'never became ready'
        if p.poll() is not None:
            return 'silent', f'finished before the probe (rc {p.returncode})'
        time.sleep(1.0)
        rc, out, err = sh(again_args or args, 60)
        second = judge(rc, out, err, names=lock_names)
        os.killpg(p.pid, sig) if False else p.send_signal(sig)
        try:
            o, e = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            return 'hang', 'no exit after the signal'
        o, e = o.decode(errors='replace'), e.decode(errors='replace')
        ls = [line for line in e.splitlines() if line.strip()]
        if 'Traceback' in e:
            first = ('traceback', ls[-1][:120])
        elif p.returncode == 0:
            first = ('silent', 'exit 0 after the signal')
        elif not ls:
            first = ('silent', f'exit {p.returncode}, nothing on stderr')
        elif len(ls) != 1 or 'interrupted' not in ls[0] or 'rerun' not in ls[0]:
            first = ('multi-line' if len(ls) > 1 else 'unnamed', ' | '.join(ls)[:120])
        else:
            first = ('clean', ls[0][:80])
        third = ('clean', 'no rerun')
        if rerun:
            rc, out, err = sh(rerun, 400)
            third = ('clean', 'rerun finished') if rc == 0 else judge(rc, out, err)
            if third[0] == 'clean' and rc != 0:
                third = ('refused-valid', third[1])
        worst = next((r for r in (second, first, third) if r[0] != 'clean'), None)
        if worst:
            which = ['second process', 'signal', 'rerun'][[second, first, third].index(worst)]
            return worst[0], f'{which}: {worst[1]}'
        return 'clean', f'locked: {second[1][:60]} / {first[1]} / {third[1]}'
    finally:
        if p.poll() is None:
            p.kill()


@probe('sig:run-sigint-in-classifier+lock', 'lock/signal')
def _():
    d = fresh_dir('sigint')
    args = ['diffinject_run', '--run_dir', str(d), *SMALL.replace('--classifier_steps 5', '--classifier_steps 3000')
            .split(), '--method', 'vanilla']  # fmt: skip
    return lock_and_signal(args, lambda: (d / '1pct/seed0/vanilla.partial').exists(), signal.SIGINT,
                           ['lock', 'running', str(d)])  # fmt: skip


@probe('sig:run-sigterm-in-bias+resume', 'lock/signal')
def _():
    d = fresh_dir('sigterm')
    args = ['diffinject_run', '--run_dir', str(d), *SMALL.replace('--bias_steps 5', '--bias_steps 300').split(),
            '--method', 'vanilla', '--stage', 'bias']  # fmt: skip
    r = lock_and_signal(args, lambda: (d / '1pct/seed0/bias.partial').exists(), signal.SIGTERM,
                        ['lock', 'running', str(d)], rerun=None)  # fmt: skip
    if r[0] != 'clean':
        return r
    rc, out, err = sh(args, 300)  # same configuration: resumes and finishes
    if rc == 0:
        return 'clean', r[1] + ' / rerun finished'
    return judge(rc, out, err) if 'Traceback' in err else ('refused-valid', (err_lines(err) or [''])[-1][:120])


@probe('sig:mine-sigterm+lock', 'lock/signal')
def _():
    d = fresh_dir('mine')
    args = ['diffinject_mine', '--run_dir', str(d), '--ratios', '0.01', '--bias_steps', '100000', '--threads', '1']
    return lock_and_signal(args, lambda: (d / '1pct/seed0/bias.partial').exists(), signal.SIGTERM,
                           ['lock', 'running', str(d)])  # fmt: skip


@probe('sig:train-diffusion-sigint+lock+resume', 'lock/signal')
def _():
    d = fresh_dir('tdiff')
    args = ['diffinject_train_diffusion', '--run_dir', str(d), '--ratios', '0.01', '--diffusion_preset', 'tiny_32',
            '--diffusion_steps', '20', '--device', 'cpu', '--threads', '1']  # fmt: skip
    return lock_and_signal(args, lambda: (d / 'diffusion.partial').exists(), signal.SIGINT,
                           ['lock', 'running', str(d)], rerun=args)  # fmt: skip


@probe('sig:baselines-sigint+lock', 'lock/signal')
def _():
    d = fresh_dir('bl')
    args = ['diffinject_baselines', '--run_dir', str(d), '--method', 'vanilla', '--ratios', '0.01', '--seeds', '0',
            '--bias_steps', '5', '--classifier_steps', '100000', '--threads', '1']  # fmt: skip
    return lock_and_signal(args, lambda: (d / '1pct/seed0/vanilla.partial').exists(), signal.SIGINT,
                           ['lock', 'running', str(d)])  # fmt: skip


# ---------------------------------------------------------------- the side commands
SIDE = [
    ('mine:bias-steps-zero', 'diffinject_mine --run_dir {W}/runs/m1 --bias_steps 0', ['--bias_steps']),
    ('mine:precision-bf17', 'diffinject_mine --run_dir {W}/runs/m2 --precision bf17', ['--precision']),
    ('mine:old-out-flag', 'diffinject_mine --out {W}/runs/m3', ['--out']),
    ('mine:ratio-one', 'diffinject_mine --run_dir {W}/runs/m4 --ratios 1', ['--ratios']),
    ('mine:run-dir-is-file', 'diffinject_mine --run_dir {W}/afile', ['afile', '--run_dir']),
    ('tdiff:steps-zero', 'diffinject_train_diffusion --run_dir {W}/runs/t1 --diffusion_steps 0', ['--diffusion_steps']),
    (
        'tdiff:preset-unknown',
        'diffinject_train_diffusion --run_dir {W}/runs/t2 --diffusion_preset zzz',
        ['--diffusion_preset', 'zzz'],
    ),
    ('tdiff:train-on-bad', 'diffinject_train_diffusion --run_dir {W}/runs/t3 --train_on test', ['--train_on']),
    (
        'tdiff:ckpt-missing',
        'diffinject_train_diffusion --run_dir {W}/runs/t4 --diffusion_ckpt {W}/none.pt',
        ['none.pt'],
    ),
    (
        'tdiff:data-root-missing',
        'diffinject_train_diffusion --run_dir {W}/runs/t5 --source mnist --data_root {W}/none',
        ['none', 'data_root'],
    ),
    ('tdiff:run-dir-is-file', 'diffinject_train_diffusion --run_dir {W}/afile', ['afile']),
    ('bl:method-unknown', 'diffinject_baselines --run_dir {W}/runs/b1 --method lff,foo', ['--method', 'foo']),
    ('bl:method-not-baseline', 'diffinject_baselines --run_dir {W}/runs/b6 --method diffinject', ['--method']),
    ('bl:bffhq-no-root', 'diffinject_baselines --run_dir {W}/runs/b2 --preset paper --dataset bffhq', ['data_root']),
    (
        'bl:seed-negative',
        'diffinject_baselines --run_dir {W}/runs/b3 --seeds=-3 --method vanilla --classifier_steps 5',
        ['--seeds'],
    ),
    ('bl:run-dir-is-file', 'diffinject_baselines --run_dir {W}/afile --method vanilla', ['afile', '--run_dir']),
    (
        'bl:ratios-duplicate',
        'diffinject_baselines --run_dir {W}/runs/b4 --ratios 0.01,0.01 --method vanilla --classifier_steps 5',
        ['--ratios'],
    ),
    ('bl:steps-zero', 'diffinject_baselines --run_dir {W}/runs/b5 --classifier_steps 0', ['--classifier_steps']),
    ('bench:unknown-what', 'diffinject_bench zzz', ['zzz', 'what']),
    ('bench:min-time-negative', 'diffinject_bench diffusion --min_time=-1', ['--min_time']),
    ('bench:opts-not-json', 'diffinject_bench inject --opts {{nope', ['--opts']),
    ('bench:threads-zero', 'diffinject_bench diffusion --threads 0', ['--threads']),
]


def _side(cmd, names):
    f = cmd.format(W=W)
    outdir = next((Path(a) for a in f.split() if '/runs/' in a), None)
    return judge(*sh(f, 180), names=names, fresh=outdir)


for _n, _c, _names in SIDE:
    probe(_n, 'side command')(lambda _c=_c, _names=_names: _side(_c, _names))


# ---------------------------------------------------------------- the Python API
def api(code, names, run_dir=None, accept=None):
    return judge_api(*py(code), names=names, fresh=run_dir, accept=accept)


def _rd(n):
    return fresh_dir(f'api-{n}')


API = [
    ('debias-root-int', 'debias(123, run_dir={rd!r})', ['data_root', '123']),
    ('debias-method-none', "debias({root!r}, run_dir={rd!r}, methods=('vanilla', None))", ['method']),
    ('debias-image-size-float', 'debias({root!r}, run_dir={rd!r}, image_size=31.5)', ['image_size']),
    ('debias-synth-size-bool', 'debias({root!r}, run_dir={rd!r}, synth_size=True)', ['synth_size']),
    ('debias-device-tpu', "debias({root!r}, run_dir={rd!r}, device='tpu')", ['device', 'tpu']),
    ('debias-steps-inf', "debias({root!r}, run_dir={rd!r}, classifier_steps=float('inf'))", ['classifier_steps']),
    ('debias-run-dir-devnull', "debias({root!r}, run_dir='/dev/null')", ['/dev/null', 'run_dir']),
    ('debias-stages-unknown', "debias({root!r}, run_dir={rd!r}, stages=('data', 'nonsense'))", ['nonsense', 'stage']),
    ('make-config-seed-str', "make_config(seeds=[0, '1'])", ['seeds']),
    ('make-config-unknown-key', 'make_config(zzz=1)', ['zzz']),
    ('make-config-gamma-str', "make_config(inject={{'gamma': '0.5'}})", ['gamma']),
    ('make-config-gce-q-zero', "make_config(bias={{'q': 0}})", ['q']),
    ('run-pipeline-not-config', 'run_pipeline({{"a": 1}}, {rd!r})', ['config', 'cfg']),
    ('run-pipeline-run-dir-none', 'run_pipeline(make_config(), None)', ['run_dir']),
]
HEAD = 'from diffinject.pipeline import debias\nfrom diffinject.runner import run_pipeline\nfrom diffinject.config import make_config\n'
for _n, _c, _names in API:

    def _api(_n=_n, _c=_c, _names=_names):
        rd = _rd(_n)
        return api(HEAD + _c.format(root=str(W / 'if0'), rd=str(rd)), _names, run_dir=rd)

    probe(f'api:{_n}', 'api')(_api)


@probe('api:debias-stages-string', 'api')
def _():
    rd = _rd('stages-str')
    code = HEAD + f"debias({str(W / 'if0')!r}, run_dir={str(rd)!r}, stages='data', verbose=False)"
    return api(code, ['stages'], run_dir=rd, accept=lambda: stage_done(rd))


@probe('api:debias-seeds-int', 'api')
def _():
    rd = _rd('seeds-int')
    code = HEAD + f"debias({str(W / 'if0')!r}, run_dir={str(rd)!r}, seeds=3, stages=('data',), verbose=False)"
    return api(code, ['seeds'], run_dir=rd, accept=lambda: stage_done(rd))


# ---------------------------------------------------------------- fixtures and main
def setup():
    W.mkdir(parents=True, exist_ok=True)
    if not (TPL / 'metrics.json').exists():  # the finished run the tamper probes copy
        r = sh(['diffinject_run', '--run_dir', str(TPL), *RUN0.split()], 900)
        assert r[0] == 0, f'the template run failed: {r[2][-500:]}'
    (W / 'runs').mkdir(exist_ok=True)
    image_folder(W / 'if0')
    (W / 'if0' / 'README.txt').write_text('not an image\n')
    link = W / 'if0' / 'train' / 'cat' / 'link.png'
    if not os.path.lexists(link):
        link.symlink_to(W / 'outside.png')
    Image.fromarray(rgb(3)).save(W / 'outside.png')
    (W / 'afile').write_text('x')
    (W / 'empty.safetensors').write_bytes(b'')
    (W / 'notes.pt').write_text('these are notes, not a checkpoint\n')
    import diffinject

    shipped = Path(diffinject.__file__).parent / 'assets' / 'cmnist_split_rgb.safetensors'
    if not (W / 'shipped.safetensors').exists():
        shutil.copy(shipped, W / 'shipped.safetensors')
    np.savez(W / 'noimg.npz', pictures=np.zeros((4, 32, 32, 3), np.uint8))
    np.savez(W / 'imgs.npz', images=(np.random.RandomState(0).rand(16, 32, 32, 3) * 255).astype(np.uint8))
    np.savez(W / 'float.npz', images=np.random.RandomState(0).rand(8, 32, 32, 3) * 7.5)


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] else None
    flt = sys.argv[2] if len(sys.argv) > 2 else ''
    setup()
    for name, kind, f in PROBES:
        if flt and not re.search(flt, name):
            continue
        t0 = time.time()
        try:
            res, msg = f()
        except Exception as e:  # a bug of the probe itself
            res, msg = 'PROBE-ERROR', f'{type(e).__name__}: {e}'
        ROWS.append((name, kind, res, msg, time.time() - t0))
        print(f'{name:45s} {res:13s} {time.time() - t0:5.1f}s  {msg}', flush=True)
    from collections import Counter

    lines = [f'{"probe":45s} | {"kind":14s} | {"outcome":13s} | message', '-' * 140]
    lines += [f'{n:45s} | {k:14s} | {r:13s} | {m}' for n, k, r, m, _ in ROWS]
    c = Counter(r for _, _, r, _, _ in ROWS)
    lines += ['', f'{len(ROWS)} probes: ' + ', '.join(f'{v} {k}' for k, v in c.most_common())]
    print('\n'.join(lines[-1:]))
    if out:
        out.write_text('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
