-- One row per conversation day and filters: what the latest run that looked at the day
-- says. A day is complete when nothing of it is pending and no tie instant of it
-- could not be listed whole; `missing` says why it is not. `removed`: conversations of
-- the day found removed at the source, by any run.
with day_rows as (
    select
        *,
        row_number() over (
            partition by day, filters order by run_started_at desc, run_id
        ) as newest_first
    from {{ ref('stg_sync_ledger') }}
    where day is not null
),

listed as (
    select day, filters, max(listed) as listed, sum(removed) as removed
    from {{ ref('stg_sync_ledger') }}
    where day is not null
    group by day, filters
)

select
    d.day,
    d.filters,
    d.run_id as last_run_id,
    d.run_started_at as last_run_started_at,
    l.listed,
    l.removed,
    d.pending,
    d.pending_processing,
    d.pending_detail_unavailable,
    d.pending_summary_unavailable,
    d.pending_recording_unavailable,
    d.unproven_tie_instants,
    d.pending = 0 and d.unproven_tie_instants = 0 as is_complete,
    concat_ws(
        ', ',
        case when d.pending_processing > 0 then d.pending_processing || ' still processing' end,
        case
            when d.pending_detail_unavailable > 0
                then d.pending_detail_unavailable || ' detail not available'
        end,
        case
            when d.pending_summary_unavailable > 0
                then d.pending_summary_unavailable || ' summary not available'
        end,
        case
            when d.pending_recording_unavailable > 0
                then d.pending_recording_unavailable || ' recording not available'
        end,
        case
            when d.unproven_tie_instants > 0
                then d.unproven_tie_instants || ' tie instants not listed whole'
        end
    ) as missing
from day_rows as d
inner join listed as l on d.day = l.day and d.filters = l.filters
where d.newest_first = 1
