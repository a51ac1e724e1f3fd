// Closes two gaps between CongoDB 2.2.0 and MongoDB that the chat store
// meets. Each edit must apply exactly where expected: a changed peer makes
// this fail loudly, not run unpatched.
//
// 1. CongoDB keys documents by ObjectId only (a string or compound _id fails
//    with "input must be a 24 character hex string"). MongoDB takes any BSON
//    value as _id, and the store uses natural keys (user name, msgid, "a|b")
//    so that a retried insert is the same document. The patch keys the
//    peer's maps by a string made from any _id.
// 2. Its hello answers at once with a new topologyVersion.processId each
//    time, so a pooled driver's monitor (awaitable hello, MongoDB >= 4.4)
//    sees a "changed" server and asks again at once: a busy loop, ~0.8 core
//    for an idle cluster. MongoDB keeps processId for its life and holds an
//    awaitable hello up to maxAwaitTimeMS; so does the patched peer.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('./node_modules/@push.rocks/smartmongo/dist_ts/congodb/',
    import.meta.url));
const KEY_FN = '\nconst congoIdKey = (id) => id instanceof plugins.bson.ObjectId ? ' +
    'id.toHexString() : \'k:\' + JSON.stringify(id);\n';
const PROCESS_ID = '\nconst congoProcessId = new plugins.bson.ObjectId();\n';
const AWAIT_HELLO = `const { command, server } = context;
        if (command.topologyVersion && Number(command.maxAwaitTimeMS) > 0)
            await new Promise((r) => setTimeout(r, Number(command.maxAwaitTimeMS)));`;

const preludes = {
    'storage/MemoryStorageAdapter.js': KEY_FN,
    'engine/IndexEngine.js': KEY_FN,
    'server/handlers/HelloHandler.js': PROCESS_ID,
};

const edits = {
    'server/handlers/HelloHandler.js': [
        ['processId: new plugins.bson.ObjectId(),', 'processId: congoProcessId,', 1],
        ['const { command, server } = context;', AWAIT_HELLO, 1],
    ],
    'storage/MemoryStorageAdapter.js': [
        ['_id: doc._id instanceof plugins.bson.ObjectId ? doc._id : new plugins.bson.ObjectId(doc._id),',
            '_id: doc._id ?? new plugins.bson.ObjectId(),', 1],
        ['storedDoc._id.toHexString()', 'congoIdKey(storedDoc._id)', 1],
        ['id.toHexString()', 'congoIdKey(id)', 4],
    ],
    'engine/IndexEngine.js': [
        ['doc._id.toHexString()', 'congoIdKey(doc._id)', 4],
        ['oldDoc._id.toHexString()', 'congoIdKey(oldDoc._id)', 1],
        ['newDoc._id.toHexString()', 'congoIdKey(newDoc._id)', 1],
    ],
};

for (const [file, list] of Object.entries(edits)) {
    const path = root + file;
    let text = readFileSync(path, 'utf8');
    if (text.includes('congo' + 'IdKey') || text.includes('congo' + 'ProcessId'))
        continue; // already patched
    for (const [from, to, count] of list) {
        const found = text.split(from).length - 1;
        if (found !== count) {
            console.error(`patch: ${file}: expected ${count} x "${from}", found ${found}`);
            process.exit(1);
        }
        text = text.split(from).join(to);
    }
    // after the imports: the first line that is not an import
    const at = text.indexOf('\n', text.lastIndexOf('\nimport ') + 1);
    text = text.slice(0, at) + preludes[file] + text.slice(at);
    writeFileSync(path, text);
}
console.log('congodb: string and compound _id, awaitable hello patched in');
