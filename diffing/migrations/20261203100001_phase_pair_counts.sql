-- Compared pairs per route, phase served under (`shadow`, `canary 25%`, `primary`) and
-- second: the promotion gate counts only pairs served after the exact instant of the
-- phase change, and only under the phase now in force.
create table if not exists diffs.phase_pair_counts (
    route text not null,
    phase text not null,
    second timestamptz not null,
    compared bigint not null default 0,
    regression bigint not null default 0,
    primary key (route, phase, second)
);

create index if not exists phase_pair_counts_second on diffs.phase_pair_counts (second);
