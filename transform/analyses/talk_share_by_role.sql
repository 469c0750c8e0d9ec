-- Talk share by participant role: a speaker is matched to a participant by name.
-- (`dbt compile` renders it; the demo prints its result.)
select
    coalesce(p.participant_role, 'not a listed participant') as role,
    count(distinct s.conversation_id) as conversations,
    round(sum(s.talk_seconds) / nullif(sum(sum(s.talk_seconds)) over (), 0), 3) as talk_share
from {{ ref('fct_conversation_speakers') }} as s
left join {{ ref('stg_participants') }} as p
    on s.conversation_id = p.conversation_id and s.speaker = p.participant_name
group by 1
order by talk_share desc
