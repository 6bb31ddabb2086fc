-- Core StudyFlow schema, as the legacy Supabase project has it (see
-- legacy-contract.md, "Schema facts"). Everything is guarded so the file is a
-- no-op against a Supabase database that already holds these objects.

-- Enums ----------------------------------------------------------------------
-- `create type` has no `if not exists`, hence the DO blocks.
do $$
begin
    if to_regtype('public.task_status') is null then
        create type public.task_status as enum
            ('todo', 'in_progress', 'completed', 'cancelled', 'on_hold');
    end if;

    if to_regtype('public.task_priority') is null then
        create type public.task_priority as enum
            ('low', 'medium', 'high', 'urgent');
    end if;

    if to_regtype('public.study_session_type') is null then
        create type public.study_session_type as enum
            ('focus', 'review', 'practice', 'exam_prep', 'assignment', 'research');
    end if;

    if to_regtype('public.study_session_status') is null then
        create type public.study_session_status as enum
            ('planned', 'active', 'paused', 'completed', 'cancelled');
    end if;

    if to_regtype('public.goal_type') is null then
        create type public.goal_type as enum
            ('daily', 'weekly', 'monthly', 'semester', 'yearly', 'custom');
    end if;

    if to_regtype('public.goal_unit') is null then
        create type public.goal_unit as enum
            ('hours', 'minutes', 'sessions', 'tasks', 'points', 'percentage');
    end if;

    if to_regtype('public.goal_status') is null then
        create type public.goal_status as enum
            ('active', 'completed', 'paused', 'cancelled', 'overdue');
    end if;
end
$$;

-- updated_at maintenance -----------------------------------------------------
-- Clients (PostgREST PATCH, the backend) never send updated_at, so the
-- database keeps it current. Empty search_path: now() lives in pg_catalog.
create or replace function public.set_updated_at() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    new.updated_at := now();
    return new;
end
$$;

-- User-owned tables ----------------------------------------------------------

create table if not exists public.profiles (
    id                   uuid primary key references auth.users (id) on delete cascade,
    email                text,
    first_name           text,
    last_name            text,
    -- Empty strings count as "not given" so a blank first name does not yield
    -- " Smith". Only immutable operators are allowed in a generated column,
    -- which rules out concat_ws() (it is merely stable).
    full_name            text generated always as (
        case
            when nullif(first_name, '') is not null and nullif(last_name, '') is not null
                then first_name || ' ' || last_name
            else coalesce(nullif(first_name, ''), nullif(last_name, ''), email)
        end
    ) stored,
    avatar_url           text,
    date_of_birth        date,
    academic_level       text,
    subscription_tier    text default 'free',
    timezone             text default 'UTC',
    language             text default 'en',
    onboarding_completed boolean default false,
    study_streak         integer default 0,
    total_study_time     integer default 0,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now()
);

create table if not exists public.subjects (
    id          uuid primary key default gen_random_uuid(),
    user_id     uuid not null references auth.users (id) on delete cascade,
    name        text not null,
    description text,
    color       text default '#3B82F6',
    icon        text,
    is_archived boolean default false,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    -- Also serves every "subjects of this user" lookup (leading column).
    constraint subjects_user_id_name_key unique (user_id, name)
);

create table if not exists public.tasks (
    id                 uuid primary key default gen_random_uuid(),
    user_id            uuid not null references auth.users (id) on delete cascade,
    subject_id         uuid references public.subjects (id) on delete set null,
    title              text not null,
    description        text,
    status             public.task_status default 'todo',
    priority           public.task_priority default 'medium',
    due_date           timestamptz,
    completed_at       timestamptz,
    estimated_duration integer,
    actual_duration    integer,
    assignment_type    text,
    points             integer,
    tags               text[] default '{}',
    attachments        text,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);

create table if not exists public.study_sessions (
    id               uuid primary key default gen_random_uuid(),
    user_id          uuid not null references auth.users (id) on delete cascade,
    subject_id       uuid references public.subjects (id) on delete set null,
    title            text not null,
    description      text,
    type             public.study_session_type default 'focus',
    status           public.study_session_status default 'planned',
    started_at       timestamptz,
    completed_at     timestamptz,
    duration         integer default 0,
    planned_duration integer,
    break_duration   integer default 0,
    pomodoro_count   integer default 0,
    focus_score      integer,
    distractions     integer default 0,
    notes            text,
    completed        boolean default false,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    constraint study_sessions_focus_score_check check (focus_score between 0 and 100)
);

