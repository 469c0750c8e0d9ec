-- One row per conversation, typed, department and user flattened into columns;
-- `is_removed`: deleted at the source since it was loaded (the marts leave it out).
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
    summary,
    id::uuid in (select conversation_id::uuid from {{ ref('stg_removed_conversations') }})
        as is_removed
from {{ source('tap_conversations', 'conversations') }}
where _sdc_deleted_at is null
