// Remove what a build writes (TypeScript output and the built extension), portably.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
for (const path of ['lib', 'tsconfig.tsbuildinfo', join('..', 'flyte_nb', 'labextension')]) {
  rmSync(join(here, path), { recursive: true, force: true });
}
