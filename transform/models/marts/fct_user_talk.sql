-- One row per user (the account's member a conversation belongs to) with a transcript:
-- their share of the talk time, averaged over their conversations (0 where they did not
-- speak), and their longest monologue. The talk ratio of a rep, the classic coaching
-- metric.
with conversations as (
    select conversation_id, user_id, user_name
    from {{ ref('fct_conversations') }}
    where has_transcript and talk_seconds > 0 and user_id is not null
),

user_speech as (
    select
        conversation_id,
        sum(talk_share) as talk_share,
        max(longest_monologue_seconds) as longest_monologue_seconds
    from {{ ref('fct_conversation_speakers') }}
    where speaker_role = 'user'
    group by conversation_id
)

select
    c.user_id,
    max(c.user_name) as user_name,
    count(*) as conversations,
    avg(coalesce(u.talk_share, 0)) as talk_share,
    max(u.longest_monologue_seconds) as longest_monologue_seconds
from conversations as c
left join user_speech as u on c.conversation_id = u.conversation_id
group by c.user_id
