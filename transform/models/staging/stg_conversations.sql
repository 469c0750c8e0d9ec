-- One row per conversation, typed, department and user flattened into columns.
select
    id as conversation_id,
    date as conversation_at,
    title,
    company,
    duration as duration_seconds,
    medium,
    sentiment,
    conversation_type,
    (department ->> 'id')::uuid as department_id,
    department ->> 'name' as department_name,
    ("user" ->> 'id')::uuid as user_id,
    "user" ->> 'name' as user_name,
    "user" ->> 'email' as user_email,
    summary
from {{ source('tap_conversations', 'conversations') }}
where _sdc_deleted_at is null
