-- Minimal stand-in for Supabase's `auth` schema and roles.
--
-- On a real Supabase database every object below already exists and is owned by
-- Supabase's own roles, so each step only acts when the object is absent. The
-- existence checks are done in DO blocks rather than with `... if not exists`
-- because Postgres checks CREATE privilege on the schema before it looks for the
-- object, and on Supabase the migration role may not have CREATE on `auth`.

-- Roles first: policies and grants in later migrations name them.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;

    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;

    if not exists (select 1 from pg_roles where rolname = 'service_role') then
        -- Supabase's service_role bypasses RLS; only a superuser may grant that,
        -- so fall back to a plain role rather than fail for a non-superuser.
        if (select rolsuper from pg_roles where rolname = current_user) then
            create role service_role nologin noinherit bypassrls;
        else
            create role service_role nologin noinherit;
        end if;
    end if;
end
$$;

do $$
begin
    if not exists (select 1 from pg_namespace where nspname = 'auth') then
        create schema if not exists auth;
        -- Policies call auth.uid() as these roles, which needs schema usage.
        grant usage on schema auth to anon, authenticated, service_role;
    end if;
end
$$;

do $$
begin
    if to_regclass('auth.users') is null then
        -- Only the columns our schema relies on (foreign keys, profile email).
        create table if not exists auth.users (
            id    uuid primary key default gen_random_uuid(),
            email text
        );
    end if;
end
$$;

do $do$
begin
    if not exists (
        select 1
        from pg_proc p
        join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'auth' and p.proname = 'uid'
    ) then
        -- Same lookup as Supabase: PostgREST sets either the single-claim GUC
        -- (older versions) or the whole claims object (current versions).
        create function auth.uid() returns uuid
            language sql
            stable
        as $fn$
            select coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), '')::uuid,
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid
            )
        $fn$;
        grant execute on function auth.uid() to anon, authenticated, service_role;
    end if;
end
$do$;
