// The Python package's __version__ (flyte_nb/_version.py) is the one source of truth: this check
// fails the build when package.json says otherwise, and `node scripts/check-version.mjs --fix`
// copies it over. PEP 440 pre-releases map to semver: 1.2.0a1 -> 1.2.0-alpha.1, rc2 -> -rc.2.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const init = join(here, '..', 'flyte_nb', '_version.py');
const found = readFileSync(init, 'utf8').match(/^__version__\s*=\s*["']([^"']+)["']/m);
if (!found) {
  console.error(`check-version: no __version__ in ${init}`);
  process.exit(1);
}
const semver = found[1]
  .replace(/^(\d+\.\d+\.\d+)(a|b|rc)(\d+)$/, (_, v, kind, n) => `${v}-${{ a: 'alpha', b: 'beta', rc: 'rc' }[kind]}.${n}`)
  .replace(/^(\d+\.\d+\.\d+)\.dev(\d+)$/, '$1-dev.$2');
const packagePath = join(here, 'package.json');
const text = readFileSync(packagePath, 'utf8');
const pkg = JSON.parse(text);
if (pkg.version === semver) {
  process.exit(0);
}
if (process.argv.includes('--fix')) {
  writeFileSync(packagePath, text.replace(`"version": "${pkg.version}"`, `"version": "${semver}"`));
  console.log(`check-version: package.json version ${pkg.version} -> ${semver}`);
  process.exit(0);
}
console.error(
  `check-version: package.json says ${pkg.version} but flyte_nb.__version__ is ${found[1]} (${semver}).\n` +
    'Run `node scripts/check-version.mjs --fix` in labextension/.'
);
process.exit(1);
