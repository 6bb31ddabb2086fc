// Database access for the functions, acting as Supabase's service role.
//
// The legacy talks to PostgREST through supabase-js, so the helpers below keep
// PostgREST's behaviour where it shows: rows come back as Postgres renders them
// in JSON (timestamps as "2025-01-01T10:00:00+00:00"), inserted objects go
// through JSON.stringify (undefined keys dropped, NaN becomes null), and a
// failed query yields `{ data: null, error }` instead of throwing.

import postgres from "postgres";

// deno-lint-ignore no-explicit-any
export type Row = Record<string, any>;
export type DbResult<T> = { data: T | null; error: Error | null };

let client: postgres.Sql | undefined;

export function sql(): postgres.Sql {
  if (!client) {
    const url = Deno.env.get("DATABASE_URL");
    if (!url) throw new Error("DATABASE_URL is not set");
    client = postgres(url, {
      max: 5,
      connection: { TimeZone: "UTC" },
      onnotice: () => {},
    });
  }
  return client;
}

/** Runs a SELECT and returns its rows as PostgREST would (JSON-rendered). */
export async function selectRows(
  build: (db: postgres.Sql) => postgres.PendingQuery<postgres.Row[]>,
): Promise<DbResult<Row[]>> {
  try {
    const db = sql();
    const result = await db`select to_json(q) as r from (${build(db)}) q`;
    return { data: result.map((row) => row.r as Row), error: null };
  } catch (error) {
    return { data: null, error: error as Error };
  }
}

/** supabase-js `.single()`: the row when exactly one matches, else an error. */
export async function selectSingle(
  build: (db: postgres.Sql) => postgres.PendingQuery<postgres.Row[]>,
): Promise<DbResult<Row>> {
  const { data, error } = await selectRows(build);
  if (error) return { data: null, error };
  if (!data || data.length !== 1) {
    return {
      data: null,
      error: new Error("JSON object requested, multiple (or no) rows returned"),
    };
  }
  return { data: data[0], error: null };
}

async function write(
  table: string,
  row: Row,
  onConflict?: string[],
): Promise<DbResult<null>> {
  try {
    const db = sql();
    const body = JSON.parse(JSON.stringify(row)) as Row;
    const columns = Object.keys(body);
    const source = db`select ${db(columns)} from json_populate_record(null::${
      db(table)
    }, ${db.json(body)}::json)`;
    if (onConflict) {
      const updates = columns.map((c) => db`${db(c)} = excluded.${db(c)}`);
      const setList = updates.reduce((acc, u) => db`${acc}, ${u}`);
      await db`insert into ${db(table)} (${db(columns)}) ${source}
        on conflict (${db(onConflict)}) do update set ${setList}`;
    } else {
      await db`insert into ${db(table)} (${db(columns)}) ${source}`;
    }
    return { data: null, error: null };
  } catch (error) {
    // Like supabase-js, the failure is returned, not thrown; note it for
    // whoever runs the stand-in (SQLSTATE only: messages may quote values).
    const code = (error as { code?: string }).code ?? "unknown";
    console.error(`db write to ${table} failed (${code})`);
    return { data: null, error: error as Error };
  }
}

/** supabase-js `.from(table).insert(row)`. */
export function insertRow(table: string, row: Row): Promise<DbResult<null>> {
  return write(table, row);
}

/** supabase-js `.from(table).upsert(row, { onConflict })` (merge duplicates). */
export function upsertRow(
  table: string,
  row: Row,
  onConflict: string[],
): Promise<DbResult<null>> {
  return write(table, row, onConflict);
}
