select
    conversation_id,
    summary,
    created_at as summary_created_at,
    updated_at as summary_updated_at
from {{ source('tap_conversations', 'summaries') }}
where _sdc_deleted_at is null
