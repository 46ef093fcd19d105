"""Packaging for diffinject. Every setting lives in settings.ini (nbdev 2): edit there, not here."""
from configparser import ConfigParser
from pathlib import Path
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

required = 'version description keywords author author_email license status min_python user lib_name'.split()
missing = [k for k in required if k not in cfg]
if missing: raise ValueError(f'settings.ini is missing: {missing}')

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature']
py_versions = '3.10 3.11 3.12 3.13'.split()
lic = licenses.get(cfg['license'].lower())
min_py = cfg['min_python']

def _split(key): return cfg.get(key, '').split()

console = [f'{o}' for o in _split('console_scripts')]
readme = Path('README.md')

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else cfg['description'],
    long_description_content_type='text/markdown',
    keywords=cfg['keywords'],
    author=cfg['author'], author_email=cfg['author_email'],
    url=cfg['git_url'],
    license=lic[0] if lic else cfg['license'],
    classifiers=['Development Status :: ' + statuses[int(cfg['status']) - 1],   # status = 3 -> '3 - Alpha'
                 'Intended Audience :: ' + cfg['audience'],
                 'Natural Language :: ' + cfg['language'].title()]
                + ([f'License :: {lic[1]}'] if lic else [])
                + [f'Programming Language :: Python :: {v}' for v in py_versions[py_versions.index(min_py):]],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True,
    package_data={cfg['lib_name']: ['assets/*', 'assets/*/*']},
    install_requires=_split('requirements'),
    extras_require={'dev': _split('dev_requirements'), 'bench': _split('bench_requirements')},
    python_requires='>=' + min_py,
    zip_safe=False,
    entry_points={'console_scripts': console, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)
