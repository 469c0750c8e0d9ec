-- Fails (one row per day) when a conversation day older than the tap's processing
-- allowance (3 days: a conversation still incomplete then is taken as it is) still has
-- something pending or a tie instant not listed whole. Set `severity: warn` in
-- dbt_project.yml's `data_tests:` to report instead of fail.
select day, filters, missing
from {{ ref('fct_sync_completeness') }}
where not is_complete
  and day < current_date - 3
