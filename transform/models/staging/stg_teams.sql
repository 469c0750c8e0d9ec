select id as team_id, name as team_name, created_at
from {{ source('tap_conversations', 'teams') }}
where _sdc_deleted_at is null
