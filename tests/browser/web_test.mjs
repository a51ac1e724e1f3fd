// The web client in a real browser (Debian's chromium, headless, driven by
// puppeteer-core) against a real local cluster served by the gateway:
//   two pages register, befriend, chat 1:1 and see the receipt; a third user
//   writes while one page is away and it arrives at its next login; a reload
//   keeps the session; both join a room and talk; a page survives the
//   restart of its node while the gateway cannot be asked (it goes back to
//   that node) and the kill -9 of its node (it moves to another through
//   the gateway); markup from another user shows as text.
// Also: a declined friend request, a group (create, invite by message,
// join, chat, members, leave), a masked word, hot words, and a system push
// shown as a notice.
// usage: node web_test.mjs --gateway URL --pids FILE --ctl DIR --push-token T --dirty-word W [--shots DIR]
//   FILE: {"n0": pid, ...} of the chat nodes (for the kill -9)
//   DIR: the runner restarts node ID (kill -9, same port) when restart-ID
//   appears there, and writes the new pid to restarted-ID
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import puppeteer from 'puppeteer-core';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) =>
    (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const GATEWAY = args.gateway;
const PIDS = JSON.parse(readFileSync(args.pids, 'utf8'));
const SHOTS = args.shots || '';
const CTL = args.ctl;
const STEP_MS = 20000;
const tag = Math.random().toString(36).slice(2, 7);
const users = { alice: `alice_${tag}`, bob: `bob_${tag}`, carol: `carol_${tag}` };
const PASSWORD = 'web-test-pw';
const problems = []; // page errors, CSP violations, dialogs

let step = 'start';
const log = (s) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${s}`);
function begin(s) {
    step = s;
    log(`step: ${s}`);
}

async function newPage(ctx, name, viewport = { width: 1100, height: 720 }) {
    const page = await ctx.newPage();
    await page.setViewport(viewport);
    page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
    page.on('console', (m) => {
        if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text()))
            problems.push(`${name}: ${m.text()}`);
    });
    page.on('dialog', async (d) => {
        problems.push(`${name}: a dialog opened: ${d.message()}`);
        await d.dismiss();
    });
    await page.goto(`${GATEWAY}/`, { waitUntil: 'load' });
    return page;
}

const visible = (sel) => `${sel}:not([hidden])`;

async function login(page, user, register) {
    await page.waitForSelector(visible('#login-view'), { timeout: STEP_MS });
    await page.type('#login-user', user);
    await page.type('#login-password', PASSWORD);
    await page.click(register ? '#register-button' : '#login-button');
    await page.waitForSelector(visible('#app-view'), { timeout: STEP_MS });
    await page.waitForFunction((u) => document.body.dataset.user === u && document.body.dataset.status === 'online' &&
        document.body.dataset.ready === 'yes',
        { timeout: STEP_MS }, user);
}

async function submit(page, input, text) {
    await page.click(input, { count: 3 });
    await page.type(input, text);
    await page.keyboard.press('Enter');
}

async function openConv(page, key) {
    const sel = `button.conv[data-key="${key}"]`;
    await page.waitForSelector(sel, { timeout: STEP_MS });
    await page.click(sel);
    await page.waitForFunction((k) => document.querySelector(`button.conv.active[data-key="${k}"]`),
        { timeout: STEP_MS }, key);
}

// Waits until the open conversation shows a message from `from` with `text`.
async function seeMessage(page, from, text) {
    await page.waitForFunction((f, t) => [...document.querySelectorAll('#message-list .msg')]
        .some((m) => m.dataset.from === f && m.querySelector('.text').textContent === t),
    { timeout: STEP_MS }, from, text);
}

async function send(page, text) {
    await submit(page, '#composer-text', text);
    await page.waitForFunction((t) => [...document.querySelectorAll('#message-list .msg.mine .text')]
        .some((m) => m.textContent === t), { timeout: STEP_MS }, text);
}

async function shot(page, name) {
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png` });
}

