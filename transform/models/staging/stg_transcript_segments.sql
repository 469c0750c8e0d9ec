-- One row per transcript segment, unnested from transcripts.segments in transcript
-- order (segment_index from 0, as the transcript_segments stream numbers them).
-- speaker: trimmed; null or empty is 'unknown'. duration: end - start.
-- The loader keeps one transcripts row per conversation (its key), so a transcript
-- processed again replaces the old one here and in every model built on it.
select
    t.conversation_id,
    s.segment_position - 1 as segment_index,
    coalesce(nullif(trim(s.segment ->> 'speaker'), ''), 'unknown') as speaker,
    s.segment ->> 'text' as text,
    (s.segment ->> 'start')::numeric as start_seconds,
    (s.segment ->> 'end')::numeric as end_seconds,
    (s.segment ->> 'end')::numeric - (s.segment ->> 'start')::numeric as duration_seconds,
    coalesce(trim(s.segment ->> 'text') like '%?', false) as is_question
from {{ source('tap_conversations', 'transcripts') }} as t
cross join lateral unnest(t.segments) with ordinality as s (segment, segment_position)
where t._sdc_deleted_at is null
