"""JSON schemas of every stream, built from the API contract (docs/openapi.yaml).

Shared pieces are module constants so that a field is described once. A property
is nullable exactly where the contract allows null; keys and replication keys are
required. The API's `_meta` envelope is never part of a record.
"""

from __future__ import annotations

from singer_sdk import typing as th

CONVERSATION_ID = th.Property(
    "conversation_id",
    th.UUIDType,
    required=True,
    description="Id of the conversation this record belongs to.",
)

MEDIUMS = ["call", "video", "email", "chat", "live"]

DEPARTMENT_REF = th.Property(
    "department",
    th.ObjectType(
        th.Property("id", th.UUIDType, description="Department id."),
        th.Property("name", th.StringType, description="Department name."),
    ),
    nullable=True,
    description="Department the conversation belongs to; null when none.",
)

USER_REF = th.Property(
    "user",
    th.ObjectType(
        th.Property("id", th.UUIDType, description="User id."),
        th.Property("name", th.StringType, description="User's full name."),
        th.Property("email", th.StringType, description="User's e-mail address."),
    ),
    nullable=True,
    description="The user (agent) who held the conversation; null when unknown.",
)

PARTICIPANT = th.ObjectType(
    th.Property("name", th.StringType, nullable=True, description="Participant's name."),
    th.Property("email", th.StringType, nullable=True, description="Participant's e-mail."),
    th.Property("role", th.StringType, nullable=True, description="Role, e.g. customer."),
)

SEGMENT_FIELDS = (
    th.Property("speaker", th.StringType, nullable=True, description="Speaker label."),
    th.Property("text", th.StringType, description="What was said."),
    th.Property("start", th.NumberType, description="Start, seconds from the beginning."),
    th.Property("end", th.NumberType, description="End, seconds from the beginning."),
)

ACCOUNT = th.PropertiesList(
    th.Property("id", th.UUIDType, required=True, description="Account id."),
    th.Property("name", th.StringType, description="Account name."),
    th.Property("created_at", th.DateTimeType, description="When the account was created."),
    th.Property("updated_at", th.DateTimeType, description="When the account last changed."),
    th.Property("brand_name", th.StringType, nullable=True, description="Branding name."),
    th.Property("brand_logo_url", th.StringType, nullable=True, description="Branding logo URL."),
).to_dict()

USER = th.PropertiesList(
    th.Property("id", th.UUIDType, required=True, description="User id."),
    th.Property("full_name", th.StringType, description="Full name."),
    th.Property("email", th.StringType, description="E-mail address."),
    th.Property("role", th.StringType, description="Role in the account, e.g. owner."),
    th.Property("team_id", th.UUIDType, nullable=True, description="Team id, if in a team."),
    th.Property("team_name", th.StringType, nullable=True, description="Team name."),
).to_dict()

TEAM = th.PropertiesList(
    th.Property("id", th.UUIDType, required=True, description="Team id."),
    th.Property("name", th.StringType, description="Team name."),
    th.Property("created_at", th.DateTimeType, description="When the team was created."),
    th.Property(
        "members",
        th.ArrayType(
            th.ObjectType(
                th.Property("id", th.UUIDType, description="User id."),
                th.Property("full_name", th.StringType, description="Full name."),
                th.Property("email", th.StringType, description="E-mail address."),
            )
        ),
        description="Users in the team.",
    ),
).to_dict()

DEPARTMENT = th.PropertiesList(
    th.Property("id", th.UUIDType, required=True, description="Department id."),
    th.Property("name", th.StringType, description="Department name."),
    th.Property("slug", th.StringType, description="URL-safe name."),
    th.Property("enabled", th.BooleanType, description="Whether the department is enabled."),
    th.Property("display_name", th.StringType, nullable=True, description="Display name."),
).to_dict()

