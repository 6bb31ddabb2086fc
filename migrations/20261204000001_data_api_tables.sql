-- The rest of the tables the frontend reads and writes through the data API
-- (legacy-contract.md, "Data API facts"), their row-level security, and the
-- grants PostgREST's roles need. Guarded like the core schema so the file is a
-- no-op against a Supabase database that already holds these objects.

do $$
begin
    if to_regtype('public.event_type') is null then
        create type public.event_type as enum
            ('class', 'exam', 'assignment_due', 'study_session', 'meeting', 'reminder',
             'deadline', 'break');
    end if;

    if to_regtype('public.ai_provider') is null then
        create type public.ai_provider as enum
            ('openai', 'anthropic', 'deepseek', 'google', 'local');
    end if;
end
$$;

create table if not exists public.user_settings (
    id                           uuid primary key default gen_random_uuid(),
    user_id                      uuid not null unique references auth.users (id) on delete cascade,
    theme                        text default 'light' check (theme in ('light', 'dark', 'system')),
    notifications_enabled        boolean default true,
    email_notifications          boolean default true,
    sound_enabled                boolean default true,
    study_reminder_time          time default '09:00:00',
    daily_goal_hours             integer default 2,
    pomodoro_enabled             boolean default true,
    pomodoro_work_duration       integer default 25,
    pomodoro_break_duration      integer default 5,
    pomodoro_long_break_duration integer default 15,
    ai_suggestions_enabled       boolean default true,
    created_at                   timestamptz not null default now(),
    updated_at                   timestamptz not null default now()
);

create table if not exists public.calendar_events (
    id                uuid primary key default gen_random_uuid(),
    user_id           uuid not null references auth.users (id) on delete cascade,
    subject_id        uuid references public.subjects (id) on delete set null,
    title             text not null,
    description       text,
    event_type        public.event_type not null,
    event_date        date not null,
    event_time        time,
    end_time          time,
    location          text,
    subject_name      text,
    color             text,
    recurring         boolean default false,
    recurring_pattern text,
    notification_time integer,
    completed         boolean default false,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);

create table if not exists public.ai_tutor_sessions (
    id               uuid primary key default gen_random_uuid(),
    user_id          uuid not null references auth.users (id) on delete cascade,
    subject_id       uuid references public.subjects (id) on delete set null,
    title            text default 'Study Session with Teddy',
    status           text default 'active' check (status in ('active', 'completed', 'archived')),
    ai_provider      public.ai_provider default 'deepseek',
    total_messages   integer default 0,
    started_at       timestamptz,
    last_activity    timestamptz not null default now(),
    session_metadata jsonb default '{}',
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists public.ai_messages (
    id               uuid primary key default gen_random_uuid(),
    user_id          uuid not null references auth.users (id) on delete cascade,
    session_id       uuid not null references public.ai_tutor_sessions (id) on delete cascade,
    role             text not null check (role in ('user', 'assistant', 'system')),
    content          text not null,
    ai_provider      public.ai_provider,
    tokens_used      integer,
    response_time    integer,
    message_metadata jsonb default '{}',
    created_at       timestamptz not null default now()
);

create table if not exists public.study_streaks (
    id                uuid primary key default gen_random_uuid(),
    user_id           uuid not null unique references auth.users (id) on delete cascade,
    current_streak    integer default 0,
    longest_streak    integer default 0,
    total_study_days  integer default 0,
    last_study_date   date,
    streak_start_date date,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);

create table if not exists public.study_analytics (
    id                  uuid primary key default gen_random_uuid(),
    user_id             uuid not null references auth.users (id) on delete cascade,
    date                date not null,
    subject_id          uuid references public.subjects (id) on delete set null,
    total_study_time    integer default 0,
    session_count       integer default 0,
    tasks_completed     integer default 0,
    flashcards_studied  integer default 0,
    ai_interactions     integer default 0,
    average_focus_score decimal(5, 2),
    created_at          timestamptz not null default now(),
    constraint study_analytics_user_id_date_subject_id_key unique (user_id, date, subject_id)
);

-- Indexes: user_id leads a unique constraint on user_settings, study_streaks and
-- study_analytics already.
create index if not exists calendar_events_user_id_event_date_idx
    on public.calendar_events (user_id, event_date);
create index if not exists ai_tutor_sessions_user_id_last_activity_idx
    on public.ai_tutor_sessions (user_id, last_activity);
create index if not exists ai_messages_session_id_created_at_idx
    on public.ai_messages (session_id, created_at);
create index if not exists ai_messages_user_id_idx on public.ai_messages (user_id);
create index if not exists calendar_events_subject_id_idx on public.calendar_events (subject_id);
create index if not exists ai_tutor_sessions_subject_id_idx on public.ai_tutor_sessions (subject_id);
create index if not exists study_analytics_subject_id_idx on public.study_analytics (subject_id);

do $$
declare
    t text;
begin
    foreach t in array array['user_settings', 'calendar_events', 'ai_tutor_sessions', 'study_streaks']
    loop
        execute format(
            'create or replace trigger %I before update on public.%I
                 for each row execute function public.set_updated_at()',
            t || '_set_updated_at', t);
    end loop;
end
$$;

-- Grants: the data API runs every request as `authenticated` or `anon`. anon
-- gets usage and select so that its requests reach the policies, which admit
-- no row to it (Supabase grants the same through default privileges).
grant usage on schema public to anon;

grant select, insert, update, delete on
    public.user_settings, public.calendar_events, public.ai_tutor_sessions,
    public.ai_messages, public.study_streaks
    to authenticated, service_role;
grant select, insert, update on public.study_analytics to authenticated;
grant select, insert, update, delete on public.study_analytics to service_role;

grant select on
    public.profiles, public.subjects, public.tasks, public.study_sessions,
    public.study_goals, public.notifications, public.user_settings,
    public.calendar_events, public.ai_tutor_sessions, public.ai_messages,
    public.study_streaks, public.study_analytics
    to anon;

-- Profiles are created by the sign-up trigger and never deleted by users.
revoke insert, delete on public.profiles from authenticated;

do $$
declare
    t text;
begin
    foreach t in array array[
        'user_settings', 'calendar_events', 'ai_tutor_sessions', 'ai_messages',
        'study_streaks', 'study_analytics'
    ] loop
        execute format('alter table public.%I enable row level security', t);

        execute format('drop policy if exists %I on public.%I', t || '_select_own', t);
        execute format(
            'create policy %I on public.%I for select to authenticated
                 using (user_id = (select auth.uid()))',
            t || '_select_own', t);

        execute format('drop policy if exists %I on public.%I', t || '_insert_own', t);
        execute format(
            'create policy %I on public.%I for insert to authenticated
                 with check (user_id = (select auth.uid()))',
            t || '_insert_own', t);

        execute format('drop policy if exists %I on public.%I', t || '_update_own', t);
        execute format(
            'create policy %I on public.%I for update to authenticated
                 using (user_id = (select auth.uid()))
                 with check (user_id = (select auth.uid()))',
            t || '_update_own', t);

        -- Analytics rows are kept: users may not delete them.
        execute format('drop policy if exists %I on public.%I', t || '_delete_own', t);
        if t <> 'study_analytics' then
            execute format(
                'create policy %I on public.%I for delete to authenticated
                     using (user_id = (select auth.uid()))',
                t || '_delete_own', t);
        end if;
    end loop;

    -- Profiles: select and update own row only (contract); the earlier
    -- migration's insert and delete policies go.
    drop policy if exists profiles_insert_own on public.profiles;
    drop policy if exists profiles_delete_own on public.profiles;
end
$$;
