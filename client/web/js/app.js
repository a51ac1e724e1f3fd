// The web client: state, rendering and the protocol's actions. Text from
// other users only ever reaches the page through textContent (never as
// HTML), and the gateway's Content-Security-Policy forbids inline script.
import { ChatError, Connection } from './conn.js';

const SESSION_KEY = 'chat.session';
const HISTORY_PAGE = 30;
const ACK_DELAY_MS = 200;
const NOTICE_MS = 8000;

const $ = (id) => document.getElementById(id);

// el('li', {class: 'x', dataset: {a: 1}, onclick}, child, 'text', ...)
function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'dataset') Object.assign(e.dataset, v);
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
        if (c === null || c === undefined || c === false) continue;
        e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
}

function clock(ts) {
    const d = new Date(Number(ts) || Date.now());
    const sameDay = d.toDateString() === new Date().toDateString();
    const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return sameDay ? hm : `${d.toLocaleDateString()} ${hm}`;
}

// ------------------------------------------------------------------ state

const state = {
    me: null,
    convs: new Map(),      // key -> conversation
    active: null,          // key
    friends: new Map(),    // user -> {user, nickname, online}
    requestsIn: new Map(), // from -> note
    requestsOut: new Set(),
    groups: new Map(),     // gid -> {group, name, members}
    rooms: new Map(),      // room -> {room, title, members}
    joinedRooms: new Set(),
    toAck: [],
    ackTimer: null,
};

function conv(kind, id, title) {
    const key = `${kind}:${id}`;
    let c = state.convs.get(key);
    if (!c) {
        c = { key, kind, id, title: title || id, messages: [], ids: new Set(), unread: 0,
              last: '', loaded: false, complete: false };
        state.convs.set(key, c);
    } else if (title) {
        c.title = title;
    }
    return c;
}

const connection = new Connection({
    onEvent: (name, data) => onEvent(name, data),
    onStatus: (s, detail) => showStatus(s, detail),
    onSession: (s) => sessionStarted(s),
    onKicked: (d) => kicked(d),
});

// ------------------------------------------------------------------ status, notices

function showStatus(s, detail) {
    const box = $('status');
    document.body.dataset.status = s;
    const text = {
        connecting: 'Connecting…',
        reconnecting: `Connection lost, reconnecting${detail ? ` (${detail})` : ''}…`,
        offline: detail ? `Offline: ${detail}` : '',
        online: '',
    }[s];
    box.textContent = text || '';
    box.hidden = !text;
    box.className = `status ${s}`;
    if (s === 'online') document.body.dataset.node = detail || '';
}

function notice(text, kind = 'info') {
    const n = el('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
    $('notices').append(n);
    setTimeout(() => n.remove(), NOTICE_MS);
}

function failed(e) {
    notice(e instanceof ChatError ? `${e.message} (${e.code})` : String(e.message || e), 'error');
}

// ------------------------------------------------------------------ login

function saveSession(s) {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({ user: s.user, token: s.token }));
}

function showLogin(message) {
    $('app-view').hidden = true;
    $('login-view').hidden = false;
    $('login-error').textContent = message || '';
    $('login-user').focus();
}

async function submitLogin(register) {
    const user = $('login-user').value.trim();
    const password = $('login-password').value;
    const nickname = $('login-nickname').value.trim();
    $('login-error').textContent = '';
    if (!user || !password) {
        $('login-error').textContent = 'Enter a user name and a password.';
        return;
    }
    try {
        if (register) await connection.register(user, password, nickname);
        await connection.login(user, password);
        $('login-password').value = '';
    } catch (e) {
        const known = { 400: 'Check the name (letters, digits, _ . -) and the password (6 characters or more).',
                        401: 'Wrong user name or password.', 409: 'That user name is taken.' };
        $('login-error').textContent = known[e.code] || e.message || 'Cannot reach the chat service.';
    }
}

function kicked(d) {
    sessionStorage.removeItem(SESSION_KEY);
    showLogin(d.reason === 'login elsewhere' ? 'You logged in somewhere else.' : (d.reason || 'Logged out.'));
}