CONVERSATION = th.PropertiesList(
    th.Property("id", th.UUIDType, required=True, description="Conversation id."),
    th.Property("title", th.StringType, nullable=True, description="Title."),
    th.Property("company", th.StringType, nullable=True, description="Customer's company."),
    th.Property(
        "date",
        th.DateTimeType,
        required=True,
        description="When the conversation took place (the replication key).",
    ),
    th.Property("duration", th.IntegerType, nullable=True, description="Length in seconds."),
    th.Property("medium", th.StringType, allowed_values=MEDIUMS, description="Channel."),
    th.Property("sentiment", th.StringType, nullable=True, description="Overall sentiment."),
    th.Property("conversation_type", th.StringType, nullable=True, description="Type, e.g. sales."),
    DEPARTMENT_REF,
    USER_REF,
    th.Property(
        "summary",
        th.StringType,
        nullable=True,
        description="AI summary text; null until processing has produced one.",
    ),
    th.Property("participants", th.ArrayType(PARTICIPANT), description="Who took part."),
).to_dict()

TRANSCRIPT = th.PropertiesList(
    CONVERSATION_ID,
    th.Property(
        "segments",
        th.ArrayType(th.ObjectType(*SEGMENT_FIELDS)),
        description="The whole transcript, in order; replaced whole when re-processed.",
    ),
).to_dict()

TRANSCRIPT_SEGMENT = th.PropertiesList(
    CONVERSATION_ID,
    th.Property(
        "segment_index",
        th.IntegerType,
        required=True,
        description="Zero-based position of the segment in the transcript.",
    ),
    *SEGMENT_FIELDS,
).to_dict()

INSIGHT = th.PropertiesList(
    th.Property("id", th.UUIDType, required=True, description="Insight id."),
    CONVERSATION_ID,
    th.Property("insight_type", th.StringType, description="Kind of insight, e.g. kpi."),
    th.Property("insight_text", th.StringType, nullable=True, description="The insight."),
    th.Property("kpi_slug", th.StringType, nullable=True, description="KPI identifier."),
    th.Property("kpi_label", th.StringType, nullable=True, description="KPI display label."),
    th.Property("impact", th.StringType, nullable=True, description="Impact, e.g. high."),
    th.Property(
        "start_time_seconds", th.NumberType, nullable=True, description="Where it starts (s)."
    ),
    th.Property("end_time_seconds", th.NumberType, nullable=True, description="Where it ends (s)."),
    th.Property(
        "message_index", th.IntegerType, nullable=True, description="Transcript segment index."
    ),
).to_dict()

SUMMARY = th.PropertiesList(
    CONVERSATION_ID,
    th.Property("summary", th.StringType, description="The stored AI summary."),
    th.Property("created_at", th.DateTimeType, description="When the summary was created."),
    th.Property("updated_at", th.DateTimeType, description="When the summary last changed."),
).to_dict()

RECORDING = th.PropertiesList(
    CONVERSATION_ID,
    th.Property("has_recording", th.BooleanType, description="Whether audio exists."),
    th.Property(
        "url",
        th.URIType,
        nullable=True,
        description="Signed download URL; expires (see expires_at). Null without audio.",
    ),
    th.Property("expires_at", th.DateTimeType, nullable=True, description="When url expires."),
).to_dict()

WEBHOOK_DELIVERY = th.PropertiesList(
    th.Property("id", th.UUIDType, required=True, description="Delivery id."),
    th.Property("event_type", th.StringType, description="Event, e.g. conversation.completed."),
    th.Property("resource_id", th.UUIDType, description="Id of the conversation concerned."),
    th.Property("status", th.StringType, description="delivered, failed or pending."),
    th.Property("attempts", th.IntegerType, description="Delivery attempts so far."),
    th.Property("last_attempt_at", th.DateTimeType, nullable=True, description="Last attempt."),
    th.Property("delivered_at", th.DateTimeType, nullable=True, description="When delivered."),
    th.Property(
        "response_status", th.IntegerType, nullable=True, description="Receiver's HTTP status."
    ),
    th.Property(
        "created_at",
        th.DateTimeType,
        required=True,
        description="When the delivery was created (the replication key).",
    ),
).to_dict()
