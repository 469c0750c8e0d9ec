-- Insights per day (of the conversation), type and KPI: what comes up, and when.
select
    date_trunc('day', c.conversation_at)::date as conversation_day,
    i.insight_type,
    coalesce(i.kpi_label, i.kpi_slug) as kpi,
    count(*) as insight_count,
    count(distinct i.conversation_id) as conversation_count
from {{ ref('stg_insights') }} as i
inner join {{ ref('stg_conversations') }} as c on i.conversation_id = c.conversation_id
where not c.is_removed
group by 1, 2, 3
