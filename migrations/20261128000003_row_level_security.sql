-- Row-level security as on Supabase: a signed-in user (role `authenticated`,
-- id from auth.uid()) reaches only their own rows. The table owner and
-- service_role (BYPASSRLS) are not affected, so the backend's own writes to
-- rate_limits, api_usage_logs and security_audit_log go through.
--
-- Policies are dropped and re-created so a re-run converges on these
-- definitions. `(select auth.uid())` rather than `auth.uid()`: the sub-select
-- is evaluated once per statement instead of once per row.

-- Table privileges. Supabase grants these through default privileges already
-- (re-granting is harmless); a plain Postgres database has none, and RLS only
-- filters rows a role may access in the first place. anon gets nothing: no
-- policy admits it.
grant usage on schema public to authenticated, service_role;

grant select, insert, update, delete on
    public.profiles, public.subjects, public.tasks, public.study_sessions,
    public.study_goals, public.notifications
    to authenticated;

-- Written only by the service side; users may read their own rows.
grant select on public.rate_limits, public.api_usage_logs, public.security_audit_log
    to authenticated;

grant select, insert, update, delete on
    public.profiles, public.subjects, public.tasks, public.study_sessions,
    public.study_goals, public.notifications,
    public.rate_limits, public.api_usage_logs, public.security_audit_log
    to service_role;

do $$
declare
    t text;
begin
    -- Every public table gets RLS, including those only read by users.
    foreach t in array array[
        'profiles', 'subjects', 'tasks', 'study_sessions', 'study_goals',
        'notifications', 'rate_limits', 'api_usage_logs', 'security_audit_log'
    ] loop
        execute format('alter table public.%I enable row level security', t);
    end loop;

    -- Full CRUD on own rows. The owner column is user_id everywhere except
    -- profiles, whose primary key is the user id itself.
    foreach t in array array[
        'profiles', 'subjects', 'tasks', 'study_sessions', 'study_goals', 'notifications'
    ] loop
        declare
            owner_col text := case when t = 'profiles' then 'id' else 'user_id' end;
        begin
            execute format('drop policy if exists %I on public.%I', t || '_select_own', t);
            execute format(
                'create policy %I on public.%I for select to authenticated
                     using (%I = (select auth.uid()))',
                t || '_select_own', t, owner_col);

            execute format('drop policy if exists %I on public.%I', t || '_insert_own', t);
            execute format(
                'create policy %I on public.%I for insert to authenticated
                     with check (%I = (select auth.uid()))',
                t || '_insert_own', t, owner_col);

            -- with check too: a user must not hand a row over to someone else.
            execute format('drop policy if exists %I on public.%I', t || '_update_own', t);
            execute format(
                'create policy %I on public.%I for update to authenticated
                     using (%I = (select auth.uid()))
                     with check (%I = (select auth.uid()))',
                t || '_update_own', t, owner_col, owner_col);

            execute format('drop policy if exists %I on public.%I', t || '_delete_own', t);
            execute format(
                'create policy %I on public.%I for delete to authenticated
                     using (%I = (select auth.uid()))',
                t || '_delete_own', t, owner_col);
        end;
    end loop;

    -- Read-only for users: these rows are written by the service role.
    foreach t in array array['rate_limits', 'api_usage_logs', 'security_audit_log'] loop
        execute format('drop policy if exists %I on public.%I', t || '_select_own', t);
        execute format(
            'create policy %I on public.%I for select to authenticated
                 using (user_id = (select auth.uid()))',
            t || '_select_own', t);
    end loop;
end
$$;
