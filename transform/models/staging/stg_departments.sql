select id as department_id, name as department_name, slug, enabled, display_name
from {{ source('tap_conversations', 'departments') }}
where _sdc_deleted_at is null
