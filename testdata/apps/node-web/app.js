// The app's routes, apart from the listening, so that test.js can start it on any port.
const polka = require('polka');
const info = require('./build-info.json');

function app() {
  return polka()
    .get('/', (req, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.end('hello from node-web\n');
    })
    .get('/greet/:name', (req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ greeting: `hello ${req.params.name}`, built: info.routes }));
    });
}

module.exports = { app };
