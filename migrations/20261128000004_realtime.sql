-- Realtime postgres_changes: row changes of published tables are sent with
-- pg_notify on channel `studyflow_realtime`, where every backend instance
-- listens (see backend/src/realtime/changes.rs).
--
-- Payload: {schema, table, type, id, user_id, commit_timestamp, record,
-- old_record}. NOTIFY payloads are limited to 8000 bytes: a larger row is sent
-- without its records and with `large: true`, and the backend reads it back by
-- id. user_id stays in every payload so owner filtering works either way.
--
-- Idempotent: the function is replaced and the triggers re-created. To publish
-- another table, add the same trigger on it and list it in REALTIME_TABLES.

create or replace function public.studyflow_realtime_notify()
returns trigger
language plpgsql
as $$
declare
    rec     jsonb := case when tg_op = 'DELETE' then null else to_jsonb(new) end;
    old_rec jsonb := case when tg_op = 'INSERT' then null else to_jsonb(old) end;
    head    jsonb;
    full_payload text;
begin
    head := jsonb_build_object(
        'schema', tg_table_schema,
        'table', tg_table_name,
        'type', tg_op,
        'id', coalesce(rec ->> 'id', old_rec ->> 'id'),
        'user_id', coalesce(rec ->> 'user_id', old_rec ->> 'user_id'),
        'commit_timestamp', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    );
    full_payload := (head || jsonb_build_object('record', rec, 'old_record', old_rec))::text;
    if octet_length(full_payload) < 7900 then
        perform pg_notify('studyflow_realtime', full_payload);
    else
        perform pg_notify('studyflow_realtime', (head || jsonb_build_object('large', true))::text);
    end if;
    return null;
end;
$$;

drop trigger if exists studyflow_realtime on public.notifications;
create trigger studyflow_realtime
    after insert or update or delete on public.notifications
    for each row execute function public.studyflow_realtime_notify();