async function sessionStarted(s) {
    const again = state.me && state.me.user === s.user;
    document.body.dataset.ready = ''; // set once lists are loaded and rooms joined again
    state.me = { user: s.user, nickname: s.nickname };
    saveSession(s);
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    $('me').textContent = s.nickname && s.nickname !== s.user ? `${s.nickname} (${s.user})` : s.user;
    $('node').textContent = s.node ? `node ${s.node}` : '';
    document.body.dataset.user = s.user;
    if (!again) {
        state.convs.clear();
        state.active = null;
        state.joinedRooms.clear();
        renderConversation();
    }
    await Promise.allSettled([loadFriends(), loadGroups(), loadRooms(), loadHot()]);
    // room membership is live: a resumed session joins its rooms again
    for (const room of [...state.joinedRooms]) await rejoin(room);
    if (state.active) await refreshActive();
    renderSidebar();
    document.body.dataset.ready = 'yes';
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// While the cluster replaces its leader, room_join answers 503: try again
// (for up to 30 s); a room that is gone (404) is dropped.
async function rejoin(room) {
    for (let i = 0; i < 60; i++) {
        try {
            await connection.request('room_join', { room });
            return;
        } catch (e) {
            if (e.code === 409) return; // already in
            if (e.code !== 503 && e.code !== 504) break;
            await sleep(500);
        }
    }
    state.joinedRooms.delete(room);
    notice(`Left the room ${room}: it cannot be joined again`, 'error');
}

// ------------------------------------------------------------------ loading lists

async function loadFriends() {
    const d = await connection.request('friends');
    state.friends = new Map(d.friends.map((f) => [f.user, f]));
    for (const f of d.friends) conv('d', f.user, f.nickname && f.nickname !== f.user ? f.nickname : f.user);
    renderSidebar();
}

async function loadGroups() {
    const d = await connection.request('groups');
    state.groups = new Map(d.groups.map((g) => [g.group, g]));
    for (const g of d.groups) conv('g', g.group, g.name);
    renderSidebar();
}

async function loadRooms() {
    const d = await connection.request('rooms');
    state.rooms = new Map(d.rooms.map((r) => [r.room, r]));
    renderSidebar();
}

async function loadHot() {
    const d = await connection.request('popular', { limit: 10 });
    const list = $('hot-list');
    list.replaceChildren(...d.words.map((w) => el('li', {}, w.word, el('span', { class: 'count' }, ` ${w.count}`))));
}

// ------------------------------------------------------------------ events

function onEvent(name, d) {
    switch (name) {
    case 'chat': {
        const peer = d.from === state.me?.user ? d.to : d.from;
        addMessage(conv('d', peer), d, true);
        queueAck(d.msgid);
        break;
    }
    case 'group_chat':
        addMessage(conv('g', d.group, state.groups.get(d.group)?.name), d, true);
        queueAck(d.msgid);
        break;
    case 'room_chat':
        addMessage(conv('r', d.room), d, true);
        break;
    case 'receipt':
        markDelivered(d.msgid, d.by);
        break;
    case 'friend_request':
        state.requestsIn.set(d.from, d.note || '');
        notice(`${d.from} wants to be your friend`);
        renderSidebar();
        break;
    case 'friend_reply':
        state.requestsOut.delete(d.from);
        notice(d.accept ? `${d.from} accepted your friend request` : `${d.from} declined your friend request`);
        if (d.accept) loadFriends().catch(failed);
        renderSidebar();
        break;
    case 'presence': {
        const f = state.friends.get(d.user);
        if (f) {
            f.online = !!d.online;
            renderSidebar();
        }
        break;
    }
    case 'system':
        notice(`System: ${d.message}`, 'system');
        break;
    default:
        break;
    }
}

function queueAck(msgid) {
    if (!msgid) return;
    state.toAck.push(msgid);
    if (!state.ackTimer) {
        state.ackTimer = setTimeout(() => {
            const msgids = state.toAck.splice(0, 100);
            state.ackTimer = null;
            connection.request('ack', { msgids }).catch(() => {}); // unacked comes again at login
            if (state.toAck.length) queueAck(state.toAck.pop());
        }, ACK_DELAY_MS);
    }
}

// ------------------------------------------------------------------ messages

function addMessage(c, m, live) {
    if (!m.msgid || c.ids.has(m.msgid)) return; // at-least-once: show once
    c.ids.add(m.msgid);
    const msg = { msgid: m.msgid, from: m.from, ts: m.ts, text: m.message ?? '', format: m.format || 'text',
                  delivered: false };
    // keep msgid order (it sorts in send order within a conversation)
    let i = c.messages.length;
    while (i > 0 && c.messages[i - 1].msgid > msg.msgid) i--;
    c.messages.splice(i, 0, msg);
    if (i === c.messages.length - 1) c.last = `${m.from}: ${preview(msg)}`;
    if (live && c.key !== state.active && m.from !== state.me?.user) c.unread++;
    if (c.key === state.active) renderMessages(c, i === c.messages.length - 1);
    renderSidebar();
}

function preview(msg) {
    return msg.format === 'group-invite' ? 'invited you to a group' : msg.text.slice(0, 60);
}

function markDelivered(msgid, by) {
    for (const c of state.convs.values()) {
        const m = c.messages.find((x) => x.msgid === msgid);
        if (m) {
            m.delivered = true;
            m.by = by;
            if (c.key === state.active) renderMessages(c, false);
            return;
        }
    }
}

function invite(msg) {
    let g = null;
    try {
        g = JSON.parse(msg.text);
    } catch {
        return msg.text;
    }
    if (!g || typeof g.group !== 'string') return msg.text;
    return el('span', {}, `Invitation to the group "${g.name || g.group}" `,
        el('button', { class: 'small', onclick: () => joinGroup(g.group) }, 'Join'));
}

function messageItem(m) {
    const mine = m.from === state.me?.user;
    return el('li', { class: mine ? 'msg mine' : 'msg', dataset: { msgid: m.msgid, from: m.from } },
        el('div', { class: 'meta' }, el('span', { class: 'from' }, m.from), ' ',
            el('time', { datetime: new Date(Number(m.ts) || 0).toISOString() }, clock(m.ts))),
        el('div', { class: 'text' }, m.format === 'group-invite' ? invite(m) : m.text),
        mine && m.sentHere && state.convs.get(state.active)?.kind === 'd' // receipts come to the sender's session
            ? el('div', { class: 'state' }, m.delivered ? 'delivered' : 'sent') : null);
}

function renderMessages(c, toBottom) {
    const box = $('messages');
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
    $('message-list').replaceChildren(...c.messages.map(messageItem));
    $('older-button').hidden = c.complete || c.kind === 'r' && c.messages.length === 0;
    if (toBottom || nearBottom) box.scrollTop = box.scrollHeight;
}

function historyQuery(c) {
    return c.kind === 'd' ? { with: c.id } : c.kind === 'g' ? { group: c.id } : { room: c.id };
}

async function loadOlder(c) {
    const q = { ...historyQuery(c), limit: HISTORY_PAGE };
    if (c.messages.length) q.before = c.messages[0].msgid;
    const d = await connection.request('history', q);
    for (const m of d.messages) addMessage(c, m, false);
    if (d.messages.length < HISTORY_PAGE) c.complete = true;
    c.loaded = true;
    if (c.key === state.active) {
        const box = $('messages');
        const before = box.scrollHeight;
        renderMessages(c, false);
        box.scrollTop += box.scrollHeight - before; // stay where the reader was
    }
}

async function refreshActive() {
    const c = state.convs.get(state.active);
    if (!c) return;
    // the newest page again: messages sent while we were away (deduplicated)
    const d = await connection.request('history', { ...historyQuery(c), limit: HISTORY_PAGE }).catch(() => null);
    if (d) for (const m of d.messages) addMessage(c, m, false);
}

// ------------------------------------------------------------------ conversation view

async function openConversation(key) {
    const c = state.convs.get(key);
    if (!c) return;
    state.active = key;
    c.unread = 0;
    document.body.classList.remove('menu-open');
    renderConversation();
    renderSidebar();
    try {
        if (c.kind === 'r' && !state.joinedRooms.has(c.id)) {
            const d = await connection.request('room_join', { room: c.id });
            state.joinedRooms.add(c.id);
            $('conv-info').textContent = `${d.members} here`;
        }
        if (!c.loaded) await loadOlder(c);
        if (c.kind !== 'r') renderConversation();
        if (c.kind === 'd' && !state.friends.has(c.id)) { // presence comes for friends only: ask
            const u = await connection.request('user_info', { user: c.id });
            if (state.active === c.key) $('conv-info').textContent = u.online ? 'online' : 'offline';
        }
    } catch (e) {
        failed(e);
    }
    $('composer-text').focus();
}

function actionButton(label, fn) {
    return el('button', { class: 'secondary small', onclick: () => fn().catch(failed) }, label);
}

function renderConversation() {
    const c = state.convs.get(state.active);
    $('composer').hidden = !c;
    $('conv-actions').replaceChildren();
    if (!c) {
        $('conv-title').textContent = 'Pick a conversation';
        $('conv-info').textContent = '';
        $('message-list').replaceChildren();
        $('older-button').hidden = true;
        return;
    }
    const prefix = { d: '', g: 'Group ', r: '#' }[c.kind];
    $('conv-title').textContent = prefix + c.title;
    $('conv-info').textContent = c.kind === 'd'
        ? (state.friends.get(c.id)?.online ? 'online' : 'offline') : '';
    if (c.kind === 'g') {
        $('conv-actions').append(
            actionButton('Members', async () => {
                const d = await connection.request('group_members', { group: c.id });
                $('conv-info').textContent = d.members.map((m) => m.user + (m.online ? ' •' : '')).join(', ');
            }),
            el('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); inviteFriend(c).catch(failed); } },
                el('input', { id: 'invite-user', placeholder: 'invite a friend', 'aria-label': 'Friend to invite',
                    maxlength: 32 }),
                el('button', { class: 'small', type: 'submit' }, 'Invite')),
            actionButton('Leave', async () => {
                await connection.request('group_leave', { group: c.id });
                state.groups.delete(c.id);
                forget(c);
            }));
    } else if (c.kind === 'r') {
        $('conv-actions').append(
            actionButton('Members', async () => {
                const d = await connection.request('room_members', { room: c.id });
                $('conv-info').textContent = d.members.join(', ');
            }),
            actionButton('Leave', async () => {
                await connection.request('room_leave', { room: c.id });
                state.joinedRooms.delete(c.id);
                forget(c);
            }));
    }
    renderMessages(c, true);
}

// After leaving: the conversation goes, and nothing is open.
function forget(c) {
    state.convs.delete(c.key);
    state.active = null;
    renderConversation();
    renderSidebar();
}

async function inviteFriend(c) {
    const input = $('invite-user');
    const user = input.value.trim();
    if (!user) return;
    const message = JSON.stringify({ group: c.id, name: c.title });
    await connection.request('chat', { to: user, message, format: 'group-invite' });
    input.value = '';
    notice(`Invited ${user} to ${c.title}`);
}

async function send(text) {
    const c = state.convs.get(state.active);
    if (!c || !text) return;
    const cid = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
    let d;
    if (c.kind === 'd') d = await connection.request('chat', { to: c.id, message: text, cid });
    else if (c.kind === 'g') d = await connection.request('group_chat', { group: c.id, message: text, cid });
    else d = await connection.request('room_chat', { room: c.id, message: text });
    addMessage(c, { msgid: d.msgid, from: state.me.user, ts: d.ts, message: text }, false);
    const m = c.messages.find((x) => x.msgid === d.msgid);
    if (m) {
        m.sentHere = true;
        if (c.key === state.active) renderMessages(c, true);
    }
}

// ------------------------------------------------------------------ sidebar

function badge(n) {
    return n > 0 ? el('span', { class: 'badge', 'aria-label': `${n} unread` }, String(n)) : null;
}

function convButton(c, dot) {
    return el('li', {},
        el('button', { class: c.key === state.active ? 'conv active' : 'conv', dataset: { key: c.key },
                       onclick: () => openConversation(c.key) },
            dot, el('span', { class: 'name' }, c.title), badge(c.unread),
            c.last ? el('span', { class: 'last' }, c.last) : null));
}

function renderSidebar() {
    const direct = [...state.convs.values()].filter((c) => c.kind === 'd');
    $('friend-list').replaceChildren(...direct.map((c) => {
        const f = state.friends.get(c.id);
        const online = !!f?.online;
        return convButton(c, el('span', { class: online ? 'dot online' : 'dot', 'aria-label': online ? 'online' : 'offline',
                                          title: online ? 'online' : 'offline' }));
    }));
    const reqs = [...state.requestsIn].map(([from, note]) => el('li', { class: 'request', dataset: { from } },
        el('span', {}, `${from} wants to be friends${note ? `: ${note}` : ''} `),
        el('button', { class: 'small', onclick: () => reply(from, true) }, 'Accept'),
        el('button', { class: 'small secondary', onclick: () => reply(from, false) }, 'Decline')));
    const outs = [...state.requestsOut].map((to) => el('li', { class: 'request out' }, `asked ${to}, waiting`));
    $('request-list').replaceChildren(...reqs, ...outs);
    $('group-list').replaceChildren(...[...state.convs.values()].filter((c) => c.kind === 'g')
        .map((c) => convButton(c, null)));
    const roomConvs = [...state.rooms.values()].map((r) => conv('r', r.room, r.title || r.room));
    for (const c of state.convs.values()) if (c.kind === 'r' && !state.rooms.has(c.id)) roomConvs.push(c);
    $('room-list').replaceChildren(...roomConvs.map((c) => convButton(c, null)));
}

async function reply(from, accept) {
    try {
        await connection.request('friend_reply', { user: from, accept });
        state.requestsIn.delete(from);
        if (accept) await loadFriends();
        renderSidebar();
    } catch (e) {
        failed(e);
    }
}

async function joinGroup(gid) {
    try {
        const d = await connection.request('group_join', { group: gid });
        conv('g', d.group, d.name);
        await loadGroups();
        openConversation(`g:${d.group}`);
    } catch (e) {
        if (e.code === 409) openConversation(`g:${gid}`);
        else failed(e);
    }
}

// ------------------------------------------------------------------ wiring

function onSubmit(id, fn) {
    $(id).addEventListener('submit', (ev) => {
        ev.preventDefault();
        fn().catch(failed);
    });
}

function wire() {
    $('login-form').addEventListener('submit', (ev) => {
        ev.preventDefault();
        submitLogin(false);
    });
    $('register-button').addEventListener('click', () => submitLogin(true));
    $('logout-button').addEventListener('click', async () => {
        sessionStorage.removeItem(SESSION_KEY);
        await connection.logout();
        state.me = null;
        showLogin('Logged out.');
    });
    $('menu-button').addEventListener('click', () => document.body.classList.toggle('menu-open'));
    onSubmit('composer', async () => {
        const input = $('composer-text');
        const text = input.value;
        if (!text.trim()) return;
        input.value = '';
        try {
            await send(text);
        } catch (e) {
            input.value = text; // keep it for another try
            throw e;
        }
    });
    onSubmit('friend-form', async () => {
        const user = $('friend-user').value.trim();
        if (!user) return;
        await connection.request('friend_request', { user });
        state.requestsOut.add(user);
        $('friend-user').value = '';
        renderSidebar();
    });
    onSubmit('chat-form', async () => {
        const user = $('chat-user').value.trim();
        if (!user) return;
        await connection.request('user_info', { user }); // 404 for nobody
        $('chat-user').value = '';
        conv('d', user);
        await openConversation(`d:${user}`);
    });
    onSubmit('group-form', async () => {
        const name = $('group-name').value.trim();
        if (!name) return;
        const d = await connection.request('group_create', { name });
        $('group-name').value = '';
        conv('g', d.group, d.name);
        await loadGroups();
        openConversation(`g:${d.group}`);
    });
    onSubmit('group-join-form', async () => {
        const gid = $('group-id').value.trim();
        if (gid) await joinGroup(gid);
        $('group-id').value = '';
    });
    onSubmit('room-form', async () => {
        const room = $('room-name').value.trim();
        if (!room) return;
        await connection.request('room_create', { room }).catch((e) => { if (e.code !== 409) throw e; });
        $('room-name').value = '';
        await loadRooms();
        conv('r', room);
        openConversation(`r:${room}`);
    });
    $('rooms-refresh').addEventListener('click', () => loadRooms().catch(failed));
    $('hot-refresh').addEventListener('click', () => loadHot().catch(failed));
    $('older-button').addEventListener('click', () => {
        const c = state.convs.get(state.active);
        if (c) loadOlder(c).catch(failed);
    });
}

async function start() {
    wire();
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (!saved) {
        showLogin();
        return;
    }
    try {
        await connection.login(saved.user, saved.token, true);
    } catch (e) {
        sessionStorage.removeItem(SESSION_KEY);
        showLogin(e.code === 401 ? 'Your session expired: log in again.' : '');
    }
}

start();
