// CongoDB on HOST:PORT (HOST default 127.0.0.1), in memory, until SIGTERM/SIGINT.
import { congodb } from '@push.rocks/smartmongo';

const port = parseInt(process.argv[2] || '', 10);
const host = process.argv[3] || '127.0.0.1';
if (!(port > 0)) {
    console.error('usage: node server.mjs PORT [HOST]');
    process.exit(2);
}
const server = new congodb.CongoServer({ port, host, storage: 'memory' });
await server.start();
console.log(`congodb listening on ${host}:${port}`);
const stop = async () => { await server.stop(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
