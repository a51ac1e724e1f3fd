// pm2 ecosystem of the chat cluster: a gateway plus CHAT_NODES chat-nodes,
// and a private Redis and ZooKeeper unless external ones are given.
//
//   pm2 start ecosystem/ecosystem.config.js            (3 nodes, base port 7000)
//   CHAT_NODES=5 CHAT_REDIS=10.0.0.5:6379 pm2 start ecosystem/ecosystem.config.js
//
// ecosystem/cluster drives this file (it sets the env below, a private
// PM2_HOME and waits until everything serves); see ecosystem/README.md.
//
// Environment (all optional):
//   CHAT_RUN_DIR     run directory: secrets, logs, data     (<repo>/run)
//   CHAT_NODES       number of chat-nodes, 1..199           (3)
//   CHAT_GATEWAYS    gateway processes on the gateway port, 1..8: the kernel
//                    spreads connections over them (SO_REUSEPORT)  (1)
//   CHAT_FIRST_NODE  number of the first node (id n<K>)    (1)
//   CHAT_BASE_PORT   first port of the port scheme below    (7000)
//   CHAT_HOST        address every process listens on       (127.0.0.1)
//   CHAT_PUBLIC_HOST host in the URLs given to clients      (CHAT_HOST)
//   CHAT_REDIS       external Redis HOST:PORT; unset = start one
//   CHAT_REDIS_PASSWORD_FILE  the Redis password (a file, mode 600); default:
//                    generated RUN/redis.password for the local Redis, none
//                    for an external one
//   CHAT_ZK          external ZooKeeper HOST:PORT[,...]; unset = start one
//   CHAT_ZK_SERVERS  servers of the local ZooKeeper: 1, or 3 (an ensemble
//                    that outlives one server)                (1)
//   CHAT_ZK_ROOT     znode prefix of this cluster           (/chat)
//   CHAT_ZK_AUTH_FILE ZooKeeper digest credentials USER:PASSWORD (a file,
//                    mode 600)                    (generated RUN/zk.auth)
//   CHAT_STORE       sqlite:PATH or mongodb://...           (sqlite:RUN/chat.db)
//   CHAT_BIN_DIR     CMake build dir with the binaries      (<repo>/build)
//   CHAT_NODE_ARGS   extra chat-node flags, space separated
//   CHAT_GATEWAY_ARGS extra chat-gateway flags, space separated
//   CHAT_TLS         1: the gateway serves https:// only and the nodes wss://
//                    (and https:// for /healthz, /metrics) only    (off)
//   CHAT_TLS_CERT, CHAT_TLS_KEY  with CHAT_TLS=1: the certificate (PEM chain)
//                    and key to serve; unset = a local CA in RUN/tls made by
//                    scripts/tls-ca.sh (clients trust RUN/tls/ca.pem)
//
// Ports (BASE = CHAT_BASE_PORT):
//   BASE+0 Redis, BASE+1 ZooKeeper (BASE+1..3 for 3 servers, whose quorum
//   and election ports are BASE+4..6 and BASE+7..9), BASE+10 gateway,
//   BASE+20+j client port and BASE+220+j cluster port of the j-th node here
//   (j = 1..N; it is node K+j-1, app chat-node-<K+j-1>, K = CHAT_FIRST_NODE)
//
// Run as `node ecosystem.config.js plan` it prints the resolved settings as
// KEY=VALUE lines (the cluster script reads them: one source for the ports);
// `prepare` also creates the run dir, the secrets and the config files.
'use strict';

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const REPO = path.resolve(__dirname, '..');
// Per run dir: a 2-core box holds ~50 nodes of 20k connections each (the
// per-process fd limit), so the scheme leaves room for 199.
const MAX_NODES = 199;
// msgid numbers: node K is K, the gateway (its pushes get msgids) this one.
const GATEWAY_NUM = 1000;
// Gateway j (1..MAX_GATEWAYS) has msgid number GATEWAY_NUM + j - 1.
const MAX_GATEWAYS = 8;

function envOr(name, fallback) {
    const v = process.env[name];
    return v === undefined || v === '' ? fallback : v;
}

function intEnv(name, fallback, lo, hi) {
    const raw = envOr(name, String(fallback));
    const v = Number(raw);
    if (!Number.isInteger(v) || v < lo || v > hi)
        throw new Error(`${name}=${raw}: want an integer in ${lo}..${hi}`);
    return v;
}

function splitArgs(s) {
    return s.split(/\s+/).filter((a) => a !== '');
}

