// render.mjs TEMPLATE OUT: copies TEMPLATE to OUT, replacing every @NAME@
// with the environment variable TPL_NAME.  A placeholder without a value is
// an error, so a template and run.sh cannot drift apart silently.
// (Node instead of sed: values such as URLs need no escaping here.)

import fs from 'node:fs';

const [template, out] = process.argv.slice(2);
if (!template || !out) {
  process.stderr.write('usage: render.mjs TEMPLATE OUT\n');
  process.exit(2);
}

const missing = new Set();
const text = fs.readFileSync(template, 'utf8').replace(/@([A-Z][A-Z0-9_]*)@/g,
  (whole, name) => {
    const value = process.env[`TPL_${name}`];
    if (value === undefined) {
      missing.add(name);
      return whole;
    }
    return value;
  });

if (missing.size) {
  process.stderr.write(`render.mjs: ${template}: no value for ` +
    [...missing].map((n) => `TPL_${n}`).join(', ') + '\n');
  process.exit(1);
}

fs.writeFileSync(out, text);
