# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""BASELINE ONLY: the plain Singer SDK tap that scripts/benchmark.py compares against.

What a developer gets by following the SDK cookbook for this API, kept short: one
`RESTStream` per endpoint, the per-conversation endpoints as child streams of the
conversation list, SDK defaults for everything else (one request at a time, no
pacing, the SDK's retry policy that ignores Retry-After, the SDK's JSON writer).
It borrows tap-conversations' schemas so that both taps emit the same records.
Not shipped, not tested; run by the benchmark as

    python scripts/naive_tap.py --config config.json --catalog catalog.json
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import RESTStream, Tap
from singer_sdk import typing as th
from singer_sdk.authenticators import BearerTokenAuthenticator

from tap_conversations import schemas

if TYPE_CHECKING:
    from collections.abc import Iterable

    import requests
    from singer_sdk.helpers.types import Context


class NaiveStream(RESTStream[Any]):
    """Bearer token, base URL from the config, `_meta` dropped."""

    records_jsonpath = "$"

    @property
    def url_base(self) -> str:
        return str(self.config["api_url"]).rstrip("/")

    @property
    def authenticator(self) -> BearerTokenAuthenticator:
        return BearerTokenAuthenticator(token=self.config["api_token"])

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:  # noqa: ARG002
        row.pop("_meta", None)
        return row


class Account(NaiveStream):
    name = "account"
    path = "/me"
    primary_keys = ("id",)
    schema = schemas.ACCOUNT


class Users(NaiveStream):
    name = "users"
    path = "/users"
    records_jsonpath = "$.users[*]"
    primary_keys = ("id",)
    schema = schemas.USER


class Teams(NaiveStream):
    name = "teams"
    path = "/teams"
    records_jsonpath = "$.teams[*]"
    primary_keys = ("id",)
    schema = schemas.TEAM


class Departments(NaiveStream):
    name = "departments"
    path = "/departments"
    records_jsonpath = "$.departments[*]"
    primary_keys = ("id",)
    schema = schemas.DEPARTMENT


class WebhookDeliveries(NaiveStream):
    name = "webhook_deliveries"
    path = "/webhooks/deliveries"
    records_jsonpath = "$.deliveries[*]"
    primary_keys = ("id",)
    schema = schemas.WEBHOOK_DELIVERY


class ConversationList(NaiveStream):
    """GET /conversations, cursor pagination; the parent of every child below."""

    name = "conversation_list"
    path = "/conversations"
    records_jsonpath = "$.conversations[*]"
    next_page_token_jsonpath = "$.pagination.next_cursor"  # noqa: S105
    primary_keys = ("id",)
    replication_key = "date"
    schema = th.PropertiesList(
        th.Property("id", th.StringType),
        th.Property("date", th.DateTimeType),
        th.Property("title", th.StringType),
    ).to_dict()

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:  # noqa: ANN401, ARG002
        params: dict[str, Any] = {"limit": 25}
        if next_page_token:
            params["cursor"] = next_page_token
        return params

    def get_child_context(self, record: dict, context: Context | None) -> dict:  # noqa: ARG002
        return {"conversation_id": record["id"]}


class ConversationChild(NaiveStream):
    """One request per conversation; a 404 (none yet) yields nothing."""

    parent_stream_type = ConversationList
    ignore_parent_replication_key = True
    wraps: ClassVar[str | None] = None

    def validate_response(self, response: requests.Response) -> None:
        if response.status_code != HTTPStatus.NOT_FOUND:
            super().validate_response(response)

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        if response.status_code == HTTPStatus.NOT_FOUND:
            return
        yield from super().parse_response(response)

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        row = super().post_process(row, context) or {}
        if context is not None:
            row["conversation_id"] = context["conversation_id"]
        if self.wraps is not None:  # e.g. {"transcript": {"segments": [...]}}
            row.update(row.pop(self.wraps) or {})
        return row


class Conversations(ConversationChild):
    name = "conversations"
    path = "/conversations/{conversation_id}"
    primary_keys = ("id",)
    schema = schemas.CONVERSATION

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        row = super().post_process(row, context) or {}
        row.pop("conversation_id", None)
        return row


class Transcripts(ConversationChild):
    name = "transcripts"
    path = "/conversations/{conversation_id}/transcript"
    primary_keys = ("conversation_id",)
    schema = schemas.TRANSCRIPT
    wraps = "transcript"


class Insights(ConversationChild):
    name = "insights"
    path = "/conversations/{conversation_id}/insights"
    records_jsonpath = "$.insights[*]"
    primary_keys = ("id",)
    schema = schemas.INSIGHT


class Recordings(ConversationChild):
    name = "recordings"
    path = "/conversations/{conversation_id}/recording"
    primary_keys = ("conversation_id",)
    schema = schemas.RECORDING


class Summaries(ConversationChild):
    name = "summaries"
    path = "/conversations/{conversation_id}/summary"
    primary_keys = ("conversation_id",)
    schema = schemas.SUMMARY


class NaiveTap(Tap):
    name = "naive-conversations"
    config_jsonschema = th.PropertiesList(
        th.Property("api_token", th.StringType, required=True, secret=True),
        th.Property("api_url", th.StringType, required=True),
    ).to_dict()

    def discover_streams(self) -> list[NaiveStream]:
        return [
            stream(tap=self)
            for stream in (
                Account,
                Users,
                Teams,
                Departments,
                WebhookDeliveries,
                ConversationList,
                Conversations,
                Transcripts,
                Insights,
                Recordings,
                Summaries,
            )
        ]


if __name__ == "__main__":
    NaiveTap.cli()
