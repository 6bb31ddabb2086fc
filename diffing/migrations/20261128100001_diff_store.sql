-- The gateway's diff store: counts of compared answer pairs and differing path shapes
-- per route and minute, and a bounded set of recent (redacted) samples. It lives in its
-- own schema so it can share a database with the application or have one of its own.
create schema if not exists diffs;

-- One row per route and minute.
create table if not exists diffs.pair_counts (
    route text not null,
    bucket timestamptz not null,
    compared bigint not null default 0,
    equal bigint not null default 0,
    noise bigint not null default 0,
    regression bigint not null default 0,
    primary key (route, bucket)
);

-- How often each path shape differed: between the two sides (`differing`, of which
-- `noise` were classified as noise) and between two answers of the same side (`probe`).
create table if not exists diffs.shape_counts (
    route text not null,
    shape text not null,
    bucket timestamptz not null,
    differing bigint not null default 0,
    noise bigint not null default 0,
    probe bigint not null default 0,
    primary key (route, shape, bucket)
);

-- Recent samples, kept per route and (first regression, else first noise) shape.
create table if not exists diffs.samples (
    id bigserial primary key,
    route text not null,
    shape text not null,
    shapes text[] not null,
    request_id text not null,
    verdict text not null,
    created_at timestamptz not null default now(),
    exchange jsonb not null,
    differences jsonb not null
);

create index if not exists samples_route_shape on diffs.samples (route, shape, id desc);
create index if not exists samples_shapes on diffs.samples using gin (shapes);
create index if not exists pair_counts_bucket on diffs.pair_counts (bucket);
create index if not exists shape_counts_bucket on diffs.shape_counts (bucket);
