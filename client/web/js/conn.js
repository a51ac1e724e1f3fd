// The protocol connection (PROTOCOL.md): asks the gateway (this page's
// origin) for a node, holds one WebSocket, matches answers to requests by
// id, hands events to the app, and reconnects with the resume token
// (exponential backoff 0.5 s .. 15 s with full jitter) when the socket drops:
// to the node of the last session first, the gateway only when that node
// does not take the socket (client/README.md, "Reconnects").

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const REQUEST_TIMEOUT_MS = 15000;
const OPEN_TIMEOUT_MS = 10000; // a node that never completes the handshake
const LAST_OPEN_TIMEOUT_MS = 3000; // the last node: failing it only means asking

export class ChatError extends Error {
    constructor(code, text) {
        super(text || `error ${code}`);
        this.code = code;
    }
}

export class Connection {
    // onEvent(name, data); onStatus(state, detail): "connecting" | "online" |
    // "reconnecting" | "offline"; onSession(session) after every login.
    constructor({ onEvent, onStatus, onSession, onKicked }) {
        this.onEvent = onEvent;
        this.onStatus = onStatus;
        this.onSession = onSession;
        this.onKicked = onKicked;
        this.ws = null;
        this.nextId = 1;
        this.waiting = new Map();
        this.credentials = null; // {user, token} once logged in
        this.attempt = 0;
        this.timer = null;
        this.closedByUs = false;
        this.node = '';
        this.url = '';
        this.last = null; // {url, node} of the last session: a resume tries it first
        this.lastTried = false; // this socket is that try
    }

    async servers() {
        const r = await fetch('/servers', { cache: 'no-store' });
        const body = await r.json().catch(() => ({}));
        const list = Array.isArray(body.servers) ? body.servers : [];
        if (!list.length) throw new ChatError(503, 'no chat server is available');
        return list;
    }

    // Opens a socket: on a resume to the last session's node if it takes
    // it, else to the first node of the gateway's list that does.
    async open() {
        this.onStatus(this.credentials ? 'reconnecting' : 'connecting');
        this.lastTried = false;
        if (this.credentials && this.last) {
            try {
                await this.openSocket(this.last.url, LAST_OPEN_TIMEOUT_MS);
                this.node = this.last.node;
                this.lastTried = true;
                return;
            } catch {
                // not there (yet): ask the gateway
            }
        }
        const list = await this.servers();
        let last = null;
        for (const s of list) {
            try {
                await this.openSocket(s.url);
                this.node = s.id || '';
                return;
            } catch (e) {
                last = e;
            }
        }
        throw last || new ChatError(503, 'no chat server answers');
    }

    openSocket(url, timeoutMs = OPEN_TIMEOUT_MS) {
        return new Promise((resolve, reject) => {
            const ws = new WebSocket(url);
            const timer = setTimeout(() => ws.close(), timeoutMs);
            const fail = () => {
                clearTimeout(timer);
                reject(new ChatError(503, `cannot connect to ${url}`));
            };
            ws.onerror = fail;
            ws.onclose = fail;
            ws.onopen = () => {
                clearTimeout(timer);
                ws.onerror = null;
                ws.onclose = (ev) => this.dropped(ws, ev);
                ws.onmessage = (ev) => this.received(ev.data);
                this.ws = ws;
                this.url = url;
                resolve();
            };
        });
    }

    received(text) {
        let m;
        try {
            m = JSON.parse(text);
        } catch {
            return;
        }
        if (m && typeof m.event === 'string') {
            if (m.event === 'kicked') {
                this.credentials = null; // never resume a session ended elsewhere
                this.closedByUs = true;
                this.onKicked(m.data || {});
            }
            this.onEvent(m.event, m.data || {});
            return;
        }
        const w = m && this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        clearTimeout(w.timer);
        if (m.code === 0) w.resolve(m.data || {});
        else w.reject(new ChatError(m.code, m.error));
    }

    request(action, data = {}) {
        return new Promise((resolve, reject) => {
            if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
                reject(new ChatError(503, 'not connected'));
                return;
            }
            const id = this.nextId++;
            const timer = setTimeout(() => {
                this.waiting.delete(id);
                reject(new ChatError(504, 'no answer'));
            }, REQUEST_TIMEOUT_MS);
            this.waiting.set(id, { resolve, reject, timer });
            this.ws.send(JSON.stringify({ id, action, data }));
        });
    }

    failWaiting() {
        for (const w of this.waiting.values()) {
            clearTimeout(w.timer);
            w.reject(new ChatError(503, 'connection lost'));
        }
        this.waiting.clear();
    }

    async register(user, password, nickname) {
        if (!this.ws) await this.open();
        const data = { user, password };
        if (nickname) data.nickname = nickname;
        return this.request('register', data);
    }

    // Password or token login; keeps the token for resuming.
    async login(user, secret, isToken = false) {
        if (!this.ws) await this.open();
        const data = isToken ? { user, token: secret } : { user, password: secret };
        const s = await this.request('login', data);
        this.credentials = { user: s.user, token: s.token };
        this.last = { url: this.url, node: this.node };
        this.attempt = 0;
        this.closedByUs = false;
        this.onStatus('online', this.node);
        this.onSession(s);
        return s;
    }

    async logout() {
        this.closedByUs = true;
        this.credentials = null;
        try {
            await this.request('logout');
        } catch {
            // the node closes the socket anyway
        }
        this.close();
    }

    close() {
        clearTimeout(this.timer);
        if (this.ws) {
            const ws = this.ws;
            this.ws = null;
            ws.onclose = null;
            ws.close(1000);
        }
        this.failWaiting();
        this.onStatus('offline');
    }

    dropped(ws, ev) {
        if (ws !== this.ws) return;
        this.ws = null;
        this.failWaiting();
        if (ev.code === 1001) this.last = null; // the node is going away: ask the gateway
        if (this.closedByUs || !this.credentials || ev.code === 1000) {
            this.onStatus('offline');
            return;
        }
        this.scheduleResume();
    }

    scheduleResume() {
        const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
        const delay = Math.round(Math.random() * cap); // full jitter
        this.attempt++;
        this.onStatus('reconnecting', `retry in ${(delay / 1000).toFixed(1)} s`);
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.resume(), delay);
    }

    async resume() {
        if (!this.credentials) return;
        try {
            await this.open();
            await this.login(this.credentials.user, this.credentials.token, true);
        } catch (e) {
            if (this.lastTried) this.last = null; // it takes sockets but cannot serve us
            if (this.ws) {
                this.ws.onclose = null;
                this.ws.close();
                this.ws = null;
            }
            if (e instanceof ChatError && e.code === 401) {
                this.credentials = null; // token expired: back to the login form
                this.onStatus('offline', 'session expired');
                this.onKicked({ reason: 'session expired' });
                return;
            }
            this.scheduleResume();
        }
    }
}
