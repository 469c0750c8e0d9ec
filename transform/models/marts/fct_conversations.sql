-- One row per conversation with its attributes and talk metrics. Talk metrics are
-- null without a transcript (0 for a transcript with no segments); insight_count is
-- 0 without insights.
with segments as (
    select
        *,
        lag(speaker) over (partition by conversation_id order by segment_index) as previous_speaker
    from {{ ref('stg_transcript_segments') }}
),

talk as (
    select
        conversation_id,
        sum(duration_seconds) as talk_seconds,
        count(distinct speaker) as speaker_count,
        count(*) filter (where previous_speaker is not null and previous_speaker <> speaker)
            as speaker_switches,
        count(*) filter (where is_question) as question_count
    from segments
    group by conversation_id
),

monologues as (
    select conversation_id, max(longest_monologue_seconds) as longest_monologue_seconds
    from {{ ref('fct_conversation_speakers') }}
    group by conversation_id
),

insights as (
    select conversation_id, count(*) as insight_count
    from {{ ref('stg_insights') }}
    group by conversation_id
)

select
    c.conversation_id,
    c.conversation_at,
    c.title,
    c.company,
    c.duration_seconds,
    c.medium,
    c.sentiment,
    c.conversation_type,
    c.department_id,
    c.department_name,
    c.user_id,
    c.user_name,
    case when t.conversation_id is not null then coalesce(talk.talk_seconds, 0) end
        as talk_seconds,
    case when t.conversation_id is not null then coalesce(talk.speaker_count, 0) end
        as speaker_count,
    case when t.conversation_id is not null then coalesce(talk.speaker_switches, 0) end
        as speaker_switches,
    case when t.conversation_id is not null then coalesce(m.longest_monologue_seconds, 0) end
        as longest_monologue_seconds,
    case when t.conversation_id is not null then coalesce(talk.question_count, 0) end
        as question_count,
    coalesce(i.insight_count, 0) as insight_count,
    t.conversation_id is not null as has_transcript,
    c.summary is not null as has_summary
from {{ ref('stg_conversations') }} as c
left join {{ ref('stg_transcripts') }} as t on c.conversation_id = t.conversation_id
left join talk on c.conversation_id = talk.conversation_id
left join monologues as m on c.conversation_id = m.conversation_id
left join insights as i on c.conversation_id = i.conversation_id
where not c.is_removed
