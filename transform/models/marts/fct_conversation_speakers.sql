-- One row per (conversation, speaker) of every transcript with segments.
-- A monologue is a maximal run of consecutive segments with the same speaker; its
-- length is the sum of their durations (gaps and islands over segment_index).
-- speaker_role: 'user' when the speaker is the conversation's user (the account's
-- member who held it, who is not among the listed participants); else the role of the
-- listed participant of that name ('participant without a role' when the API gives
-- none); else 'unidentified' (a diarization label such as 'Speaker 2', or no speaker).
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
),

-- One row per (conversation, name): a name listed twice gets its alphabetically first
-- role.
participant_roles as (
    select
        conversation_id,
        trim(participant_name) as participant_name,
        min(participant_role) as participant_role
    from {{ ref('stg_participants') }}
    where nullif(trim(participant_name), '') is not null
    group by conversation_id, trim(participant_name)
)

select
    s.conversation_id,
    s.speaker,
    s.segment_count,
    s.talk_seconds,
    s.talk_seconds / nullif(c.conversation_talk_seconds, 0) as talk_share,
    case
        when s.speaker = trim(conv.user_name) then 'user'
        when p.participant_name is not null
            then coalesce(p.participant_role, 'participant without a role')
        else 'unidentified'
    end as speaker_role,
    (
        select max(m.monologue_seconds)
        from monologues as m
        where m.conversation_id = s.conversation_id and m.speaker = s.speaker
    ) as longest_monologue_seconds
from per_speaker as s
inner join per_conversation as c on s.conversation_id = c.conversation_id
left join {{ ref('stg_conversations') }} as conv on s.conversation_id = conv.conversation_id
left join participant_roles as p
    on s.conversation_id = p.conversation_id and s.speaker = p.participant_name
where not coalesce(conv.is_removed, false)
