// A socket.io 4 peer of chat-node for side-by-side benchmarks (chat-bench
// --socketio): the same JSON envelope (PROTOCOL.md) travels as the argument
// of the socket.io event "m". It keeps nothing: no accounts (any login
// succeeds, no password hashing), no message store, no pending items: a
// plain socket.io chat server, as the teams we replace run it. With
// --redis URL it joins the other peers through @socket.io/redis-adapter.
//   node peer.mjs --port PORT [--redis redis://127.0.0.1:PORT] [--index N]
import { createServer } from "node:http";
import { Server } from "socket.io";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), [])
);
const port = Number(args.port || 9101);
const index = Number(args.index || 0);
let seq = 0;

const http = createServer();
const io = new Server(http, { transports: ["websocket"], serveClient: false, perMessageDeflate: false });

if (args.redis) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const pub = createClient({ url: args.redis });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

const answer = (socket, req, data, code = 0) =>
  socket.emit("m", { action: req.action, id: req.id, code, ...(data ? { data } : {}) });
const event = (name, data) => ({ event: name, data });

const actions = {
  register: (s, r) => answer(s, r, {}),
  login: (s, r) => {
    const user = String(r.data?.user || "");
    if (!user) return answer(s, r, null, 400);
    s.data.user = user;
    s.join("u:" + user);
    answer(s, r, { user, token: "00", nickname: user });
  },
  logout: (s, r) => answer(s, r, {}),
  ping: (s, r) => answer(s, r, {}),
  chat: (s, r) => {
    const ts = Date.now();
    const msgid = `${s.data.user}|${index}-${++seq}`; // the sender rides in the msgid, for receipts
    const d = { msgid, from: s.data.user, to: r.data.to, ts, message: r.data.message, format: "text" };
    io.to("u:" + r.data.to).emit("m", event("chat", d));
    answer(s, r, { msgid, ts, online: true });
  },
  ack: (s, r) => {
    for (const id of r.data?.msgids || []) {
      const from = String(id).split("|")[0];
      io.to("u:" + from).emit("m", event("receipt", { msgid: id, by: s.data.user }));
    }
    answer(s, r, {});
  },
  room_create: (s, r) => answer(s, r, {}),
  room_join: (s, r) => {
    s.join("r:" + r.data.room);
    answer(s, r, {});
  },
  room_chat: (s, r) => {
    const ts = Date.now();
    const msgid = `${index}-${++seq}`;
    const d = { room: r.data.room, msgid, from: s.data.user, ts, message: r.data.message, format: "text" };
    s.to("r:" + r.data.room).emit("m", event("room_chat", d));
    answer(s, r, { msgid, ts });
  },
};

io.on("connection", (socket) => {
  socket.on("m", (req) => {
    const fn = req && actions[req.action];
    if (!fn) return answer(socket, req || {}, null, 400);
    if (req.action !== "register" && req.action !== "login" && !socket.data.user)
      return answer(socket, req, null, 401);
    fn(socket, req);
  });
});

http.listen(port, "127.0.0.1", () => console.log(`socket.io peer ${index} on ${port}`));
