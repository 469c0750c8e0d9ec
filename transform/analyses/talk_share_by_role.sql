-- Who talks: each speaker role's share of a conversation's talk time, averaged over the
-- conversations with a transcript (a role absent from one counts 0 there), so that every
-- conversation weighs the same and the shares add up to 1. Roles: see
-- fct_conversation_speakers.speaker_role. (`dbt compile` renders it; the demo prints it.)
with shares as (
    select conversation_id, speaker_role, sum(talk_share) as talk_share
    from {{ ref('fct_conversation_speakers') }}
    where talk_share is not null
    group by conversation_id, speaker_role
),

conversations as (
    select count(distinct conversation_id) as n from shares
)

select
    s.speaker_role as role,
    count(*) as conversations,
    round(sum(s.talk_share) / max(c.n), 3) as talk_share
from shares as s
cross join conversations as c
group by s.speaker_role
order by talk_share desc
