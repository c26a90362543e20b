// Serves the app on $PORT (8080 when unset), on every address.
const { app } = require('./app');

const port = Number(process.env.PORT || 8080);
app().listen(port, '0.0.0.0', (err) => {
  if (err) throw err;
  console.log(`node-web listening on ${port}`);
});
