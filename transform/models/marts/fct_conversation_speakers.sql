-- One row per (conversation, speaker) of every transcript with segments.
-- A monologue is a maximal run of consecutive segments with the same speaker; its
-- length is the sum of their durations (gaps and islands over segment_index).
with segments as (
    select
        *,
        segment_index
        - row_number() over (partition by conversation_id, speaker order by segment_index)
            as run_id
    from {{ ref('stg_transcript_segments') }}
),

monologues as (
    select conversation_id, speaker, sum(duration_seconds) as monologue_seconds
    from segments
    group by conversation_id, speaker, run_id
),

per_speaker as (
    select
        conversation_id,
        speaker,
        count(*) as segment_count,
        sum(duration_seconds) as talk_seconds
    from segments
    group by conversation_id, speaker
),

per_conversation as (
    select conversation_id, sum(duration_seconds) as conversation_talk_seconds
    from segments
    group by conversation_id
)

select
    s.conversation_id,
    s.speaker,
    s.segment_count,
    s.talk_seconds,
    s.talk_seconds / nullif(c.conversation_talk_seconds, 0) as talk_share,
    (
        select max(m.monologue_seconds)
        from monologues as m
        where m.conversation_id = s.conversation_id and m.speaker = s.speaker
    ) as longest_monologue_seconds
from per_speaker as s
inner join per_conversation as c on s.conversation_id = c.conversation_id
