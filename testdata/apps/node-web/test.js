// The app's test (`npm test`): starts it on a free port and asks both routes.
const http = require('http');
const assert = require('assert');
const { app } = require('./app');

function get(port, path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

const server = app().listen(0, '127.0.0.1', async () => {
  const { port } = server.server.address();
  try {
    assert.strictEqual(await get(port, '/'), 'hello from node-web\n');
    const greet = JSON.parse(await get(port, '/greet/solum'));
    assert.deepStrictEqual(greet, { greeting: 'hello solum', built: 2 });
    console.log('node-web tests passed');
  } finally {
    server.server.close();
  }
});
