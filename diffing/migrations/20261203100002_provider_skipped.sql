-- Pairs left uncompared because the new side's dry run skipped its provider call (its
-- AI content was a placeholder): counted per route and minute beside the compared ones,
-- never as compared pairs, so they are neither evidence for a promotion nor regressions.
alter table diffs.pair_counts add column if not exists provider_skipped bigint not null default 0;
