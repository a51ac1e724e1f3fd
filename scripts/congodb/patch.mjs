// Closes one gap between CongoDB 2.2.0 and MongoDB that the chat store
// meets: CongoDB keys documents by ObjectId only (a string or compound _id
// fails with "input must be a 24 character hex string"). MongoDB takes any
// BSON value as _id, and the store uses natural keys (user name, msgid,
// "a|b") so that a retried insert is the same document. The patch keys the
// peer's maps by a string made from any _id. Each edit must apply exactly
// where expected: a changed peer makes this fail loudly, not run unpatched.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('./node_modules/@push.rocks/smartmongo/dist_ts/congodb/',
    import.meta.url));
const KEY_FN = '\nconst congoIdKey = (id) => id instanceof plugins.bson.ObjectId ? ' +
    'id.toHexString() : \'k:\' + JSON.stringify(id);\n';

const edits = {
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
    if (text.includes('congoIdKey')) continue; // already patched
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
    text = text.slice(0, at) + KEY_FN + text.slice(at);
    writeFileSync(path, text);
}
console.log('congodb: string and compound _id patched in');
