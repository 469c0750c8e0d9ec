-- One row per participant of a conversation, in the order the API lists them.
select
    c.id as conversation_id,
    p.participant_index - 1 as participant_index,
    p.participant ->> 'name' as participant_name,
    p.participant ->> 'email' as participant_email,
    p.participant ->> 'role' as participant_role
from {{ source('tap_conversations', 'conversations') }} as c
cross join lateral unnest(c.participants) with ordinality as p (participant, participant_index)
where c._sdc_deleted_at is null
