// The book's kubia app (Kubernetes in Action, chapter 2), with the version in the answer.
const http = require('http');
const os = require('os');

const version = process.env.APP_VERSION || 'v1';
console.log('Kubia server starting...');

const server = http.createServer((request, response) => {
  console.log('Received request from ' + request.connection.remoteAddress);
  response.writeHead(200);
  response.end('This is ' + version + ' running in pod ' + os.hostname() + '\n');
});
server.listen(8080);

// finish the requests in flight on SIGTERM, so a rollout drops none
process.on('SIGTERM', () => server.close(() => process.exit(0)));
