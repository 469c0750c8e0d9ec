select
    run_id,
    row_key,
    day,
    run_started_at,
    filters,
    ended,
    listed_from,
    listed,
    complete,
    pending_processing,
    pending_detail_unavailable,
    pending_summary_unavailable,
    pending_recording_unavailable,
    pending_processing
    + pending_detail_unavailable
    + pending_summary_unavailable
    + pending_recording_unavailable as pending,
    unproven_tie_instants,
    removed,
    requests,
    quota_used
from {{ source('tap_conversations', 'sync_ledger') }}
where _sdc_deleted_at is null
