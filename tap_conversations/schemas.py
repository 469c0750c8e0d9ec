"""JSON schemas of every stream, built from the API contract (docs/openapi.yaml).

Shared pieces are module constants so that a field is described once. A property is
nullable exactly where the contract allows null (`prop` makes not-null the default,
where the SDK's is nullable); keys are required. The API's `_meta` envelope is never
part of a record. `tests/test_schemas_contract.py` compares every field with the
contract: types, nullability, formats, enums, nested shapes.
"""

from __future__ import annotations

from typing import Any

from singer_sdk import typing as th


def prop(name: str, wrapped: Any, *, nullable: bool = False, **kwargs: Any) -> th.Property:  # noqa: ANN401  # the SDK's own type helpers
    """A property as the contract has it: not null unless declared `nullable=True`.

    The SDK makes every property that is not required nullable; a not-null field of
    the contract is always present, so it is required here.
    """
    kwargs.setdefault("required", not nullable)
    return th.Property(name, wrapped, nullable=nullable or None, **kwargs)


CONVERSATION_ID = prop(
    "conversation_id",
    th.UUIDType,
    required=True,
    description="Id of the conversation this record belongs to.",
)

MEDIUMS = ["call", "video", "email", "chat", "live"]

DEPARTMENT_REF = prop(
    "department",
    th.ObjectType(
        prop("id", th.UUIDType, description="Department id."),
        prop("name", th.StringType, description="Department name."),
    ),
    nullable=True,
    description="Department the conversation belongs to; null when none.",
)

USER_REF = prop(
    "user",
    th.ObjectType(
        prop("id", th.UUIDType, description="User id."),
        prop("name", th.StringType, description="User's full name."),
        prop("email", th.StringType, description="User's e-mail address."),
    ),
    nullable=True,
    description="The user (agent) who held the conversation; null when unknown.",
)

PARTICIPANT = th.ObjectType(
    prop("name", th.StringType, nullable=True, description="Participant's name."),
    prop("email", th.StringType, nullable=True, description="Participant's e-mail."),
    prop("role", th.StringType, nullable=True, description="Role, e.g. customer."),
)

SEGMENT_FIELDS = (
    prop("speaker", th.StringType, nullable=True, description="Speaker label."),
    prop("text", th.StringType, description="What was said."),
    prop("start", th.NumberType, description="Start, seconds from the beginning."),
    prop("end", th.NumberType, description="End, seconds from the beginning."),
)

ACCOUNT = th.PropertiesList(
    prop("id", th.UUIDType, required=True, description="Account id."),
    prop("name", th.StringType, description="Account name."),
    prop("created_at", th.DateTimeType, description="When the account was created."),
    prop("updated_at", th.DateTimeType, description="When the account last changed."),
    prop("brand_name", th.StringType, nullable=True, description="Branding name."),
    prop("brand_logo_url", th.StringType, nullable=True, description="Branding logo URL."),
).to_dict()

USER = th.PropertiesList(
    prop("id", th.UUIDType, required=True, description="User id."),
    prop("full_name", th.StringType, description="Full name."),
    prop("email", th.StringType, description="E-mail address."),
    prop("role", th.StringType, description="Role in the account, e.g. owner."),
    prop("team_id", th.UUIDType, nullable=True, description="Team id, if in a team."),
    prop("team_name", th.StringType, nullable=True, description="Team name."),
).to_dict()

TEAM = th.PropertiesList(
    prop("id", th.UUIDType, required=True, description="Team id."),
    prop("name", th.StringType, description="Team name."),
    prop("created_at", th.DateTimeType, description="When the team was created."),
    prop(
        "members",
        th.ArrayType(
            th.ObjectType(
                prop("id", th.UUIDType, description="User id."),
                prop("full_name", th.StringType, description="Full name."),
                prop("email", th.StringType, description="E-mail address."),
            )
        ),
        description="Users in the team.",
    ),
).to_dict()

DEPARTMENT = th.PropertiesList(
    prop("id", th.UUIDType, required=True, description="Department id."),
    prop("name", th.StringType, description="Department name."),
    prop("slug", th.StringType, description="URL-safe name."),
    prop("enabled", th.BooleanType, description="Whether the department is enabled."),
    prop("display_name", th.StringType, nullable=True, description="Display name."),
).to_dict()

CONVERSATION = th.PropertiesList(
    prop("id", th.UUIDType, required=True, description="Conversation id."),
    prop("title", th.StringType, nullable=True, description="Title."),
    prop("company", th.StringType, nullable=True, description="Customer's company."),
    prop(
        "date",
        th.DateTimeType,
        required=True,
        description="When the conversation took place (the replication key).",
    ),
    prop("duration", th.IntegerType, nullable=True, description="Length in seconds."),
    prop("medium", th.StringType, allowed_values=MEDIUMS, description="Channel."),
    prop("sentiment", th.StringType, nullable=True, description="Overall sentiment."),
    prop("conversation_type", th.StringType, nullable=True, description="Type, e.g. sales."),
    DEPARTMENT_REF,
    USER_REF,
    prop(
        "summary",
        th.StringType,
        nullable=True,
        description="AI summary text; null until processing has produced one.",
    ),
    prop("participants", th.ArrayType(PARTICIPANT), description="Who took part."),
).to_dict()

TRANSCRIPT = th.PropertiesList(
    CONVERSATION_ID,
    prop(
        "segments",
        th.ArrayType(th.ObjectType(*SEGMENT_FIELDS)),
        description="The whole transcript, in order; replaced whole when re-processed.",
    ),
).to_dict()

