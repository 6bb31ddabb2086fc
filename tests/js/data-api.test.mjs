// The real frontend client (supabase-js) reading and writing the app's tables through
// the data API, with every query shape the frontend uses (legacy-contract.md, "Data API
// facts") against every table. Expected results are computed by SQL in this file.
//
// Run by the Rust end-to-end suite with:
//   STUDYFLOW_GATEWAY_URL   where supabase-js points (the gateway, or the backend itself)
//   STUDYFLOW_ANON_KEY      the project's anon key
//   STUDYFLOW_EXPECT_SIDE   `new` (through the gateway: every answer from the backend)
//                           or `direct` (no gateway in between)
//   STUDYFLOW_USER_ID / STUDYFLOW_USER_TOKEN     the signed-in user
//   STUDYFLOW_OTHER_ID / STUDYFLOW_OTHER_TOKEN   a second user, whose rows stay hidden
//   DATABASE_URL            the database, for seeding and for the expected results
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import WebSocket from "ws";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set`);
  return value;
};
const url = env("STUDYFLOW_GATEWAY_URL");
const anonKey = env("STUDYFLOW_ANON_KEY");
const expectedSide = env("STUDYFLOW_EXPECT_SIDE");
const me = env("STUDYFLOW_USER_ID");
const other = env("STUDYFLOW_OTHER_ID");
const sql = postgres(env("DATABASE_URL"), { max: 2, onnotice: () => {} });

/** Which side answered each request (the gateway's `x-studyflow-served-by`). */
const sides = [];
const recordingFetch = async (input, init) => {
  const response = await fetch(input, init);
  sides.push(response.headers.get("x-studyflow-served-by"));
  return response;
};

const client = (token) =>
  createClient(url, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    // Node 20 has no global WebSocket; the browser frontend does not need this.
    realtime: { transport: WebSocket },
    global: { fetch: recordingFetch, headers: token ? { Authorization: `Bearer ${token}` } : {} },
  });
const db = client(env("STUDYFLOW_USER_TOKEN"));
const otherDb = client(env("STUDYFLOW_OTHER_TOKEN"));
const anonDb = client(null);

const OWNED = [
  "study_sessions", "user_settings", "tasks", "subjects", "calendar_events", "ai_tutor_sessions",
  "study_goals", "notifications", "ai_messages", "study_streaks", "study_analytics",
];
const TABLES = [...OWNED, "profiles"];
const owner = (table) => (table === "profiles" ? "id" : "user_id");

/** The user's rows of `table` as JSON, in `id` order, computed by Postgres. */
async function expectedRows(table, user = me, where = "true", order = "id") {
  const [row] = await sql.unsafe(
    `select coalesce(json_agg(t order by ${order}), '[]'::json) as rows
       from public.${table} t where ${owner(table)} = $1 and (${where})`,
    [user],
  );
  return row.rows;
}

/** Deletes both users' rows and writes a known set for each. */
async function seed() {
  for (const table of ["ai_messages", ...OWNED.filter((t) => t !== "ai_messages")]) {
    await sql.unsafe(`delete from public.${table} where user_id in ($1, $2)`, [me, other]);
  }
  for (const [user, tag] of [[me, "mine"], [other, "theirs"]]) {
    await sql`insert into profiles (id, email, first_name, last_name) values (${user}, ${tag + "@example.com"}, ${tag}, 'User')
              on conflict (id) do update set first_name = excluded.first_name`;
    const [maths] = await sql`insert into subjects (user_id, name) values (${user}, 'Maths') returning id`;
    await sql`insert into subjects (user_id, name, color) values (${user}, 'Physics', '#000000')`;
    await sql`insert into tasks (user_id, subject_id, title, status, priority, due_date, tags) values
      (${user}, ${maths.id}, ${tag + " algebra"}, 'todo', 'high', '2026-12-01T09:00:00Z', '{exam}'),
      (${user}, ${maths.id}, ${tag + " proofs"}, 'completed', 'low', '2026-12-05T09:00:00Z', '{}'),
      (${user}, null, ${tag + " essay"}, 'in_progress', 'urgent', '2026-12-20T09:00:00Z', '{writing}'),
      (${user}, null, ${tag + " later"}, 'on_hold', 'medium', null, '{}')`;
    await sql`insert into study_sessions (user_id, subject_id, title, duration, started_at, created_at) values
      (${user}, ${maths.id}, 'Morning', 45, '2026-12-01T08:00:00Z', '2026-12-01T08:00:00Z'),
      (${user}, null, 'Evening', 30, '2026-12-02T19:00:00Z', '2026-12-02T19:00:00Z'),
      (${user}, ${maths.id}, 'Night', 20, '2026-11-28T22:00:00Z', '2026-11-28T22:00:00Z')`;
    await sql`insert into study_goals (user_id, title, target_value, current_value, status) values
      (${user}, 'Read 10 chapters', 10, 3, 'active'), (${user}, 'Old goal', 5, 5, 'completed')`;
    await sql`insert into notifications (user_id, title, message, read, metadata) values
      (${user}, 'Welcome', 'Hello', false, '{"k": [1, 2]}'), (${user}, 'Reminder', 'Study', true, '{}')`;
    await sql`insert into user_settings (user_id, theme) values (${user}, 'light')`;
    await sql`insert into calendar_events (user_id, title, event_type, event_date, event_time) values
      (${user}, 'Exam', 'exam', '2026-12-10', '09:30'), (${user}, 'Class', 'class', '2026-12-03', null)`;
    const [session] = await sql`insert into ai_tutor_sessions (user_id, subject_id, started_at) values (${user}, ${maths.id}, now()) returning id`;
    await sql`insert into ai_messages (user_id, session_id, role, content, ai_provider) values
      (${user}, ${session.id}, 'user', 'What is 2+2?', null), (${user}, ${session.id}, 'assistant', '4', 'deepseek')`;
    await sql`insert into study_streaks (user_id, current_streak, last_study_date) values (${user}, 3, '2026-12-02')`;
    await sql`insert into study_analytics (user_id, date, total_study_time, average_focus_score) values
      (${user}, '2026-12-01', 95, 81.5), (${user}, '2026-12-02', 30, null)`;
  }
}

before(seed);
after(async () => {
  // The connection first: an open one would keep the runner from exiting.
  await sql.end();
  if (expectedSide !== "direct") {
    assert.ok(sides.length > 0, "requests were made");
    assert.deepEqual([...new Set(sides)], [expectedSide], "every answer came from the expected side");
  }
});

/** The `data` of a successful call. */
function ok({ data, error, status }, expectedStatus) {
  assert.equal(error, null, `unexpected error ${JSON.stringify(error)}`);
  if (expectedStatus) assert.equal(status, expectedStatus);
  return data;
}

test("select('*') and select() return the user's rows of every table, as SQL does", async () => {
  for (const table of TABLES) {
    const expected = await expectedRows(table);
    assert.ok(expected.length > 0, `${table} is seeded`);
    assert.deepEqual(ok(await db.from(table).select("*").order("id")), expected, table);
    assert.deepEqual(ok(await db.from(table).select().order("id")), expected, table);
  }
});

test("column lists and the embedded subject", async () => {
  const goals = ok(await db.from("study_goals").select("title, current_value, target_value, status").eq("status", "active"));
  const [goalRow] = await sql`select json_agg(json_build_object('title', title, 'current_value', current_value,
      'target_value', target_value, 'status', status)) as rows from study_goals where user_id = ${me} and status = 'active'`;
  assert.deepEqual(goals, goalRow.rows);

  const sessions = ok(await db.from("study_sessions").select("*, subjects(name)").order("started_at", { ascending: false }));
  const [row] = await sql`select json_agg(x order by x.started_at desc) as rows from (
      select s.*, (select json_build_object('name', sub.name) from subjects sub where sub.id = s.subject_id) as subjects
      from study_sessions s where s.user_id = ${me}) x`;
  assert.deepEqual(sessions, row.rows);
  assert.ok(sessions.some((s) => s.subjects === null) && sessions.some((s) => s.subjects?.name === "Maths"));
});

test("filters: eq, neq, gte with a date, lte, lt, order, limit", async () => {
  const tasks = ok(
    await db.from("tasks").select("*").neq("status", "completed").gte("due_date", "2026-12-01").lte("due_date", "2026-12-31")
      .order("due_date", { ascending: true }).limit(5),
  );
  assert.deepEqual(tasks, await expectedRows("tasks", me,
    "status <> 'completed' and due_date >= '2026-12-01' and due_date <= '2026-12-31'", "due_date"));
  assert.equal(tasks.length, 2);

  const recent = ok(await db.from("study_sessions").select("title").gte("created_at", "2026-12-01").order("created_at", { ascending: false }));
  assert.deepEqual(recent, [{ title: "Evening" }, { title: "Morning" }]);
  const short = ok(await db.from("study_sessions").select("title, duration").lt("duration", 40).order("duration"));
  assert.deepEqual(short, [{ title: "Night", duration: 20 }, { title: "Evening", duration: 30 }]);
  const unread = ok(await db.from("notifications").select("title").eq("read", false));
  assert.deepEqual(unread, [{ title: "Welcome" }]);
  const first = ok(await db.from("calendar_events").select("title, event_date, event_time").order("event_date").limit(1));
  assert.deepEqual(first, [{ title: "Class", event_date: "2026-12-03", event_time: null }]);
  const scores = ok(await db.from("study_analytics").select("date, average_focus_score").lte("date", "2026-12-01"));
  assert.deepEqual(scores, [{ date: "2026-12-01", average_focus_score: 81.5 }]);
});

test("count headers", async () => {
  const { count, data, error, status } = await db.from("tasks").select("*", { count: "exact", head: true });
  assert.equal(error, null);
  assert.equal(status, 200);
  assert.equal(data, null);
  const [row] = await sql`select count(*)::int as n from tasks where user_id = ${me}`;
  assert.equal(count, row.n);
  const page = await db.from("tasks").select("id", { count: "exact" }).order("id").limit(2);
  assert.equal(page.count, row.n);
  assert.equal(page.data.length, 2);
});

test("insert with select, bulk insert, update, delete", async () => {
  const inserted = ok(await db.from("tasks").insert({ user_id: me, title: "New task", priority: "high" }).select().single(), 201);
  const [task] = await sql`select to_json(t) as row from tasks t where id = ${inserted.id}`;
  assert.deepEqual(inserted, task.row);
  assert.equal(inserted.status, "todo", "defaults applied");

  const bulk = ok(await db.from("ai_messages").insert([
    { user_id: me, session_id: (await expectedRows("ai_tutor_sessions"))[0].id, role: "user", content: "Q" },
    { user_id: me, session_id: (await expectedRows("ai_tutor_sessions"))[0].id, role: "assistant", content: "A", tokens_used: 3 },
  ]).select("role, content, tokens_used"), 201);
  assert.deepEqual(bulk, [{ role: "user", content: "Q", tokens_used: null }, { role: "assistant", content: "A", tokens_used: 3 }]);

  const plain = await db.from("notifications").insert({ user_id: me, title: "t", message: "m" });
  assert.equal(plain.error, null);
  assert.equal(plain.status, 201);
  assert.equal(plain.data, null);

  const [goal] = await expectedRows("study_goals", me, "status = 'active'");
  const updated = ok(await db.from("study_goals").update({ current_value: 7 }).eq("id", goal.id).select("current_value"));
  assert.deepEqual(updated, [{ current_value: 7 }]);
  const [after] = await sql`select current_value from study_goals where id = ${goal.id}`;
  assert.equal(after.current_value, 7);
  const quiet = await db.from("profiles").update({ first_name: "Ada" }).eq("id", me);
  assert.equal(quiet.error, null);
  assert.equal(quiet.status, 204);

  const [event] = await expectedRows("calendar_events", me, "title = 'Class'");
  const removed = await db.from("calendar_events").delete().eq("id", event.id);
  assert.equal(removed.error, null);
  assert.equal(removed.status, 204);
  const [gone] = await sql`select count(*)::int as n from calendar_events where id = ${event.id}`;
  assert.equal(gone.n, 0);
});

test("upsert: merge on conflict, ignore duplicates", async () => {
  const merged = ok(await db.from("user_settings").upsert({ user_id: me, theme: "dark", daily_goal_hours: 4 }, { onConflict: "user_id" }).select().single(), 201);
  assert.equal(merged.theme, "dark");
  const rows = await expectedRows("user_settings");
  assert.equal(rows.length, 1, "one settings row per user");
  assert.deepEqual(merged, rows[0]);

  const ignored = ok(await db.from("study_streaks").upsert({ user_id: me, current_streak: 99 }, { onConflict: "user_id", ignoreDuplicates: true }).select(), 201);
  assert.deepEqual(ignored, []);
  const [streak] = await expectedRows("study_streaks");
  assert.equal(streak.current_streak, 3);

  const created = ok(await db.from("study_streaks").upsert({ user_id: me, current_streak: 4 }, { onConflict: "user_id" }).select("current_streak"), 201);
  assert.deepEqual(created, [{ current_streak: 4 }]);
});

test("single and maybeSingle", async () => {
  const profile = ok(await db.from("profiles").select("*").eq("id", me).single(), 200);
  assert.deepEqual(profile, (await expectedRows("profiles"))[0]);

  const none = await db.from("subjects").select("*").eq("name", "Chemistry").single();
  assert.equal(none.status, 406);
  assert.equal(none.error.code, "PGRST116");
  assert.equal(none.data, null);
  const many = await db.from("subjects").select("*").single();
  assert.equal(many.error.code, "PGRST116");

  const missing = await db.from("user_settings").select("*").eq("theme", "no-such-theme").maybeSingle();
  assert.equal(missing.error, null);
  assert.equal(missing.data, null);
  const one = ok(await db.from("study_streaks").select("current_streak").eq("user_id", me).maybeSingle());
  assert.equal(typeof one.current_streak, "number");
  const tooMany = await db.from("tasks").select("id").maybeSingle();
  assert.equal(tooMany.error.code, "PGRST116");
});

test("row-level security: the other user's rows are out of reach", async () => {
  for (const table of OWNED) {
    assert.deepEqual(ok(await db.from(table).select("*").eq("user_id", other)), [], table);
  }
  const forged = await db.from("tasks").insert({ user_id: other, title: "planted" });
  assert.equal(forged.error?.code, "42501");
  assert.equal(forged.status, 403);
  const theirs = await expectedRows("tasks", other);
  const touched = await db.from("tasks").update({ title: "hijacked" }).eq("id", theirs[0].id).select();
  assert.deepEqual(ok(touched), []);
  const deleted = await db.from("tasks").delete().eq("user_id", other).select();
  assert.deepEqual(ok(deleted), []);
  assert.deepEqual(await expectedRows("tasks", other), theirs, "their rows are unchanged");
  // The other user sees their own rows, not mine.
  const own = ok(await otherDb.from("tasks").select("user_id"));
  assert.ok(own.length > 0 && own.every((t) => t.user_id === other));
  // The anon key sees nothing.
  for (const table of TABLES) assert.deepEqual(ok(await anonDb.from(table).select("*")), [], table);
});

test("errors carry PostgREST's codes", async () => {
  // Through the gateway an unknown table is no route: it passes through to Supabase.
  if (expectedSide === "direct") {
    const unknown = await db.from("no_such_table").select("*");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.error.code, "PGRST205");
  }
  const column = await db.from("tasks").select("no_such_column");
  assert.equal(column.status, 400);
  assert.equal(column.error.code, "42703");
  const duplicate = await db.from("subjects").insert({ user_id: me, name: "Maths" });
  assert.equal(duplicate.status, 409);
  assert.equal(duplicate.error.code, "23505");
  const badEnum = await db.from("tasks").select("*").eq("status", "someday");
  assert.equal(badEnum.status, 400);
  assert.equal(badEnum.error.code, "22P02");
  for (const key of ["code", "details", "hint", "message"]) assert.ok(key in badEnum.error, key);
});
