select
    id as insight_id,
    conversation_id,
    insight_type,
    insight_text,
    kpi_slug,
    kpi_label,
    impact,
    start_time_seconds,
    end_time_seconds,
    message_index
from {{ source('tap_conversations', 'insights') }}
where _sdc_deleted_at is null