function resolvePlan() {
    const run = path.resolve(envOr('CHAT_RUN_DIR', path.join(REPO, 'run')));
    const base = intEnv('CHAT_BASE_PORT', 7000, 1024, 65535 - 220 - MAX_NODES);
    const host = envOr('CHAT_HOST', '127.0.0.1');
    const p = {
        run,
        nodes: intEnv('CHAT_NODES', 3, 1, MAX_NODES),
        gateways: intEnv('CHAT_GATEWAYS', 1, 1, MAX_GATEWAYS),
        first: intEnv('CHAT_FIRST_NODE', 1, 1, GATEWAY_NUM - MAX_NODES),
        base,
        host,
        publicHost: envOr('CHAT_PUBLIC_HOST', host === '0.0.0.0' ? '127.0.0.1' : host),
        localRedis: envOr('CHAT_REDIS', '') === '',
        localZk: envOr('CHAT_ZK', '') === '',
        redisPort: base,
        zkPort: base + 1,
        zkServers: intEnv('CHAT_ZK_SERVERS', 1, 1, 3),
        gatewayPort: base + 10,
        zkRoot: envOr('CHAT_ZK_ROOT', '/chat'),
        store: envOr('CHAT_STORE', 'sqlite:' + path.join(run, 'chat.db')),
        bin: path.resolve(envOr('CHAT_BIN_DIR', path.join(REPO, 'build'))),
        secretFile: path.join(run, 'cluster.secret'),
        // Redis and ZooKeeper credentials: files, never command-line values
        redisPasswordFile: envOr('CHAT_REDIS_PASSWORD_FILE',
            envOr('CHAT_REDIS', '') === '' ? path.join(run, 'redis.password') : ''),
        zkAuthFile: envOr('CHAT_ZK_AUTH_FILE', path.join(run, 'zk.auth')),
        tokenFile: path.join(run, 'push.token'),
        dirtyFile: path.join(run, 'dirty-words.txt'),
        logs: path.join(run, 'logs'),
        nodeArgs: splitArgs(envOr('CHAT_NODE_ARGS', '')),
        gatewayArgs: splitArgs(envOr('CHAT_GATEWAY_ARGS', '')),
        tls: envOr('CHAT_TLS', '') === '1',
        tlsDir: path.join(run, 'tls'),
    };
    const ownCert = envOr('CHAT_TLS_CERT', '');
    if (!ownCert !== !envOr('CHAT_TLS_KEY', ''))
        throw new Error('CHAT_TLS_CERT and CHAT_TLS_KEY go together');
    p.tlsCert = ownCert || path.join(p.tlsDir, 'server.pem');
    p.tlsKey = envOr('CHAT_TLS_KEY', path.join(p.tlsDir, 'server.key'));
    // Clients trust our local CA; a certificate of the user's comes with its own trust.
    p.tlsCa = p.tls && !ownCert ? path.join(p.tlsDir, 'ca.pem') : '';
    p.redis = envOr('CHAT_REDIS', `127.0.0.1:${p.redisPort}`);
    if (p.zkServers === 2)
        throw new Error('CHAT_ZK_SERVERS=2: want 1 or 3 (two servers survive no loss)');
    p.zk = envOr('CHAT_ZK', zkIds(p).map((i) => `127.0.0.1:${p.zkPort + i - 1}`).join(','));
    p.scheme = p.tls ? 'https' : 'http';
    p.gatewayUrl = `${p.scheme}://${p.publicHost}:${p.gatewayPort}`;
    return p;
}

// Local ZooKeeper servers 1..Z and their ports.
const zkIds = (p) => Array.from({ length: p.zkServers }, (_, i) => i + 1);
const zkClientPort = (p, i) => p.zkPort + i - 1;
const zkName = (p, i) => (p.zkServers === 1 ? 'chat-zookeeper' : `chat-zookeeper-${i}`);
const zkDir = (p, i) => path.join(p.run, p.zkServers === 1 ? 'zk' : `zk${i}`);

// Node numbers K..K+N-1 on this machine; ports by position, not by number.
const nodeNums = (p) => Array.from({ length: p.nodes }, (_, j) => p.first + j);
const nodePort = (p, k) => p.base + 20 + (k - p.first + 1);
const clusterPort = (p, k) => p.base + 20 + MAX_NODES + 1 + (k - p.first + 1);

// Secrets are made once and kept: restarting must not change them.
function ensureSecretFile(file, prefix) {
    if (fs.existsSync(file))
        return;
    fs.writeFileSync(file, (prefix || '') + crypto.randomBytes(32).toString('hex') + '\n',
        { mode: 0o600, flag: 'wx' });
}