TRANSCRIPT_SEGMENT = th.PropertiesList(
    CONVERSATION_ID,
    prop(
        "segment_index",
        th.IntegerType,
        required=True,
        description="Zero-based position of the segment in the transcript.",
    ),
    *SEGMENT_FIELDS,
).to_dict()

INSIGHT = th.PropertiesList(
    prop("id", th.UUIDType, required=True, description="Insight id."),
    CONVERSATION_ID,
    prop("insight_type", th.StringType, description="Kind of insight, e.g. kpi."),
    prop("insight_text", th.StringType, nullable=True, description="The insight."),
    prop("kpi_slug", th.StringType, nullable=True, description="KPI identifier."),
    prop("kpi_label", th.StringType, nullable=True, description="KPI display label."),
    prop("impact", th.StringType, nullable=True, description="Impact, e.g. high."),
    prop("start_time_seconds", th.NumberType, nullable=True, description="Where it starts (s)."),
    prop("end_time_seconds", th.NumberType, nullable=True, description="Where it ends (s)."),
    prop("message_index", th.IntegerType, nullable=True, description="Transcript segment index."),
).to_dict()

SUMMARY = th.PropertiesList(
    CONVERSATION_ID,
    prop("summary", th.StringType, description="The stored AI summary."),
    prop("created_at", th.DateTimeType, description="When the summary was created."),
    prop("updated_at", th.DateTimeType, description="When the summary last changed."),
).to_dict()

RECORDING = th.PropertiesList(
    CONVERSATION_ID,
    prop("has_recording", th.BooleanType, description="Whether audio exists."),
    prop(
        "url",
        th.URIType,
        nullable=True,
        description="Signed download URL; expires (see expires_at). Null without audio.",
    ),
    prop("expires_at", th.DateTimeType, nullable=True, description="When url expires."),
).to_dict()

WEBHOOK_DELIVERY = th.PropertiesList(
    prop("id", th.UUIDType, required=True, description="Delivery id."),
    prop("event_type", th.StringType, description="Event, e.g. conversation.completed."),
    prop("resource_id", th.UUIDType, description="Id of the conversation concerned."),
    prop("status", th.StringType, description="delivered, failed or pending."),
    prop("attempts", th.IntegerType, description="Delivery attempts so far."),
    prop("last_attempt_at", th.DateTimeType, nullable=True, description="Last attempt."),
    prop("delivered_at", th.DateTimeType, nullable=True, description="When delivered."),
    prop("response_status", th.IntegerType, nullable=True, description="Receiver's HTTP status."),
    prop(
        "created_at",
        th.DateTimeType,
        required=True,
        description="When the delivery was created.",
    ),
).to_dict()

#: Not in the API: what each run proved (see ledger.py).
SYNC_LEDGER = th.PropertiesList(
    prop("run_id", th.UUIDType, required=True, description="The run."),
    prop(
        "row_key",
        th.StringType,
        required=True,
        description="The day (YYYY-MM-DD) this row counts, or `run` for the run as a whole.",
    ),
    prop("day", th.DateType, nullable=True, description="UTC day of conversation `date`."),
    prop("run_started_at", th.DateTimeType, description="When the run started."),
    prop("filters", th.StringType, description="The run's filters (`all`: none)."),
    prop("ended", th.StringType, description="How the run ended: complete or quota."),
    prop(
        "listed_from",
        th.DateTimeType,
        nullable=True,
        description="Where the run's listing began (run row only).",
    ),
    prop("listed", th.IntegerType, description="Conversations listed by this run."),
    prop("complete", th.IntegerType, description="Listed and complete after this run."),
    prop(
        "pending_processing",
        th.IntegerType,
        description="Pending after the run: no summary yet.",
    ),
    prop(
        "pending_detail_unavailable",
        th.IntegerType,
        description="Pending: listed, but the detail answered 404 or another id.",
    ),
    prop(
        "pending_summary_unavailable",
        th.IntegerType,
        description="Pending: /summary answered 404.",
    ),
    prop(
        "pending_recording_unavailable",
        th.IntegerType,
        description="Pending: /recording answered 404.",
    ),
    prop(
        "removed",
        th.IntegerType,
        description="Loaded conversations this run found removed at the source "
        "(see removed_conversations).",
    ),
    prop(
        "unproven_tie_instants",
        th.IntegerType,
        description="Instants where more than a page of conversations tie and no filter "
        "lists them provably whole: some may be missing.",
    ),
    prop("requests", th.IntegerType, nullable=True, description="Requests (run row only)."),
    prop(
        "quota_used",
        th.IntegerType,
        nullable=True,
        description="Daily-quota units spent (run row only).",
    ),
).to_dict()

#: Not in the API: loaded conversations found removed at the source (see removals.py).
CONVERSATION_REMOVAL = th.PropertiesList(
    CONVERSATION_ID,
    prop("conversation_day", th.DateType, description="UTC day of the conversation's `date`."),
    prop("found_at", th.DateTimeType, description="When the run that found the removal began."),
    prop(
        "previous_sweep_at",
        th.DateTimeType,
        nullable=True,
        description="The re-list of the 30 days before the one that found it: the "
        "conversation was listed then, or loaded after it (null: no earlier re-list).",
    ),
    prop("found_by", th.StringType, description="The evidence, in words."),
    prop("run_id", th.UUIDType, description="The run (its sync_ledger rows)."),
).to_dict()
