// The app's build step (`npm run build`): writes build-info.json, checked with a dev
// dependency that the DU does not keep.
const fs = require('fs');
const isNumber = require('is-number');

const routes = 2;
if (!isNumber(routes)) throw new Error('routes is not a number');
fs.writeFileSync('build-info.json', JSON.stringify({ routes }) + '\n');
console.log('node-web: wrote build-info.json');