// One of ours is made when missing; one the user named must exist.
function ensureCredential(file, ours, prefix) {
    if (file === '')
        return;
    if (file === ours)
        ensureSecretFile(file, prefix);
    else if (!fs.existsSync(file))
        throw new Error(`${file}: no such credentials file`);
}

// The local CA and a certificate for every name clients may use (made once).
function ensureTlsFiles(p) {
    if (!p.tls || p.tlsCa === '' || (fs.existsSync(p.tlsCert) && fs.existsSync(p.tlsKey)))
        return;
    const names = [...new Set(['127.0.0.1', '::1', 'localhost', p.publicHost,
        ...(p.host === '0.0.0.0' ? [] : [p.host])])];
    childProcess.execFileSync(path.join(REPO, 'scripts', 'tls-ca.sh'), [p.tlsDir, 'server', ...names],
        { stdio: ['ignore', 'ignore', 'inherit'] });
}

function readSecret(file) {
    return fs.readFileSync(file, 'utf8').trim();
}

function ensureRunDir(p) {
    for (const d of [p.run, p.logs, path.join(p.run, 'redis'), ...zkIds(p).map((i) => zkDir(p, i))])
        fs.mkdirSync(d, { recursive: true, mode: 0o700 });
    ensureSecretFile(p.secretFile);
    ensureSecretFile(p.tokenFile);
    ensureCredential(p.redisPasswordFile, path.join(p.run, 'redis.password'));
    ensureCredential(p.zkAuthFile, path.join(p.run, 'zk.auth'), 'chat:');
    if (!fs.existsSync(p.dirtyFile))
        fs.writeFileSync(p.dirtyFile, '# words to mask in chat, one per line\n', { flag: 'wx' });
    if (p.localRedis)
        writeRedisConf(p);
    ensureTlsFiles(p);
}

// What every app shares: crashed processes come back after 0.1 s, the
// pause growing 1.5x per crash up to 15 s while one keeps crashing (pm2
// starts over once it ran 30 s), one log file per app, and a clean SIGINT
// shutdown before SIGKILL.
function app(p, name, script, args, extra) {
    const log = path.join(p.logs, `${name}.log`);
    return Object.assign({
        name,
        script,
        args,
        interpreter: 'none',
        cwd: p.run,
        autorestart: true,
        exp_backoff_restart_delay: 100,
        min_uptime: 3000,
        max_restarts: 30,
        kill_timeout: 5000,
        out_file: log,
        error_file: log,
        merge_logs: true,
    }, extra || {});
}

// A config file rather than flags: pm2 may drop an empty argument (save ""),
// and the password stays off the command line (mode 600: it holds it).
function writeRedisConf(p) {
    const dir = path.join(p.run, 'redis');
    const conf = path.join(dir, 'redis.conf');
    const lines = [
        `port ${p.redisPort}`, 'bind 127.0.0.1', 'daemonize no', `dir ${dir}`,
        'save ""', 'appendonly no', 'protected-mode yes',
    ];
    if (p.redisPasswordFile !== '') {
        const pw = readSecret(p.redisPasswordFile);
        if (!/^[\x21-\x7e]+$/.test(pw))
            throw new Error(`${p.redisPasswordFile}: want one word of printable ASCII`);
        lines.push(`requirepass ${pw}`);
    }
    fs.writeFileSync(conf, lines.join('\n') + '\n', { mode: 0o600 });
    fs.chmodSync(conf, 0o600); // a conf from an older run may be 644
}

const redisAuthArgs = (p) => (p.redisPasswordFile === '' ? [] : ['--redis-password-file', p.redisPasswordFile]);

function redisApp(p) {
    return app(p, 'chat-redis', 'redis-server', [path.join(p.run, 'redis', 'redis.conf')]);
}

function zkApp(p, i) {
    const args = ['run', zkDir(p, i), String(zkClientPort(p, i))];
    if (p.zkServers > 1) {
        const servers = zkIds(p).map((j) => `${j}=127.0.0.1:${p.zkPort + 2 + j}:${p.zkPort + 5 + j}`);
        args.push('--id', String(i), '--servers', servers.join(','));
    }
    return app(p, zkName(p, i), path.join(REPO, 'scripts', 'zookeeper.sh'), args,
        { interpreter: 'bash' });
}

const tlsArgs = (p) => (p.tls ? ['--tls-cert', p.tlsCert, '--tls-key', p.tlsKey] : []);

// The first gateway is chat-gateway, the others chat-gateway-2.. (same port).
const gatewayName = (j) => (j === 1 ? 'chat-gateway' : `chat-gateway-${j}`);
const gatewayNames = (p) => Array.from({ length: p.gateways }, (_, i) => gatewayName(i + 1));

