// Writes bundle/SOURCE.sha256: the digest of every input of the build, which
// tests/test_recovery_ui.py recomputes to say whether bundle/ is current.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';

const inputs = ['index.html', 'package.json', 'package-lock.json', 'vite.config.js',
  ...readdirSync('src').sort().map((name) => `src/${name}`)];
const hash = createHash('sha256');
for (const name of inputs) {
  hash.update(`${name}\n`);
  hash.update(readFileSync(name));
}
writeFileSync('bundle/SOURCE.sha256', `${hash.digest('hex')}\n`);
