-- One row per conversation that has a transcript (possibly with no segments).
select
    conversation_id,
    coalesce(cardinality(segments), 0) as segment_count
from {{ source('tap_conversations', 'transcripts') }}
where _sdc_deleted_at is null
