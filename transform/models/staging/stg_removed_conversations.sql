-- Conversations the tap found removed at the source after they were loaded: no
-- longer listed inside the API's 30 days, and their detail answered 404. A conversation
-- that only aged out of the 30 days is never here.
select
    conversation_id,
    conversation_day,
    found_at,
    previous_sweep_at,
    found_by,
    run_id
from {{ source('tap_conversations', 'removed_conversations') }}
where _sdc_deleted_at is null
