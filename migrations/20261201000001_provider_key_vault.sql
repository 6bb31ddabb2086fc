-- Provider key vault: AI provider API keys encrypted with AES-256-GCM under a
-- master key that only the backend's configuration holds (VAULT_MASTER_KEY).
--
-- A schema of its own, outside `public`: PostgREST exposes `public` to anon and
-- authenticated users on Supabase, and nobody but the backend (service role or
-- table owner) may even see that these rows exist. (`vault` is taken on
-- Supabase by its own extension, hence the longer name.)

create schema if not exists studyflow_vault;
revoke all on schema studyflow_vault from public;

-- One row per master key version: a known text sealed under that key, so a wrong
-- key is recognised as such before anything is decrypted or written with it.
create table if not exists studyflow_vault.master_keys (
    version     integer primary key check (version > 0),
    check_nonce bytea not null,
    check_value bytea not null,
    created_at  timestamptz not null default now(),
    -- Set when a rotation to a newer version is finished: no secret is readable
    -- with this key any more.
    retired_at  timestamptz
);

create table if not exists studyflow_vault.provider_secrets (
    provider             text primary key,
    -- The master key version the ciphertext is sealed under.
    key_version          integer not null check (key_version > 0),
    nonce                bytea not null,
    ciphertext           bytea not null,
    -- During a rotation: the same key sealed under the previous master key, so
    -- servers still on that key keep reading; cleared when the rotation is
    -- finished.
    previous_key_version integer,
    previous_nonce       bytea,
    previous_ciphertext  bytea,
    -- sha256 prefix of the key: what listings and logs show instead of it.
    fingerprint          text not null,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    constraint provider_secrets_previous_complete check (
        (previous_key_version is null and previous_nonce is null and previous_ciphertext is null)
        or (previous_key_version is not null and previous_nonce is not null and previous_ciphertext is not null)
    )
);

-- Defence in depth should a grant ever open the schema: row-level security with
-- no policy admits no one but the owner and BYPASSRLS roles.
alter table studyflow_vault.master_keys enable row level security;
alter table studyflow_vault.provider_secrets enable row level security;

do $$
begin
    if exists (select 1 from pg_roles where rolname = 'anon') then
        revoke all on all tables in schema studyflow_vault from anon;
    end if;
    if exists (select 1 from pg_roles where rolname = 'authenticated') then
        revoke all on all tables in schema studyflow_vault from authenticated;
    end if;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        grant usage on schema studyflow_vault to service_role;
        grant select, insert, update, delete on all tables in schema studyflow_vault
            to service_role;
    end if;
end
$$;