async function run(browser) {
    const ctx = { a: await browser.createBrowserContext(), b: await browser.createBrowserContext(),
                  c: await browser.createBrowserContext() };

    begin('register two users');
    const a = await newPage(ctx.a, 'alice');
    await shot(a, 'login');
    const b = await newPage(ctx.b, 'bob');
    await login(a, users.alice, true);
    await login(b, users.bob, true);

    begin('wrong password is a clear error');
    const x = await newPage(ctx.c, 'probe');
    await x.type('#login-user', users.alice);
    await x.type('#login-password', 'not-the-password');
    await x.click('#login-button');
    await x.waitForFunction(() => document.getElementById('login-error').textContent.includes('Wrong'),
        { timeout: STEP_MS });
    await x.close();

    begin('friend request and accept');
    await submit(a, '#friend-user', users.bob);
    await b.waitForSelector(`.request[data-from="${users.alice}"] button`, { timeout: STEP_MS });
    await b.click(`.request[data-from="${users.alice}"] button`); // Accept
    await a.waitForSelector(`button.conv[data-key="d:${users.bob}"] .dot.online`, { timeout: STEP_MS });

    begin('a declined friend request');
    const d = await newPage(ctx.c, 'dave');
    await login(d, `dave_${tag}`, true);
    await submit(d, '#friend-user', users.bob);
    await b.waitForSelector(`.request[data-from="dave_${tag}"] button.secondary`, { timeout: STEP_MS });
    await b.click(`.request[data-from="dave_${tag}"] button.secondary`); // Decline
    await d.waitForFunction(() => [...document.querySelectorAll('.notice')]
        .some((n) => n.textContent.includes('declined')), { timeout: STEP_MS });
    await d.close();

    begin('1:1 chat with a delivered receipt');
    await openConv(a, `d:${users.bob}`);
    await send(a, 'hello bob');
    await b.waitForSelector(`button.conv[data-key="d:${users.alice}"] .badge`, { timeout: STEP_MS });
    await openConv(b, `d:${users.alice}`);
    await seeMessage(b, users.alice, 'hello bob');
    await a.waitForFunction(() => [...document.querySelectorAll('#message-list .msg.mine')]
        .some((m) => m.querySelector('.text').textContent === 'hello bob' &&
                     m.querySelector('.state')?.textContent === 'delivered'), { timeout: STEP_MS });
    await send(b, 'hi alice');
    await seeMessage(a, users.bob, 'hi alice');

    begin('a message sent while the page is away arrives at the next login');
    await b.close();
    const c = await newPage(ctx.c, 'carol');
    await login(c, users.carol, true);
    await submit(c, '#chat-user', users.bob);
    await c.waitForSelector(`button.conv.active[data-key="d:${users.bob}"]`, { timeout: STEP_MS });
    await send(c, 'while you were away');
    const b2 = await newPage(ctx.b, 'bob');
    await login(b2, users.bob, false);
    await b2.waitForSelector(`button.conv[data-key="d:${users.carol}"] .badge`, { timeout: STEP_MS });
    await openConv(b2, `d:${users.carol}`);
    await seeMessage(b2, users.carol, 'while you were away');

    begin('a reload keeps the session; history pages back with before');
    for (let i = 1; i <= 32; i++) // more than one page of history (30)
        await send(a, `n${String(i).padStart(2, '0')}`);
    await openConv(b2, `d:${users.alice}`);
    await seeMessage(b2, users.alice, 'n32');
    await b2.reload({ waitUntil: 'load' });
    await b2.waitForFunction((u) => document.body.dataset.user === u && document.body.dataset.status === 'online' &&
        document.body.dataset.ready === 'yes',
        { timeout: STEP_MS }, users.bob);
    if (!(await b2.$eval('#login-view', (e) => e.hidden))) throw new Error('the login form came back after a reload');

    await openConv(b2, `d:${users.alice}`);
    await seeMessage(b2, users.alice, 'n32');
    const early = await b2.$$eval('#message-list .msg .text', (l) => l.some((t) => t.textContent === 'hello bob'));
    if (early) throw new Error('the first history page already holds the oldest message');
    await b2.click(visible('#older-button'));
    await seeMessage(b2, users.alice, 'hello bob');

    begin('a room: create, join, talk');
    const room = `lobby_${tag}`;
    await submit(a, '#room-name', room);
    await a.waitForSelector(`button.conv.active[data-key="r:${room}"]`, { timeout: STEP_MS });
    await b2.click('#rooms-refresh');
    await openConv(b2, `r:${room}`);
    await send(a, 'hi room');
    await seeMessage(b2, users.alice, 'hi room');
    await send(b2, 'hi from bob');
    await seeMessage(a, users.bob, 'hi from bob');
    await shot(a, 'room');

    begin('a masked word shows masked');
    const dirty = args['dirty-word'];
    await send(a, `well ${dirty} then`);
    await seeMessage(b2, users.alice, `well ${'*'.repeat(dirty.length)} then`);

    begin('hot words count the room\'s words');
    await a.click('#hot-refresh');
    await a.waitForFunction(() => [...document.querySelectorAll('#hot-list li')]
        .some((l) => l.firstChild.textContent === 'room'), { timeout: STEP_MS });

    begin('a group: create, invite, join, chat, members');
    await submit(a, '#group-name', `team ${tag}`);
    await a.waitForSelector('button.conv.active[data-key^="g:"]', { timeout: STEP_MS });
    const gkey = await a.$eval('button.conv.active', (e) => e.dataset.key);
    await submit(a, '#invite-user', users.bob);
    await b2.waitForSelector(`button.conv[data-key="d:${users.alice}"] .badge`, { timeout: STEP_MS })
        .catch(() => {}); // bob may have alice's conversation open already
    await openConv(b2, `d:${users.alice}`);
    await b2.waitForFunction(() => [...document.querySelectorAll('#message-list .msg .text button')]
        .some((x) => x.textContent === 'Join'), { timeout: STEP_MS });
    await b2.evaluate(() => [...document.querySelectorAll('#message-list .msg .text button')]
        .filter((x) => x.textContent === 'Join').pop().click());
    await b2.waitForSelector(`button.conv.active[data-key="${gkey}"]`, { timeout: STEP_MS });
    await send(a, 'hello team');
    await seeMessage(b2, users.alice, 'hello team');
    await b2.evaluate(() => [...document.querySelectorAll('#conv-actions button')]
        .find((x) => x.textContent === 'Members').click());
    await b2.waitForFunction((x, y) => {
        const t = document.getElementById('conv-info').textContent;
        return t.includes(x) && t.includes(y);
    }, { timeout: STEP_MS }, users.alice, users.bob);
    await b2.evaluate(() => [...document.querySelectorAll('#conv-actions button')]
        .find((x) => x.textContent === 'Leave').click());
    await b2.waitForFunction((k) => !document.querySelector(`button.conv[data-key="${k}"]`),
        { timeout: STEP_MS }, gkey);
    await openConv(b2, `r:${room}`); // both back in the room for the kill step
    await openConv(a, `r:${room}`);

    begin('a system push shows as a notice');
    const push = await fetch(`${GATEWAY}/push`, { method: 'POST',
        headers: { Authorization: `Bearer ${args['push-token']}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ message: `maintenance ${tag}`, to: users.bob }) });
    if (push.status !== 202) throw new Error(`POST /push answered ${push.status}`);
    await b2.waitForFunction((t) => [...document.querySelectorAll('.notice.system')]
        .some((n) => n.textContent.includes(t)), { timeout: STEP_MS }, `maintenance ${tag}`);

    begin('its node restarts while /servers fails: the page goes back to that node');
    const home = await b2.evaluate(() => document.body.dataset.node);
    let asked = 0;
    const noServers = (req) => {
        if (new URL(req.url()).pathname !== '/servers') return req.continue();
        asked++;
        return req.respond({ status: 503, contentType: 'application/json', body: '{}' });
    };
    await b2.setRequestInterception(true);
    b2.on('request', noServers);
    writeFileSync(`${CTL}/restart-${home}`, '');
    const restarted = `${CTL}/restarted-${home}`;
    for (const t0 = Date.now(); !existsSync(restarted); await new Promise((r) => setTimeout(r, 100)))
        if (Date.now() - t0 > STEP_MS) throw new Error(`node ${home} was not restarted`);
    PIDS[home] = Number(readFileSync(restarted, 'utf8'));
    log(`node ${home} restarted (pid ${PIDS[home]})`);
    await b2.waitForFunction((n) => document.body.dataset.status === 'online' && document.body.dataset.node === n &&
        document.body.dataset.ready === 'yes', { timeout: 60000 }, home);
    await a.waitForFunction(() => document.body.dataset.status === 'online' && document.body.dataset.ready === 'yes',
        { timeout: 60000 });
    await send(b2, 'back on my node'); // the old socket died with the node: this one is new
    await seeMessage(a, users.bob, 'back on my node');
    log(`bob's page is back on node ${home}; /servers refused ${asked} time(s)`);
    b2.off('request', noServers);
    await b2.setRequestInterception(false);

    begin('kill -9 of the page\'s node: it reconnects and goes on');
    const node = await b2.evaluate(() => document.body.dataset.node);
    if (!PIDS[node]) throw new Error(`bob's page says node '${node}', not one of ${Object.keys(PIDS)}`);
    process.kill(PIDS[node], 'SIGKILL');
    log(`killed node ${node} (pid ${PIDS[node]})`);
    await b2.waitForFunction((n) => document.body.dataset.status === 'online' && document.body.dataset.node !== n &&
        document.body.dataset.ready === 'yes', { timeout: 60000 }, node);
    log(`bob's page is back on node ${await b2.evaluate(() => document.body.dataset.node)}`);
    // alice's page may have been on that node too: wait until it is whole again
    await a.waitForFunction((n) => document.body.dataset.status === 'online' && document.body.dataset.node !== n &&
        document.body.dataset.ready === 'yes', { timeout: 60000 }, node);
    log(`alice's page is on node ${await a.evaluate(() => document.body.dataset.node)}`);
    // the room is joined again after the resume: talk there first
    await send(b2, 'back after the kill');
    log('bob sent to the room');
    await seeMessage(a, users.bob, 'back after the kill');
    log('alice saw it');
    await openConv(a, `d:${users.bob}`);
    await send(a, 'still there?');
    await openConv(b2, `d:${users.alice}`);
    await seeMessage(b2, users.alice, 'still there?');

    begin('markup from another user is text');
    const evil = '<img src=x onerror=alert(1)>';
    await send(a, evil);
    await seeMessage(b2, users.alice, evil);
    const imgs = await b2.$$eval('#message-list img', (l) => l.length);
    if (imgs !== 0) throw new Error(`the message became ${imgs} <img> element(s)`);
    await shot(a, 'chat');

    begin('a phone-sized screen');
    const m = await newPage(ctx.c, 'carol-phone', { width: 390, height: 760, isMobile: true });
    await login(m, users.carol, false); // ends the session of carol's first page (kicked)
    await c.waitForSelector(visible('#login-view'), { timeout: STEP_MS });
    await m.click('#menu-button');
    await m.waitForSelector('#sidebar', { visible: true, timeout: STEP_MS });
    await shot(m, 'mobile');
    await submit(m, '#chat-user', users.bob); // the sidebar gives way to the conversation
    await m.waitForSelector('#composer', { visible: true, timeout: STEP_MS });
    await seeMessage(m, users.carol, 'while you were away');
    await shot(m, 'mobile-chat');

    if (problems.length) throw new Error(`problems in the pages:\n  ${problems.join('\n  ')}`);
}

const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
let rc = 0;
try {
    await run(browser);
    log('browser test passed');
} catch (e) {
    console.error(`FAILED at step "${step}": ${e.message}`);
    for (const p of await browser.pages()) {
        const what = await p.evaluate(() => ({ user: document.body.dataset.user, status: document.body.dataset.status,
            node: document.body.dataset.node, title: document.getElementById('conv-title')?.textContent,
            last: [...document.querySelectorAll('#message-list .msg')].slice(-3).map((m) => m.textContent),
            notices: [...document.querySelectorAll('.notice')].map((n) => n.textContent) })).catch(() => null);
        console.error(`  page: ${JSON.stringify(what)}`);
    }
    rc = 1;
} finally {
    await browser.close().catch(() => {});
}
process.exit(rc);
