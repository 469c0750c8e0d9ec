-- One row per member of a team.
select
    t.id as team_id,
    (m.member ->> 'id')::uuid as user_id,
    m.member ->> 'full_name' as full_name,
    m.member ->> 'email' as email
from {{ source('tap_conversations', 'teams') }} as t
cross join lateral unnest(t.members) as m (member)
where t._sdc_deleted_at is null