create table if not exists public.study_goals (
    id            uuid primary key default gen_random_uuid(),
    user_id       uuid not null references auth.users (id) on delete cascade,
    subject_id    uuid references public.subjects (id) on delete set null,
    title         text not null,
    description   text,
    type          public.goal_type default 'weekly',
    status        public.goal_status default 'active',
    target_value  integer not null,
    current_value integer default 0,
    unit          public.goal_unit default 'hours',
    deadline      timestamptz,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

-- The contract lists no updated_at here: notifications are written once and
-- only their `read` flag flips.
create table if not exists public.notifications (
    id         uuid primary key default gen_random_uuid(),
    user_id    uuid not null references auth.users (id) on delete cascade,
    title      text not null,
    message    text not null,
    type       text default 'info',
    -- security-monitor inserts priority 'urgent' for high/critical events.
    priority   text default 'normal',
    read       boolean default false,
    action_url text,
    metadata   jsonb default '{}',
    expires_at timestamptz,
    created_at timestamptz not null default now()
);

-- An existing Supabase notifications table may predate these two columns;
-- without them security-monitor's insert fails (silently, in the legacy).
alter table public.notifications add column if not exists priority text default 'normal';
alter table public.notifications add column if not exists action_url text;

-- Service-written tables -----------------------------------------------------
-- user_id has no foreign key on these three: the legacy writes whatever id the
-- token (or, for security-monitor, the request body) carries, existing user or not.

create table if not exists public.rate_limits (
    id             uuid primary key default gen_random_uuid(),
    user_id        uuid not null,
    window_start   timestamptz not null,
    requests_count integer default 1,
    action         text,
    blocked_until  timestamptz,
    updated_at     timestamptz not null default now(),
    created_at     timestamptz not null default now(),
    -- One counter row per user and window; also the index for per-user lookups.
    constraint rate_limits_user_id_window_start_key unique (user_id, window_start)
);

create table if not exists public.api_usage_logs (
    id                uuid primary key default gen_random_uuid(),
    user_id           uuid not null,
    provider          text not null,
    model             text,
    tokens_used       integer default 0,
    success           boolean default true,
    -- The legacy always sends it; the default only spares other writers.
    request_timestamp timestamptz not null default now(),
    created_at        timestamptz not null default now()
);

create table if not exists public.security_audit_log (
    id         uuid primary key default gen_random_uuid(),
    -- Nullable: CSP reports carry no user.
    user_id    uuid,
    event_type text not null,
    details    jsonb,
    severity   text default 'low',
    ip_address text,
    user_agent text,
    created_at timestamptz not null default now()
);

-- Indexes --------------------------------------------------------------------
-- A composite index whose leading column is user_id also serves plain user_id
-- filters (RLS adds one to every query), so user_id gets its own index only
-- where no such composite exists.

create index if not exists tasks_user_id_idx on public.tasks (user_id);
create index if not exists study_goals_user_id_idx on public.study_goals (user_id);
-- Analytics reads "sessions completed in the last N days" per user.
create index if not exists study_sessions_user_id_completed_at_idx
    on public.study_sessions (user_id, completed_at);
create index if not exists notifications_user_id_created_at_idx
    on public.notifications (user_id, created_at);
create index if not exists api_usage_logs_user_id_created_at_idx
    on public.api_usage_logs (user_id, created_at);
create index if not exists security_audit_log_user_id_created_at_idx
    on public.security_audit_log (user_id, created_at);

-- Deleting a subject sets subject_id to null in these tables; without an index
-- each delete scans them.
create index if not exists tasks_subject_id_idx on public.tasks (subject_id);
create index if not exists study_sessions_subject_id_idx on public.study_sessions (subject_id);
create index if not exists study_goals_subject_id_idx on public.study_goals (subject_id);

-- updated_at triggers --------------------------------------------------------
-- `create or replace trigger` (Postgres 14+) keeps re-runs idempotent.

create or replace trigger profiles_set_updated_at
    before update on public.profiles
    for each row execute function public.set_updated_at();

create or replace trigger subjects_set_updated_at
    before update on public.subjects
    for each row execute function public.set_updated_at();

create or replace trigger tasks_set_updated_at
    before update on public.tasks
    for each row execute function public.set_updated_at();

create or replace trigger study_sessions_set_updated_at
    before update on public.study_sessions
    for each row execute function public.set_updated_at();

create or replace trigger study_goals_set_updated_at
    before update on public.study_goals
    for each row execute function public.set_updated_at();

create or replace trigger rate_limits_set_updated_at
    before update on public.rate_limits
    for each row execute function public.set_updated_at();