function gatewayApp(p, j) {
    return app(p, gatewayName(j), path.join(p.bin, 'gateway', 'chat-gateway'), [
        '--listen', `${p.host}:${p.gatewayPort}`, '--redis', p.redis,
        '--push-token-file', p.tokenFile, '--num', String(GATEWAY_NUM + j - 1),
        ...(p.gateways > 1 ? ['--shared-port'] : []),
        '--web-root', path.join(REPO, 'client', 'web'), ...redisAuthArgs(p), ...tlsArgs(p),
        ...p.gatewayArgs,
    ]);
}

function nodeApp(p, k) {
    return app(p, `chat-node-${k}`, path.join(p.bin, 'node', 'chat-node'), [
        '--id', `n${k}`, '--num', String(k),
        '--listen', `${p.host}:${nodePort(p, k)}`,
        '--public-url', `${p.tls ? 'wss' : 'ws'}://${p.publicHost}:${nodePort(p, k)}/ws`, ...tlsArgs(p),
        '--redis', p.redis, '--store', p.store, '--dirty-words', p.dirtyFile,
        '--zk', p.zk, '--zk-root', p.zkRoot,
        '--cluster-listen', `${p.host}:${clusterPort(p, k)}`,
        '--cluster-secret-file', p.secretFile, ...redisAuthArgs(p),
        '--zk-auth-file', p.zkAuthFile, ...p.nodeArgs,
    ]);
}

function apps(p) {
    const list = [];
    if (p.localRedis)
        list.push(redisApp(p));
    if (p.localZk)
        for (const i of zkIds(p))
            list.push(zkApp(p, i));
    for (let j = 1; j <= p.gateways; j++)
        list.push(gatewayApp(p, j));
    for (const k of nodeNums(p))
        list.push(nodeApp(p, k));
    return list;
}

// KEY=VALUE lines for the shell; values never hold newlines or quotes.
function printPlan(p) {
    const names = apps(p).map((a) => a.name);
    const nums = nodeNums(p);
    const urls = nums.map((k) => `chat-node-${k}=${p.scheme}://${p.publicHost}:${nodePort(p, k)}`);
    const ports = [`chat-gateway:${p.gatewayPort}`];
    if (p.localRedis)
        ports.push(`chat-redis:${p.redisPort}`);
    if (p.localZk)
        for (const i of zkIds(p))
            ports.push(`${zkName(p, i)}:${zkClientPort(p, i)}`);
    for (const k of nums)
        ports.push(`chat-node-${k}:${nodePort(p, k)}`, `chat-node-${k}:${clusterPort(p, k)}`);
    const out = {
        RUN_DIR: p.run, NODES: p.nodes, BASE_PORT: p.base, REDIS: p.redis, ZK: p.zk,
        LOCAL_REDIS: p.localRedis ? 1 : 0, LOCAL_ZK: p.localZk ? 1 : 0,
        REDIS_PORT: p.redisPort, ZK_PORT: p.zkPort, GATEWAY_URL: p.gatewayUrl,
        ZK_APPS: p.localZk ? zkIds(p).map((i) => zkName(p, i)).join(' ') : '',
        STORE: p.store, BIN_DIR: p.bin, TOKEN_FILE: p.tokenFile, SECRET_FILE: p.secretFile,
        REDIS_PASSWORD_FILE: p.redisPasswordFile, ZK_AUTH_FILE: p.zkAuthFile,
        LOG_DIR: p.logs, APPS: names.join(' '), NODE_URLS: urls.join(' '), TLS_CA: p.tlsCa,
        TLS: p.tls ? 1 : 0,
        NODE_APPS: nums.map((k) => `chat-node-${k}`).join(' '), LISTEN_PORTS: ports.join(' '),
        GATEWAY_APPS: gatewayNames(p).join(' '),
    };
    for (const [k, v] of Object.entries(out)) {
        if (/[\n'"]/.test(String(v)))
            throw new Error(`${k} holds a quote or newline: ${v}`);
        console.log(`${k}='${v}'`);
    }
}

function main(verb) {
    if (verb !== 'plan' && verb !== 'prepare') {
        console.error('usage: node ecosystem.config.js plan|prepare');
        return 2;
    }
    try {
        const p = resolvePlan();
        if (verb === 'prepare')
            ensureRunDir(p);
        printPlan(p);
        return 0;
    } catch (e) {
        console.error(`ecosystem: ${e.message}`);
        return 1;
    }
}

if (require.main === module) {
    process.exitCode = main(process.argv[2]);
} else {
    const plan = resolvePlan();
    ensureRunDir(plan);
    module.exports = { apps: apps(plan) };
}
