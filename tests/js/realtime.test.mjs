// Realtime with the real frontend client (supabase-js), against the new backend.
//
// Run by the Rust end-to-end suite (tests/e2e/realtime.rs) with:
//   STUDYFLOW_GATEWAY_URL      the gateway (route `realtime` in primary)
//   STUDYFLOW_BACKEND_URL      backend instance 1, STUDYFLOW_BACKEND2_URL instance 2
//   STUDYFLOW_ANON_KEY, STUDYFLOW_SERVICE_KEY   the project's keys
//   STUDYFLOW_USER_A/B, STUDYFLOW_TOKEN_A/B     two users and their access tokens
//   STUDYFLOW_EXPIRED_TOKEN    an expired token of user A
//   STUDYFLOW_DATABASE_URL     the database, to insert rows "through SQL"
//   STUDYFLOW_HEARTBEAT_TIMEOUT_SECS   the backends' heartbeat timeout
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";
import postgres from "postgres";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set`);
  return value;
};
const gateway = env("STUDYFLOW_GATEWAY_URL");
const backend1 = env("STUDYFLOW_BACKEND_URL");
const backend2 = env("STUDYFLOW_BACKEND2_URL");
const anonKey = env("STUDYFLOW_ANON_KEY");
const serviceKey = env("STUDYFLOW_SERVICE_KEY");
const userA = env("STUDYFLOW_USER_A");
const userB = env("STUDYFLOW_USER_B");
const tokenA = env("STUDYFLOW_TOKEN_A");
const tokenB = env("STUDYFLOW_TOKEN_B");
const expiredToken = env("STUDYFLOW_EXPIRED_TOKEN");
const heartbeatTimeoutMs = Number(env("STUDYFLOW_HEARTBEAT_TIMEOUT_SECS")) * 1000;
const sql = postgres(env("STUDYFLOW_DATABASE_URL"), { max: 1, onnotice: () => {} });

const clients = [];
after(async () => {
  for (const client of clients) await client.removeAllChannels();
  await sql.end();
});

/** A supabase-js client signed in with `token` (Node 20 needs the ws transport). The
 * token is set before any join, so joins carry it (otherwise the client joins with the
 * apikey and sends the token right after, as `access_token`). */
async function client(url, token) {
  const supabase = createClient(url, anonKey, {
    accessToken: async () => token,
    // Beat more often than the backends' (shortened) heartbeat timeout.
    realtime: { transport: WebSocket, heartbeatIntervalMs: 1000 },
  });
  clients.push(supabase);
  await supabase.realtime.setAuth(token);
  return supabase;
}

/** Subscribes and resolves with the final status (SUBSCRIBED, CHANNEL_ERROR, ...). */
function subscribe(channel) {
  return new Promise((resolve) => {
    channel.subscribe((status, err) => {
      if (status !== "CLOSED") resolve({ status, err });
    });
  });
}

/** Resolves with the first value `check` returns truthy for, polling every 25 ms. */
async function eventually(what, check, timeoutMs = 8000) {
  const started = Date.now();
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() - started > timeoutMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("the owner receives a notification inserted through SQL, and only the owner", async () => {
  const received = { a: [], b: [] };
  const channels = {};
  for (const [who, token] of [["a", tokenA], ["b", tokenB]]) {
    channels[who] = (await client(gateway, token))
      .channel(`notifications-${who}`)
      .on("postgres_changes", { event: "INSERT", schema: "public", table: "notifications" }, (payload) =>
        received[who].push(payload),
      );
    const { status, err } = await subscribe(channels[who]);
    assert.equal(status, "SUBSCRIBED", `user ${who} subscribes: ${err}`);
  }
  await sql`insert into public.notifications (user_id, title, message) values (${userA}, 'Quiz due', 'Algebra at 10')`;
  await sql`insert into public.notifications (user_id, title, message) values (${userB}, 'Group invite', 'Join the room')`;
  // Too large for NOTIFY: read back by id.
  const long = "x".repeat(9000);
  await sql`insert into public.notifications (user_id, title, message) values (${userA}, 'Long', ${long})`;

  await eventually("A's two rows", () => received.a.length >= 2);
  await eventually("B's row", () => received.b.length >= 1);
  await sleep(300);
  assert.deepEqual(received.a.map((p) => p.new.title), ["Quiz due", "Long"]);
  assert.deepEqual(received.b.map((p) => p.new.title), ["Group invite"]);
  const [first, large] = received.a;
  assert.equal(first.eventType, "INSERT");
  assert.equal(first.schema, "public");
  assert.equal(first.table, "notifications");
  assert.equal(first.new.user_id, userA);
  assert.equal(first.new.read, false);
  assert.equal(large.new.message, long);
});

test("a filter column=eq.value narrows the rows", async () => {
  const received = [];
  const channel = (await client(gateway, tokenA))
    .channel("notifications-filtered")
    .on(
      "postgres_changes",
      { event: "*", schema: "public", table: "notifications", filter: "type=eq.reminder" },
      (payload) => received.push(payload),
    );
  assert.equal((await subscribe(channel)).status, "SUBSCRIBED");
  await sql`insert into public.notifications (user_id, title, message, type) values (${userA}, 'Info', 'x', 'info')`;
  await sql`insert into public.notifications (user_id, title, message, type) values (${userA}, 'Reminder', 'y', 'reminder')`;
  await eventually("the reminder", () => received.length >= 1);
  await sleep(300);
  assert.deepEqual(received.map((p) => p.new.title), ["Reminder"]);
});

test("an unknown table is refused at join", async () => {
  const channel = (await client(backend1, tokenA))
    .channel("profiles")
    .on("postgres_changes", { event: "*", schema: "public", table: "profiles" }, () => {});
  const { status, err } = await subscribe(channel);
  assert.equal(status, "CHANNEL_ERROR");
  assert.match(String(err?.message), /not published/);
});

test("an expired token is refused", async () => {
  const channel = (await client(backend1, expiredToken)).channel("room:expired");
  const { status, err } = await subscribe(channel);
  assert.equal(status, "CHANNEL_ERROR");
  assert.match(String(err?.message), /Token has expired/);
});

test("two clients on two backend instances share a study room", async () => {
  const alice = (await client(backend1, tokenA)).channel("room:algebra", { config: { presence: { key: "alice" } } });
  const bob = (await client(backend2, tokenB)).channel("room:algebra", { config: { presence: { key: "bob" } } });
  const heard = { alice: [], bob: [] };
  for (const [name, channel] of [["alice", alice], ["bob", bob]]) {
    channel
      .on("broadcast", { event: "note" }, ({ payload }) => heard[name].push(payload))
      .on("broadcast", { event: "announce" }, ({ payload }) => heard[name].push(payload))
      .on("broadcast", { event: "direct" }, ({ payload }) => heard[name].push(payload))
      .on("presence", { event: "sync" }, () => {});
    assert.equal((await subscribe(channel)).status, "SUBSCRIBED", `${name} joins`);
  }
  assert.equal(await alice.track({ name: "Alice" }), "ok");
  assert.equal(await bob.track({ name: "Bob" }), "ok");
  await eventually("alice sees bob", () => alice.presenceState().bob?.[0]?.name === "Bob");
  await eventually("bob sees alice", () => bob.presenceState().alice?.[0]?.name === "Alice");

  await alice.send({ type: "broadcast", event: "note", payload: { text: "hi from 1" } });
  await bob.send({ type: "broadcast", event: "note", payload: { text: "hi from 2" } });
  await eventually("bob hears alice", () => heard.bob.some((p) => p.text === "hi from 1"));
  await eventually("alice hears bob", () => heard.alice.some((p) => p.text === "hi from 2"));
  // broadcast.self is off: nobody hears themselves.
  assert.ok(!heard.alice.some((p) => p.text === "hi from 1"));

  // The server-side API, called on instance 2, reaches both instances.
  const send = (body, key = serviceKey) =>
    fetch(`${backend2}/realtime/v1/api/send`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  assert.equal((await send({ topic: "room:algebra", event: "announce", payload: { text: "quiz in 5" } })).status, 202);
  assert.equal((await send({ user_id: userA, event: "direct", payload: { text: "only alice" } })).status, 202);
  assert.equal((await send({ topic: "room:algebra", event: "announce", payload: {} }, anonKey)).status, 403);
  await eventually("both hear the announcement", () =>
    heard.alice.some((p) => p.text === "quiz in 5") && heard.bob.some((p) => p.text === "quiz in 5"),
  );
  await eventually("alice gets her direct message", () => heard.alice.some((p) => p.text === "only alice"));
  await sleep(300);
  assert.ok(!heard.bob.some((p) => p.text === "only alice"), "bob does not get alice's message");

  // Untrack, then leave: bob sees alice go.
  await alice.untrack();
  await eventually("bob sees alice leave", () => !bob.presenceState().alice);
});

test("a silent connection is closed at the heartbeat timeout and its presence removed", async () => {
  const watcher = (await client(backend1, tokenA)).channel("room:ghosts", { config: { presence: { key: "watcher" } } });
  watcher.on("presence", { event: "sync" }, () => {});
  assert.equal((await subscribe(watcher)).status, "SUBSCRIBED");

  // A raw vsn 1.0.0 client on the other instance that joins, tracks, then never beats.
  const url = `${backend2.replace("http", "ws")}/realtime/v1/websocket?apikey=${anonKey}&vsn=1.0.0`;
  const ghost = new WebSocket(url);
  const closed = new Promise((resolve) => ghost.on("close", (code, reason) => resolve({ code, reason: String(reason) })));
  const replies = [];
  ghost.on("message", (data) => replies.push(JSON.parse(String(data))));
  await new Promise((resolve, reject) => {
    ghost.on("open", resolve);
    ghost.on("error", reject);
  });
  const topic = "realtime:room:ghosts";
  ghost.send(JSON.stringify({ topic, event: "phx_join", ref: "1", join_ref: "1",
    payload: { config: { presence: { key: "ghost", enabled: true } }, access_token: tokenB } }));
  ghost.send(JSON.stringify({ topic, event: "presence", ref: "2", join_ref: "1",
    payload: { type: "presence", event: "track", payload: { name: "Ghost" } } }));
  await eventually("the join reply", () => replies.find((r) => r.event === "phx_reply" && r.ref === "1"));
  assert.equal(replies.find((r) => r.ref === "1").payload.status, "ok");
  await eventually("the watcher sees the ghost", () => watcher.presenceState().ghost);

  const started = Date.now();
  const { code, reason } = await closed;
  assert.equal(code, 1000);
  assert.equal(reason, "heartbeat timeout");
  assert.ok(Date.now() - started < heartbeatTimeoutMs + 2000, "closed around the timeout");
  await eventually("the ghost's presence is gone", () => !watcher.presenceState().ghost);
});
