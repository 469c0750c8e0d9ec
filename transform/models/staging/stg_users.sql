select id as user_id, full_name, email, role, team_id, team_name
from {{ source('tap_conversations', 'users') }}
where _sdc_deleted_at is null
