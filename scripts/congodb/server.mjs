// CongoDB on 127.0.0.1:PORT, in memory, until SIGTERM/SIGINT.
import { congodb } from '@push.rocks/smartmongo';

const port = parseInt(process.argv[2] || '', 10);
if (!(port > 0)) {
    console.error('usage: node server.mjs PORT');
    process.exit(2);
}
const server = new congodb.CongoServer({ port, host: '127.0.0.1', storage: 'memory' });
await server.start();
console.log(`congodb listening on 127.0.0.1:${port}`);
const stop = async () => { await server.stop(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
