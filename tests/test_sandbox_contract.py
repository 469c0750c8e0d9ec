# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Contract tests of the sandbox API against docs/openapi.yaml.

Every kind of body is validated with an OAS 3.1 validator against the contract's
schemas (``$ref``s resolved through a ``referencing`` registry), and compared with
the sandbox's truth methods.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
import yaml
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.sandbox import ALL_SCOPES, DEMO_TOKEN, Sandbox

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

UTC = timezone.utc
ROOT = Path(__file__).resolve().parent.parent
SPEC: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text("utf-8"))
SPEC_URI = "urn:tap-conversations:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(
    SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
TIMEOUT = 5


# --- helpers ------------------------------------------------------------------------------


def _pointer_escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def response_schema_ref(path: str, method: str, status: int) -> str:
    """JSON pointer (into SPEC) of the JSON schema of one documented response."""
    response = SPEC["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        base = response["$ref"]
    else:
        base = f"#/paths/{_pointer_escape(path)}/{method}/responses/{status}"
    return f"{base}/content/application~1json/schema"


def validator(pointer: str) -> Any:
    """OAS 3.1 validator of the schema at ``pointer`` (``#/...``) of the contract."""
    return OAS31Validator(
        {"$ref": SPEC_URI + pointer}, registry=REGISTRY, format_checker=oas31_format_checker
    )


def validate(instance: Any, pointer: str) -> None:
    """Raise jsonschema.ValidationError unless ``instance`` fits the contract."""
    validator(pointer).validate(instance)


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Api:
    """A keep-alive client of one sandbox with one token."""

    def __init__(self, sb: Sandbox, token: str | None = None) -> None:
        self.sb = sb
        self.token = token if token is not None else sb.token
        self.session = requests.Session()
        if self.token:
            self.session.headers["Authorization"] = f"Bearer {self.token}"

    def get(self, path: str, timeout: float = TIMEOUT, **params: Any) -> requests.Response:
        return self.session.get(self.sb.base_url + path, params=params, timeout=timeout)

    def post(self, path: str, payload: Any) -> requests.Response:
        return self.session.post(self.sb.base_url + path, json=payload, timeout=TIMEOUT)

    def ok(self, path: str, template: str | None = None, **params: Any) -> dict[str, Any]:
        """GET, expect 200, validate against the contract, check and strip _meta."""
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        body: dict[str, Any] = response.json()
        validate(body, response_schema_ref(template or path, "get", 200))
        meta = body.pop("_meta")
        assert meta["token_prefix"] == self.token[:11]
        assert abs(parse_ts(meta["timestamp"]) - datetime.now(UTC)) < timedelta(seconds=30)
        return body

    def error(
        self, path: str, status: int, code: str, template: str | None = None, **params: Any
    ) -> dict[str, Any]:
        """GET, expect an error status and ``error`` code; validate the Error body."""
        response = self.get(path, **params)
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        validate(body, "#/components/schemas/Error")
        template = template or path
        if template in SPEC["paths"] and str(status) in SPEC["paths"][template]["get"]["responses"]:
            validate(body, response_schema_ref(template, "get", status))
        assert body["error"] == code
        assert isinstance(body["message"], str)
        assert body["message"]
        return body

    def walk(self, limit: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Follow next_cursor; return the pages' bodies (validated)."""
        pages = []
        params = dict(filters)
        if limit is not None:
            params["limit"] = str(limit)
        while True:
            page = self.ok("/conversations", **params)
            pages.append(page)
            if not page["pagination"]["has_more"]:
                assert page["pagination"]["next_cursor"] is None
                return pages
            params["cursor"] = page["pagination"]["next_cursor"]


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in items]


def raw_http(sb: Sandbox, request: bytes, timeout: float = 3.0) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    with socket.create_connection((sb.host, sb.port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def raw_get(sb: Sandbox, path: str, token: str = DEMO_TOKEN) -> bytes:
    return raw_http(
        sb,
        (
            f"GET /api/v1{path} HTTP/1.1\r\nHost: sandbox\r\n"
            f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ).encode(),
    )


def split_raw(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def conv_with(sb: Sandbox, predicate: Callable[[str], bool]) -> str:
    """First listed conversation id that satisfies ``predicate``."""
    return next(c["id"] for c in sb.listed_conversations() if predicate(c["id"]))


# --- the validator itself ------------------------------------------------------------------


def test_validator_resolves_refs_and_rejects_wrong_bodies() -> None:
    item = "#/components/schemas/ConversationListItem"
    good = {"id": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "date": "2026-02-07T09:00:00.000Z"}
    validate(good, item)
    for bad in (
        {**good, "medium": "fax"},
        {**good, "date": "yesterday"},
        {**good, "id": "not-a-uuid"},
        {**good, "department": {"id": 5}},
    ):
        assert not validator(item).is_valid(bad), bad
    assert validator(item).is_valid(good)
    users = validator(response_schema_ref("/users", "get", 200))
    assert not users.is_valid({"users": [{"team_id": "x"}]})


# --- every 2xx body against the contract and the truth ----------------------------------


def test_reference_endpoints_match_contract_and_truth(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    assert api.ok("/me") == sandbox.account()
    users = api.ok("/users")["users"]
    teams = api.ok("/teams")["teams"]
    departments = api.ok("/departments")["departments"]
    assert users == sandbox.users()
    assert teams == sandbox.teams()
    assert departments == sandbox.departments()
    assert len(users) == 8
    assert len(teams) == 3
    assert len(departments) == 4
    assert sum(d["display_name"] is None for d in departments) == 1
    assert all(team["members"] for team in teams)
    member_ids = {m["id"] for team in teams for m in team["members"]}
    assert member_ids == {u["id"] for u in users if u["team_id"] is not None}
    assert any(u["team_id"] is None and u["team_name"] is None for u in users)


def test_listing_pages_match_contract_and_truth(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    pages = api.walk()
    truth = sandbox.listed_conversations()
    listed = [c for page in pages for c in page["conversations"]]
    assert listed == truth
    assert [len(p["conversations"]) for p in pages[:-1]] == [25] * (len(pages) - 1)
    assert all(p["pagination"]["limit"] == 25 for p in pages)
    assert [[c["id"] for c in p] for p in sandbox.listed_pages()] == [
        ids(p["conversations"]) for p in pages
    ]
    keys = list(SPEC["components"]["schemas"]["ConversationListItem"]["properties"])
    assert all(list(c) == keys for c in listed)


def test_conversation_endpoints_match_contract_and_truth(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    chosen = [
        conv_with(sandbox, lambda i: len((sandbox.transcript(i) or {}).get("segments", [])) > 1000),
        conv_with(sandbox, lambda i: sandbox.transcript(i) is None),
        conv_with(sandbox, lambda i: sandbox.summary(i) is None),
        conv_with(sandbox, lambda i: sandbox.transcript(i) == {"segments": []}),
        conv_with(sandbox, lambda i: not sandbox.recording(i)["has_recording"]),
        conv_with(sandbox, lambda i: sandbox.recording(i)["has_recording"]),
        conv_with(sandbox, lambda i: len(sandbox.insights(i)) >= 2),
    ]
    for cid in chosen:
        path = f"/conversations/{cid}"
        full = api.ok(
            path, "/conversations/{id}", include_transcript="true", include_insights="true"
        )
        assert full == sandbox.conversation_detail(cid)
        assert ("transcript" in full) is (sandbox.transcript(cid) is not None)
        plain = api.ok(path, "/conversations/{id}")
        assert plain == sandbox.conversation_detail(
            cid, include_transcript=False, include_insights=False
        )
        assert "transcript" not in plain
        assert "insights" not in plain
        insights = api.ok(path + "/insights", "/conversations/{id}/insights")
        assert insights == {"conversation_id": cid, "insights": sandbox.insights(cid)}
        recording = api.ok(path + "/recording", "/conversations/{id}/recording")
        assert recording == sandbox.recording(cid)
        if not recording["has_recording"]:
            assert recording["url"] is None
            assert recording["expires_at"] is None
        transcript = sandbox.transcript(cid)
        if transcript is None:
            api.error(path + "/transcript", 404, "not_found", "/conversations/{id}/transcript")
        else:
            body = api.ok(path + "/transcript", "/conversations/{id}/transcript")
            assert body == {"conversation_id": cid, "transcript": transcript}
        summary = sandbox.summary(cid)
        if summary is None:
            assert full["summary"] is None
            api.error(path + "/summary", 404, "not_found", "/conversations/{id}/summary")
        else:
            assert api.ok(path + "/summary", "/conversations/{id}/summary") == summary
            assert summary["summary"] == full["summary"]


def test_webhook_deliveries_and_notetaker_match_contract(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    deliveries = api.ok("/webhooks/deliveries")["deliveries"]
    assert deliveries == sandbox.webhook_deliveries()
    assert {d["status"] for d in deliveries} == {"delivered", "failed", "pending"}
    week_ago = datetime.now(UTC) - timedelta(days=7)
    assert all(parse_ts(d["created_at"]) >= week_ago for d in deliveries)
    mine = api.ok("/webhooks/deliveries", token_id=sandbox.token_id())["deliveries"]
    assert mine == deliveries
    other = "00000000-0000-4000-8000-000000000000"
    assert api.ok("/webhooks/deliveries", token_id=other)["deliveries"] == []
    api.error("/webhooks/deliveries", 400, "invalid_parameter", token_id="nope")  # noqa: S106 - a bad uuid, not a secret

    response = api.post(
        "/notetaker",
        {"meeting_url": "https://us02web.zoom.us/j/123?pwd=x", "meeting_title": "Sync å 李"},
    )
    assert response.status_code == 201
    body = response.json()
    validate(body, response_schema_ref("/notetaker", "post", 201))
    body.pop("_meta")
    assert body == sandbox.notetaker_requests()[-1]
    assert body["meeting_platform"] == "zoom"
    assert body["meeting_title"] == "Sync å 李"
    assert body["status"] == "joining"
    for payload in ({"meeting_url": "https://example.com/x"}, {}, [1], {"meeting_url": 5}):
        bad = api.post("/notetaker", payload)
        assert bad.status_code == 400
        validate(bad.json(), response_schema_ref("/notetaker", "post", 400))
        assert bad.json()["error"] == "invalid_parameter"
    assert len(sandbox.notetaker_requests()) == 1


# --- data ---------------------------------------------------------------------------------


def test_data_is_deterministic_per_seed_and_size() -> None:
    a, b, c = Sandbox(seed=3, conversations=60), Sandbox(seed=3, conversations=60), Sandbox(seed=4)
    assert a.all_conversation_ids() == b.all_conversation_ids()
    assert a.all_conversation_ids() != c.all_conversation_ids()
    assert a.users() == b.users()
    for cid in a.all_conversation_ids():
        da, db = a.conversation_detail(cid), b.conversation_detail(cid)
        offset_a = parse_ts(da.pop("date")) - a.anchor
        offset_b = parse_ts(db.pop("date")) - b.anchor
        assert offset_a == offset_b
        assert da == db


def test_data_has_the_awkward_cases(sandbox: Sandbox) -> None:
    now = datetime.now(UTC)
    listed = sandbox.listed_conversations()
    every = sandbox.all_conversation_ids()
    assert len(every) == 120
    assert {c["medium"] for c in listed} == {"call", "video", "email", "chat", "live"}
    assert now - parse_ts(listed[0]["date"]) < timedelta(hours=3)
    old = [
        i for i in every if now - parse_ts(sandbox.conversation_detail(i)["date"]) > timedelta(30)
    ]
    assert old
    assert not set(old) & set(ids(listed))
    assert all(
        now - parse_ts(sandbox.conversation_detail(i)["date"]) < timedelta(40) for i in every
    )
    dates = [c["date"] for c in listed]
    assert len(dates) - len(set(dates)) >= 2  # conversations sharing a date
    texts = json.dumps([sandbox.conversation_detail(i) for i in every], ensure_ascii=False)
    for needle in ("å", "ö", "ł", "李", "🚀", '\\"', "\\n", '"title":""', '"title":null'):
        assert needle in texts.replace(": ", ":"), needle
    assert max(len(sandbox.conversation_detail(i)["title"] or "") for i in every) > 1000
    segments = [len((sandbox.transcript(i) or {"segments": []})["segments"]) for i in every]
    assert max(segments) > 1000
    assert sorted(segments)[len(segments) // 2] < 50  # most are small
    assert sum(sandbox.transcript(i) is None for i in ids(listed)) >= 2
    assert sum(sandbox.summary(i) is None for i in ids(listed)) >= 2
    assert any(sandbox.insights(i) == [] for i in every)
    assert any(c["department"] is None for c in listed)
    assert any(c["user"] is None for c in listed)
    assert any(c["duration"] is None for c in listed)


def test_old_conversation_detail_still_works(sandbox: Sandbox) -> None:
    listed = set(ids(sandbox.listed_conversations()))
    old = next(i for i in sandbox.all_conversation_ids() if i not in listed)
    body = Api(sandbox).ok(f"/conversations/{old}", "/conversations/{id}")
    assert body == sandbox.conversation_detail(
        old, include_transcript=False, include_insights=False
    )


# --- auth and scopes ----------------------------------------------------------------------


def test_missing_or_unknown_token_is_401(sandbox: Sandbox) -> None:
    for token in ("", "mt_unknown", f"{DEMO_TOKEN}x"):
        Api(sandbox, token).error("/me", 401, "unauthorized")
        Api(sandbox, token).error("/conversations", 401, "unauthorized")
    basic = requests.get(
        sandbox.base_url + "/me", headers={"Authorization": f"Basic {DEMO_TOKEN}"}, timeout=5
    )
    assert basic.status_code == 401
    sandbox.revoke_token(token := sandbox.add_token(scopes=ALL_SCOPES))
    Api(sandbox, token).error("/me", 401, "unauthorized")


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("/users", "users"),
        ("/teams", "teams"),
        ("/departments", "departments"),
        ("/conversations", "conversations"),
        ("/conversations/{id}", "conversations"),
        ("/conversations/{id}/summary", "conversations"),
        ("/conversations/{id}/transcript", "transcripts"),
        ("/conversations/{id}/insights", "insights"),
        ("/conversations/{id}/recording", "recordings"),
    ],
)
def test_missing_scope_is_403_with_required_scope(sandbox: Sandbox, path: str, scope: str) -> None:
    token = sandbox.add_token(scopes=set(ALL_SCOPES) - {scope}, include_recordings=True)
    cid = sandbox.listed_conversations()[0]["id"]
    concrete = path.replace("{id}", cid)
    body = Api(sandbox, token).error(concrete, 403, "insufficient_scope", path)
    assert body["required_scope"] == scope
    assert sandbox.counters.quota_used(token) == 0
    # the full token gets it
    assert Api(sandbox).get(concrete).status_code == 200


def test_scopeless_endpoints_and_notetaker_scope(sandbox: Sandbox) -> None:
    api = Api(sandbox, sandbox.add_token(scopes=()))
    assert api.ok("/me") == sandbox.account()
    assert api.ok("/webhooks/deliveries")["deliveries"] == sandbox.webhook_deliveries()
    response = api.post("/notetaker", {"meeting_url": "https://meet.google.com/abc-defg-hij"})
    assert response.status_code == 403
    assert response.json()["required_scope"] == "notetaker"
    assert sandbox.notetaker_requests() == []


def test_recordings_need_scope_and_setting(sandbox: Sandbox) -> None:
    cid = sandbox.listed_conversations()[0]["id"]
    path = f"/conversations/{cid}/recording"
    template = "/conversations/{id}/recording"
    disabled = sandbox.add_token(scopes=("recordings",), include_recordings=False)
    Api(sandbox, disabled).error(path, 403, "recordings_disabled", template)
    no_scope = sandbox.add_token(scopes=("conversations",), include_recordings=True)
    body = Api(sandbox, no_scope).error(path, 403, "insufficient_scope", template)
    assert body["required_scope"] == "recordings"
    enabled = sandbox.add_token(scopes=("recordings",), include_recordings=True)
    assert Api(sandbox, enabled).ok(path, template) == sandbox.recording(cid)


def test_detail_omits_parts_the_token_may_not_see(sandbox: Sandbox) -> None:
    cid = conv_with(sandbox, lambda i: sandbox.transcript(i) is not None)
    token = sandbox.add_token(scopes=("conversations",))
    body = Api(sandbox, token).ok(
        f"/conversations/{cid}",
        "/conversations/{id}",
        include_transcript="true",
        include_insights="true",
    )
    assert body == sandbox.conversation_detail(
        cid, include_transcript=False, include_insights=False
    )
    only_t = sandbox.add_token(scopes=("conversations", "transcripts"))
    body = Api(sandbox, only_t).ok(
        f"/conversations/{cid}",
        "/conversations/{id}",
        include_transcript="true",
        include_insights="true",
    )
    assert body == sandbox.conversation_detail(cid, include_transcript=True, include_insights=False)
    assert body["transcript"] == sandbox.transcript(cid)


def test_unknown_ids_paths_and_methods(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    unknown = "00000000-0000-4000-8000-000000000001"
    for sub in ("", "/transcript", "/insights", "/recording", "/summary"):
        api.error(f"/conversations/{unknown}{sub}", 404, "not_found", f"/conversations/{{id}}{sub}")
    api.error("/conversations/not-a-uuid", 404, "not_found", "/conversations/{id}")
    api.error("/nope", 404, "not_found")
    api.error(f"/conversations/{unknown}/comments", 404, "not_found")
    response = requests.get(sandbox.base_url.replace("/api/v1", "/v2/me"), timeout=5)
    assert response.status_code == 404
    wrong = api.session.post(sandbox.base_url + "/me", json={}, timeout=5)
    assert wrong.status_code == 405
    assert sandbox.counters.quota_used() == 0
    assert sandbox.server_errors == []


# --- listing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "sizes"), [(24, [24]), (25, [25]), (26, [25, 1]), (51, [25, 25, 1])]
)
def test_page_boundaries(sandbox: Sandbox, count: int, sizes: list[int]) -> None:
    full = sandbox.listed_conversations()
    date_from = full[count - 1]["date"]
    assert full[count]["date"] != date_from
    expected = full[:count]
    assert sandbox.listed_conversations(date_from=date_from) == expected
    pages = Api(sandbox).walk(date_from=date_from)
    assert [len(p["conversations"]) for p in pages] == sizes
    assert [c for p in pages for c in p["conversations"]] == expected
    for page, nxt in itertools.pairwise(pages):
        assert page["pagination"]["has_more"] is True
        assert page["pagination"]["next_cursor"] == page["conversations"][-1]["date"]
        assert parse_ts(nxt["conversations"][0]["date"]) < parse_ts(
            page["pagination"]["next_cursor"]
        )
    assert pages[-1]["pagination"] == {"has_more": False, "next_cursor": None, "limit": 25}


def test_cursor_is_strictly_older_and_ties_at_a_boundary_are_lost(sandbox: Sandbox) -> None:
    full = sandbox.listed_conversations()
    tie = next(i for i in range(1, len(full)) if full[i]["date"] == full[i - 1]["date"])
    assert full[tie - 1]["id"] > full[tie]["id"]  # tie-break: id descending
    api = Api(sandbox)
    # a page that ends exactly on the first of the two equal dates
    first = api.ok("/conversations", limit=str(tie))
    assert first["conversations"] == full[:tie]
    assert first["pagination"] == {
        "has_more": True,
        "next_cursor": full[tie - 1]["date"],
        "limit": tie,
    }
    second = api.ok("/conversations", limit=str(tie), cursor=first["pagination"]["next_cursor"])
    assert second["conversations"] == full[tie + 1 : 2 * tie + 1]  # full[tie] is skipped
    assert full[tie]["id"] not in ids(second["conversations"])
    walked = [c["id"] for p in api.walk(limit=tie) for c in p["conversations"]]
    paged = [c["id"] for p in sandbox.listed_pages(limit=tie) for c in p]
    assert walked == paged
    assert full[tie]["id"] not in walked
    # a cursor between two dates works like any timestamp
    cursor = full[10]["date"]
    body = api.ok("/conversations", cursor=cursor)
    assert body["conversations"] == [c for c in full if parse_ts(c["date"]) < parse_ts(cursor)][:25]


def test_limit_parameter(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    full = sandbox.listed_conversations()
    capped = api.ok("/conversations", limit="500")
    assert capped["conversations"] == full[:25]
    assert capped["pagination"]["limit"] == 25
    three = api.ok("/conversations", limit="3")
    assert three["conversations"] == full[:3]
    assert three["pagination"] == {"has_more": True, "next_cursor": full[2]["date"], "limit": 3}
    for bad in ("0", "-1", "abc", "2.5"):
        body = api.error("/conversations", 400, "invalid_parameter", limit=bad)
        assert "limit" in body["message"]


def test_each_filter(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    full = sandbox.listed_conversations()

    def listed(**filters: Any) -> list[dict[str, Any]]:
        return [c for p in api.walk(**filters) for c in p["conversations"]]

    for medium in ("call", "video", "email", "chat", "live"):
        expected = [c for c in full if c["medium"] == medium]
        assert expected
        assert listed(medium=medium) == expected == sandbox.listed_conversations(medium=medium)
    department = sandbox.departments()[1]["id"]
    expected = [c for c in full if c["department"] and c["department"]["id"] == department]
    assert expected
    assert listed(department_id=department) == expected
    assert listed(department_id=department.upper()) == expected
    user = sandbox.users()[0]["id"]
    expected = [c for c in full if c["user"] and c["user"]["id"] == user]
    assert expected
    assert listed(user_id=user) == expected
    assert listed(user_id="00000000-0000-4000-8000-000000000000") == []
    # date bounds are inclusive
    lo, hi = full[30]["date"], full[10]["date"]
    window = listed(date_from=lo, date_to=hi)
    assert window == full[10:31]
    assert window == sandbox.listed_conversations(date_from=lo, date_to=hi)
    # combined
    medium = full[0]["medium"]
    combined = listed(medium=medium, date_to=hi)
    assert combined == [c for c in full[10:] if c["medium"] == medium]
    # offsets and naive timestamps are understood
    plus_two = (parse_ts(hi).astimezone(timezone(timedelta(hours=2)))).isoformat()
    assert listed(date_from=lo, date_to=plus_two) == window


def test_invalid_filters_are_400_naming_the_parameter(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    cases = {
        "department_id": "sales",
        "user_id": "12345",
        "medium": "fax",
        "date_from": "yesterday",
        "date_to": "2026-13-01",
        "cursor": "not-a-date",
    }
    for name, value in cases.items():
        body = api.error("/conversations", 400, "invalid_parameter", **{name: value})
        assert name in body["message"]


def test_thirty_day_window_and_clamp(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    now = datetime.now(UTC)
    everything = [c for p in api.walk() for c in p["conversations"]]
    assert everything == sandbox.listed_conversations()
    assert all(now - parse_ts(c["date"]) <= timedelta(days=30) for c in everything)
    sixty = (now - timedelta(days=60)).isoformat()
    clamped = [c for p in api.walk(date_from=sixty) for c in p["conversations"]]
    assert clamped == everything
    old_only = api.ok("/conversations", date_to=(now - timedelta(days=31)).isoformat())
    assert old_only["conversations"] == []
    assert old_only["pagination"] == {"has_more": False, "next_cursor": None, "limit": 25}
    in_store_older = [
        i
        for i in sandbox.all_conversation_ids()
        if now
        - parse_ts(
            sandbox.conversation_detail(i, include_transcript=False, include_insights=False)["date"]
        )
        > timedelta(30)
    ]
    assert in_store_older


# --- quota --------------------------------------------------------------------------------


def test_quota_counts_unique_conversations_across_endpoints(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sb = sandbox_factory(daily_quota=3)
    api = Api(sb)
    a, b, c, d = ids(sb.listed_conversations()[:4])
    for cid in (a, b, c):
        api.ok(f"/conversations/{cid}", "/conversations/{id}", include_transcript="true")
        for sub in ("transcript", "insights", "recording", "summary"):
            assert api.get(f"/conversations/{cid}/{sub}").status_code in (200, 404)
        assert sb.counters.quota_used() == ids(sb.listed_conversations()[:4]).index(cid) + 1
    assert sb.counters.quota_used(sb.token) == 3
    for path in (f"/conversations/{d}", f"/conversations/{d}/insights"):
        response = api.get(path)
        body = api.error(path, 429, "quota_exceeded", "/conversations/{id}")
        assert body["message"]
        retry = int(response.headers["Retry-After"])
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
        midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC)
        assert abs(retry - (midnight - datetime.now(UTC)).total_seconds()) <= 5
        assert retry >= 1
    # touching a charged id again, listing and unknown ids are free
    api.ok(f"/conversations/{a}/insights", "/conversations/{id}/insights")
    api.ok("/conversations")
    api.error("/conversations/00000000-0000-4000-8000-000000000000", 404, "not_found")
    assert sb.counters.quota_used() == 3
    # quota is per token
    other = sb.add_token(scopes=("conversations",), daily_quota=1)
    Api(sb, other).ok(f"/conversations/{d}", "/conversations/{id}")
    Api(sb, other).error(f"/conversations/{a}", 429, "quota_exceeded", "/conversations/{id}")
    assert sb.counters.quota_used(other) == 1
    # a new day resets usage
    sb.new_day()
    assert sb.counters.quota_used() == 0
    api.ok(f"/conversations/{d}", "/conversations/{id}")
    assert sb.counters.quota_used() == 1
    sb.set_daily_quota(1)
    api.error(f"/conversations/{a}", 429, "quota_exceeded", "/conversations/{id}")


# --- rate limit ---------------------------------------------------------------------------


def test_rate_limit_sliding_window_and_retry_after(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sb = sandbox_factory(rate_limit=5, rate_window_seconds=2.0)
    api = Api(sb)
    remaining = []
    for i in range(5):
        path = "/me" if i != 2 else "/conversations/00000000-0000-4000-8000-000000000000"
        response = api.get(path)
        assert response.status_code == (200 if i != 2 else 404)  # 4xx count too
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    limited = api.get("/users")
    assert limited.status_code == 429
    validate(limited.json(), response_schema_ref("/conversations", "get", 429))
    assert limited.json()["error"] == "rate_limited"
    retry = int(limited.headers["Retry-After"])
    assert 1 <= retry <= 2
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert sb.counters.retry_after_violations(sb.token) == 0
    assert api.get("/me").status_code == 429  # too early: a violation
    assert sb.counters.retry_after_violations(sb.token) == 1
    assert sb.counters.retry_after_violations() == 1
    time.sleep(retry)
    assert api.get("/me").status_code == 200
    assert sb.counters.retry_after_violations(sb.token) == 1
    assert sb.counters.requests(status=429) == 2
    # other tokens have their own window
    assert Api(sb, sb.add_token(scopes=())).get("/me").status_code == 200


def test_429_answers_do_not_count_against_the_window(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sb = sandbox_factory(rate_limit=3, rate_window_seconds=60.0)
    api = Api(sb)
    assert [api.get("/me").status_code for _ in range(6)] == [200, 200, 200, 429, 429, 429]
    sb.set_rate_limit(4, 60.0, token=sb.token)
    assert api.get("/me").status_code == 200  # only the three 200s were in the window
    limited = api.get("/me")
    assert limited.status_code == 429
    assert 55 <= int(limited.headers["Retry-After"]) <= 60
    sb.set_rate_limit(100, 60.0)
    assert api.get("/me").status_code == 200


def test_rate_limit_headers_can_be_left_out(sandbox_factory: Callable[..., Sandbox]) -> None:
    """The contract makes `X-RateLimit-*` optional: a server may send none, 429 or not."""
    sb = sandbox_factory(rate_limit=1, rate_window_seconds=60.0)
    sb.faults.rate_limit_headers = False
    api = Api(sb)
    answered, limited = api.get("/me"), api.get("/me")
    assert (answered.status_code, limited.status_code) == (200, 429)
    for response in (answered, limited):
        assert not [name for name in response.headers if name.startswith("X-RateLimit-")]
    assert 55 <= int(limited.headers["Retry-After"]) <= 60


# --- late data ----------------------------------------------------------------------------


def test_late_conversation_appears_and_gets_processed(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    before = sandbox.listed_conversations()
    date = datetime.now(UTC) - timedelta(days=2, minutes=7)
    cid = sandbox.add_conversation(date=date, processed=False)
    assert cid not in ids(before)
    after = [c for p in api.walk() for c in p["conversations"]]
    assert after == sandbox.listed_conversations()
    assert ids(after) == sorted(
        [*ids(before), cid],
        key=lambda i: (sandbox.conversation_detail(i)["date"], i),
        reverse=True,
    )
    assert parse_ts(next(c for c in after if c["id"] == cid)["date"]) == date.replace(
        microsecond=date.microsecond // 1000 * 1000
    )
    path = f"/conversations/{cid}"
    detail = api.ok(path, "/conversations/{id}", include_transcript="true", include_insights="true")
    assert detail["summary"] is None
    assert "transcript" not in detail
    assert detail["insights"] == []
    api.error(path + "/summary", 404, "not_found", "/conversations/{id}/summary")
    api.error(path + "/transcript", 404, "not_found", "/conversations/{id}/transcript")
    assert api.ok(path + "/insights", "/conversations/{id}/insights")["insights"] == []
    assert cid not in {d["resource_id"] for d in sandbox.webhook_deliveries()}

    sandbox.set_processed(cid, processed=True)
    summary = api.ok(path + "/summary", "/conversations/{id}/summary")
    assert summary == sandbox.summary(cid)
    assert summary["summary"] is not None
    assert datetime.now(UTC) - parse_ts(summary["updated_at"]) < timedelta(seconds=10)
    transcript = api.ok(path + "/transcript", "/conversations/{id}/transcript")
    assert transcript["transcript"] == sandbox.transcript(cid)
    assert transcript["transcript"]["segments"]
    detail = api.ok(path, "/conversations/{id}", include_transcript="true", include_insights="true")
    assert detail == sandbox.conversation_detail(cid)
    deliveries = api.ok("/webhooks/deliveries")["deliveries"]
    assert deliveries[0]["resource_id"] == cid
    assert deliveries[0]["status"] == "delivered"


def test_add_conversation_defaults_overrides_and_window(sandbox: Sandbox) -> None:
    user = sandbox.users()[2]
    cid = sandbox.add_conversation(medium="email", title="Late ✉️", user_id=user["id"])
    listed = sandbox.listed_conversations()
    assert listed[0]["id"] == cid
    assert listed[0]["medium"] == "email"
    assert listed[0]["title"] == "Late ✉️"
    assert listed[0]["user"] == {
        "id": user["id"],
        "name": user["full_name"],
        "email": user["email"],
    }
    assert Api(sandbox).ok("/conversations", limit="1")["conversations"] == [listed[0]]
    assert sandbox.summary(cid) is not None
    old = sandbox.add_conversation(date=datetime.now(UTC) - timedelta(days=35))
    assert old not in ids(sandbox.listed_conversations())
    assert old in sandbox.all_conversation_ids()
    assert Api(sandbox).ok(f"/conversations/{old}", "/conversations/{id}")["id"] == old
    # the generator is deterministic: the same calls give the same conversation
    other = Sandbox(seed=7, conversations=120)
    assert other.add_conversation(medium="email", title="Late ✉️", user_id=user["id"]) == cid


def test_hide_and_unhide(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    cid = sandbox.listed_conversations()[3]["id"]
    sandbox.hide(cid)
    assert cid not in ids(sandbox.listed_conversations())
    assert cid not in [c["id"] for p in api.walk() for c in p["conversations"]]
    assert api.ok(f"/conversations/{cid}", "/conversations/{id}")["id"] == cid
    sandbox.unhide(cid)
    assert api.ok("/conversations")["conversations"][3]["id"] == cid


# --- faults -------------------------------------------------------------------------------


def test_latency_and_max_in_flight(sandbox: Sandbox) -> None:
    sandbox.faults.latency_ms = 200
    started = time.perf_counter()
    assert Api(sandbox).get("/me").status_code == 200
    assert time.perf_counter() - started >= 0.2
    sandbox.reset_counters()
    threads = [threading.Thread(target=Api(sandbox).get, args=("/users",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sandbox.counters.requests(endpoint="/users", status=200) == 4
    assert sandbox.counters.max_in_flight >= 3
    deadline = time.monotonic() + 2
    while sandbox.counters.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)  # handler threads finish just after the client has its answer
    sandbox.reset_counters()
    assert sandbox.counters.max_in_flight == 0
    assert sandbox.counters.requests() == 0


def test_error_rate_and_me_is_exempt(sandbox: Sandbox) -> None:
    sandbox.faults.error_rate = 1.0
    api = Api(sandbox)
    for _ in range(6):
        response = api.get("/users")
        assert response.status_code in (500, 502, 503)
        validate(response.json(), "#/components/schemas/Error")
        assert response.json()["error"] == "internal_error"
    assert api.get("/me").status_code == 200
    assert sandbox.counters.faults_injected["error"] == 6
    sandbox.faults.endpoints = {"/me"}
    assert api.get("/me").status_code in (500, 502, 503)
    assert api.get("/users").status_code == 200


def test_fault_decisions_are_reproducible_per_seed(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    runs = []
    for _ in range(2):
        sb = sandbox_factory(seed=11)
        sb.faults.error_rate = 0.5
        runs.append([Api(sb).get("/departments").status_code for _ in range(24)])
    assert runs[0] == runs[1]
    assert 200 in runs[0]
    assert set(runs[0]) - {200}


def test_error_every(sandbox: Sandbox) -> None:
    sandbox.faults.error_every = 3
    api = Api(sandbox)
    statuses = [api.get(p).status_code for p in ("/users", "/teams", "/departments") * 3]
    assert statuses == [200, 200, 503] * 3
    assert sandbox.counters.faults_injected["error_every"] == 3


def test_slow_answers_time_out_without_blocking_others(sandbox: Sandbox) -> None:
    sandbox.faults.slow_rate = 1.0
    sandbox.faults.slow_seconds = 2.0
    sandbox.faults.endpoints = {"/users"}
    outcome: list[str] = []

    def slow_call() -> None:
        try:
            Api(sandbox).get("/users", timeout=0.4)
            outcome.append("answered")
        except requests.Timeout:
            outcome.append("timeout")

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.1)
    started = time.perf_counter()
    assert Api(sandbox).get("/teams").status_code == 200
    # Answered while the slow one is still held: it did not wait its 2 s.
    assert time.perf_counter() - started < 2.0
    thread.join()
    assert outcome == ["timeout"]
    assert sandbox.counters.max_in_flight >= 2
    assert sandbox.counters.faults_injected["slow"] == 1
    started = time.perf_counter()
    assert Api(sandbox).get("/users", timeout=10).status_code == 200  # patient clients get it
    assert time.perf_counter() - started >= 2.0


def test_truncated_bodies(sandbox: Sandbox) -> None:
    sandbox.faults.truncate_rate = 1.0
    status, headers, body = split_raw(raw_get(sandbox, "/users"))
    assert status == 200
    assert 0 < len(body) < int(headers["content-length"])
    with pytest.raises(requests.RequestException):
        Api(sandbox).get("/users").json()
    assert sandbox.counters.faults_injected["truncate"] == 2


def test_html_and_non_json_answers(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    sandbox.faults.html_rate = 1.0
    response = api.get("/teams")
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Bad Gateway" in response.text
    sandbox.faults.html_rate = 0.0
    sandbox.faults.non_json_rate = 1.0
    response = api.get("/teams")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(requests.JSONDecodeError):
        response.json()
    assert sandbox.counters.faults_injected["html"] == 1
    assert sandbox.counters.faults_injected["non_json"] == 1


def test_dropped_connections(sandbox: Sandbox) -> None:
    sandbox.faults.drop_rate = 1.0
    assert raw_get(sandbox, "/users") == b""
    with pytest.raises(requests.ConnectionError):
        Api(sandbox).get("/users")
    assert sandbox.counters.faults_injected["drop"] == 2
    assert sandbox.counters.requests(endpoint="/users", status=0) == 2
    assert Api(sandbox).get("/me").status_code == 200


def test_spurious_rate_limited(sandbox: Sandbox) -> None:
    sandbox.faults.rate_limited_rate = 1.0
    sandbox.faults.endpoints = {"/conversations"}
    response = Api(sandbox).get("/conversations")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"] == "rate_limited"
    assert sandbox.counters.faults_injected["rate_limited"] == 1
    assert Api(sandbox).get("/me").status_code == 200  # too early: a violation
    assert sandbox.counters.retry_after_violations() == 1


# --- webhooks -----------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers.items()), raw))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()
    thread.join()


def test_signed_webhook(
    sandbox: Sandbox, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver
    cid = conv_with(sandbox, lambda i: sandbox.summary(i) is not None)
    secret = "whsec_ünïcode-secret"  # noqa: S105 - test secret
    response = sandbox.send_webhook(url, cid, secret)
    assert response.status_code == 204
    headers, raw = received[0]
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Webhook-Signature"], expected)
    forged = "sha256=" + hmac.new(b"wrong", raw, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(headers["X-Webhook-Signature"], forged)
    body = json.loads(raw)
    assert headers["X-Webhook-Event"] == body["event"] == "conversation.completed"
    assert headers["X-Webhook-Delivery-Id"] == body["_meta"]["delivery_id"]
    assert body["_meta"]["token_prefix"] == sandbox.token[:11]
    assert abs(int(headers["X-Webhook-Timestamp"]) - time.time()) < 30
    assert abs(parse_ts(body["timestamp"]) - datetime.now(UTC)) < timedelta(seconds=30)
    conversation = body["data"]["conversation"]
    validate(conversation, "#/components/schemas/ConversationDetail")
    assert conversation == sandbox.conversation_detail(
        cid, include_transcript=False, include_insights=False
    )
    assert set(body) == {"event", "timestamp", "data", "_meta"}
    delivery = sandbox.webhook_deliveries()[0]
    assert delivery["id"] == body["_meta"]["delivery_id"]
    assert delivery["resource_id"] == cid
    assert delivery["response_status"] == 204
    assert delivery["status"] == "delivered"


# --- counters and robustness ----------------------------------------------------------------


def test_counters(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    other = sandbox.add_token(scopes=("users",))
    cid = sandbox.listed_conversations()[0]["id"]
    api.get("/me")
    api.get("/me")
    api.get(f"/conversations/{cid}")
    api.get(f"/conversations/{cid}/transcript")
    Api(sandbox, other).get("/teams")
    Api(sandbox, "mt_bogus").get("/me")
    assert sandbox.counters.requests() == 6
    assert sandbox.counters.requests(endpoint="/me") == 3
    assert sandbox.counters.requests(endpoint="/me", status=200) == 2
    assert sandbox.counters.requests(endpoint="/me", status=401, token="mt_bogus") == 1  # noqa: S106 - an unknown token
    assert sandbox.counters.requests(token=other) == 1
    assert sandbox.counters.requests(status=403) == 1
    assert sandbox.counters.by_endpoint() == {
        "/me": {200: 2, 401: 1},
        "/conversations/{id}": {200: 1},
        "/conversations/{id}/transcript": {200: 1},
        "/teams": {403: 1},
    }
    assert sandbox.counters.quota_used() == 1
    assert sandbox.counters.faults_injected == dict.fromkeys(sandbox.counters.faults_injected, 0)
    sandbox.reset_counters()
    assert sandbox.counters.by_endpoint() == {}
    assert sandbox.counters.quota_used() == 1  # not reset


def test_robust_against_bad_requests_and_silent(
    sandbox: Sandbox, capfd: pytest.CaptureFixture[str]
) -> None:
    assert b"400" in raw_http(sandbox, b"GARBAGE\r\n\r\n")  # HTTP/0.9-style answer
    garbage = raw_http(sandbox, b"GET / extra words HTTP/1.1\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.")
    assert b" 400 " in garbage.split(b"\r\n")[0]
    bad_length = raw_http(
        sandbox,
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    )
    assert split_raw(bad_length)[0] == 400
    status, _, body = split_raw(
        raw_http(
            sandbox,
            b"GET /api/v1/me HTTP/1.0\r\nAuthorization: Bearer "
            + DEMO_TOKEN.encode()
            + b"\r\n\r\n",
        )
    )
    assert status == 200
    assert json.loads(body)["name"] == sandbox.account()["name"]
    with socket.create_connection((sandbox.host, sandbox.port), timeout=2) as s:
        s.sendall(b"GET /api/v1/me HTTP/1.1\r\n")  # and hang up mid-request
    Api(sandbox).get("/users", include="%ff%fe")
    assert Api(sandbox).get("/me").status_code == 200
    assert sandbox.server_errors == []
    captured = capfd.readouterr()
    assert captured.err == ""


def test_keep_alive_and_stop_closes_connections(sandbox_factory: Callable[..., Sandbox]) -> None:
    sb = sandbox_factory()
    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=2)
    headers = {"Authorization": f"Bearer {sb.token}"}
    for _ in range(3):
        conn.request("GET", "/api/v1/me", headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        assert response.version == 11
        response.read()
    sock = conn.sock
    conn.request("GET", "/api/v1/me", headers=headers)
    conn.getresponse().read()
    assert conn.sock is sock  # the same connection was reused
    sb.stop()

    def again() -> None:
        conn.request("GET", "/api/v1/me", headers=headers)
        conn.getresponse()

    with pytest.raises((http.client.HTTPException, OSError)):
        again()
    conn.close()


# --- standalone ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_standalone_command(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.sandbox", "--port", "0", "--conversations", "30"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=20), "no first line within 20 s"
        line = proc.stdout.readline()
        match = re.fullmatch(r"sandbox: (http://127\.0\.0\.1:(\d+)/api/v1) token=(\S+)\n", line)
        assert match, line
        base_url, token = match.group(1), match.group(3)
        assert token == DEMO_TOKEN
        response = requests.get(
            base_url + "/me", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert response.status_code == 200
        assert response.json()["_meta"]["token_prefix"] == token[:11]
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_standalone_command_makes_tokens_with_chosen_scopes() -> None:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "tests.sandbox", "--port", "0", "--conversations", "30",
            "--add-token", "all", "--add-token", "conversations,recordings,include_recordings",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base_url = re.fullmatch(r"sandbox: (\S+) token=\S+\n", proc.stdout.readline())
        assert base_url, "no first line"
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        tokens = [re.fullmatch(r"token: (mt_\S+) scopes=(\S+) include_recordings=(\w+)\n", x)
                  for x in lines]  # fmt: skip
        assert all(tokens), lines
        disabled, enabled = (m.group(1) for m in tokens if m)
        assert [m.group(2, 3) for m in tokens if m] == [
            (",".join(ALL_SCOPES), "false"),
            ("conversations,recordings", "true"),
        ]

        def get(path: str, token: str) -> requests.Response:
            return requests.get(
                base_url.group(1) + path, headers={"Authorization": f"Bearer {token}"}, timeout=5
            )

        conversation = get("/conversations", enabled).json()["conversations"][0]["id"]
        answer = get(f"/conversations/{conversation}/recording", disabled)
        assert (answer.status_code, answer.json()["error"]) == (403, "recordings_disabled")
        assert get(f"/conversations/{conversation}/recording", enabled).status_code == 200
        assert get("/users", enabled).json()["error"] == "insufficient_scope"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_standalone_command_refuses_an_unknown_scope() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.sandbox", "--add-token", "conversations,fax"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown scopes ['fax']" in result.stderr


# --- knobs for the trust tests: ties beyond a page, slow processing, delivery status ---


def test_a_tie_group_larger_than_a_page_is_split_by_the_list_filters(sandbox: Sandbox) -> None:
    tie = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=5)
    added = {sandbox.add_conversation(date=tie, medium=("call", "chat")[i % 2]) for i in range(30)}
    api = Api(sandbox)
    stamp = tie.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    whole = api.ok("/conversations", date_from=stamp, date_to=stamp)
    assert len(whole["conversations"]) == 25
    assert whole["pagination"]["has_more"] is True
    by_medium = [
        api.ok("/conversations", date_from=stamp, date_to=stamp, medium=medium)
        for medium in ("call", "chat")
    ]
    assert [page["pagination"]["has_more"] for page in by_medium] == [False, False]
    assert {c["id"] for page in by_medium for c in page["conversations"]} == added


def test_processing_that_takes_days_and_completes_without_a_webhook(sandbox: Sandbox) -> None:
    two_days_ago = datetime.now(timezone.utc) - timedelta(days=2)
    cid = sandbox.add_conversation(date=two_days_ago, processed=False)
    api = Api(sandbox)
    assert api.ok(f"/conversations/{cid}", "/conversations/{id}")["summary"] is None
    before = sandbox.webhook_deliveries()
    sandbox.set_processed(cid, processed=True, webhook=False)
    assert api.ok(f"/conversations/{cid}", "/conversations/{id}")["summary"] is not None
    assert sandbox.webhook_deliveries() == before


def test_a_delivery_status_changes_from_pending_to_delivered(sandbox: Sandbox) -> None:
    cid = sandbox.listed_conversations()[0]["id"]
    delivery_id = sandbox.add_delivery(cid)
    api = Api(sandbox)

    def listed() -> dict[str, Any]:
        deliveries = api.ok("/webhooks/deliveries")["deliveries"]
        return next(d for d in deliveries if d["id"] == delivery_id)

    assert listed()["status"] == "pending"
    assert listed()["delivered_at"] is None
    sandbox.set_delivery_status(delivery_id, "delivered")
    assert listed()["status"] == "delivered"
    assert listed()["delivered_at"] is not None
    assert listed()["attempts"] == 2


# --- a shared clock: the sandbox's now is whatever its clock says ---------------------------


class SimClock:
    """A settable clock: the sandbox's now is ``.now`` until a test moves it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def sim_ok(api: Api, clock: SimClock, path: str, template: str | None = None, **params: Any) -> Any:
    """Like ``Api.ok`` but ``_meta.timestamp`` must be the simulated now, not the real one."""
    response = api.get(path, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    validate(body, response_schema_ref(template or path, "get", 200))
    assert body.pop("_meta") == {
        "token_prefix": api.token[:11],
        "timestamp": clock.now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    return body


def sim_walk(api: Api, clock: SimClock) -> list[str]:
    """Every id a client following next_cursor lists."""
    out: list[str] = []
    params: dict[str, str] = {}
    while True:
        page = sim_ok(api, clock, "/conversations", **params)
        out += ids(page["conversations"])
        if not page["pagination"]["has_more"]:
            return out
        params["cursor"] = page["pagination"]["next_cursor"]


def dated_ids(sb: Sandbox, lo: datetime, hi: datetime) -> list[str]:
    """Ids of stored conversations dated within [lo, hi], newest first (ties: id desc)."""
    dates = {
        i: parse_ts(sb.conversation_detail(i, include_transcript=False)["date"])
        for i in sb.all_conversation_ids()
    }
    chosen = [i for i, d in dates.items() if lo <= d <= hi]
    return sorted(chosen, key=lambda i: (dates[i], i), reverse=True)


SIM_START = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_an_edited_summary_shows_in_the_detail_and_summary_with_its_time(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    clock = SimClock(SIM_START)
    sb = sandbox_factory(conversations=0, clock=clock)
    api = Api(sb)
    cid = sb.add_conversation(date=SIM_START - timedelta(hours=3))
    created = sb.summary(cid)["created_at"]  # type: ignore[index]
    clock.now = SIM_START + timedelta(hours=5)
    sb.edit_summary(cid, "Edited by hand.")
    edited = sim_ok(api, clock, f"/conversations/{cid}/summary", "/conversations/{id}/summary")
    assert (edited["summary"], edited["created_at"], edited["updated_at"]) == (
        "Edited by hand.",
        created,
        "2026-03-01T15:00:00.000Z",
    )
    assert sim_ok(api, clock, f"/conversations/{cid}", "/conversations/{id}")["summary"] == (
        "Edited by hand."
    )
    # No delivery: the completed webhook fired once, at completion.
    assert [d["resource_id"] for d in sb.webhook_deliveries()] == [cid]


def test_the_sandbox_clock_moves_the_listing_window_and_timestamps(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    clock = SimClock(SIM_START)
    sb = sandbox_factory(clock=clock)
    api = Api(sb)
    assert sb.anchor == SIM_START
    assert sb.now() == SIM_START
    before = sim_walk(api, clock)
    assert before == ids(sb.listed_conversations())
    assert before == dated_ids(sb, SIM_START - timedelta(days=30), SIM_START)
    seeded_deliveries = sb.webhook_deliveries()
    assert seeded_deliveries  # the last 7 days of the start had some
    assert all(
        SIM_START - parse_ts(d["created_at"]) <= timedelta(days=7) for d in seeded_deliveries
    )

    clock.now = SIM_START + timedelta(days=10)
    after = sim_walk(api, clock)
    assert after == dated_ids(sb, SIM_START - timedelta(days=20), SIM_START)
    assert after == ids(sb.listed_conversations())
    assert (len(before), len(after)) == (91, 59)
    assert after == before[: len(after)]  # the oldest 32 fell out of the window
    assert [p for page in sb.listed_pages() for p in ids(page)] == after
    # the seeded deliveries are all older than 7 days now
    assert sb.webhook_deliveries() == []
    assert sim_ok(api, clock, "/webhooks/deliveries") == {"deliveries": []}

    # late data is dated by the sandbox clock
    cid = sb.add_conversation()
    stamp = "2026-03-11T10:00:00.000Z"
    listed = sim_ok(api, clock, "/conversations", limit="1")["conversations"]
    assert ids(listed) == [cid]
    assert listed[0]["date"] == stamp
    summary = sim_ok(api, clock, f"/conversations/{cid}/summary", "/conversations/{id}/summary")
    assert (summary["created_at"], summary["updated_at"]) == (stamp, stamp)
    delivery = sim_ok(api, clock, "/webhooks/deliveries")["deliveries"]
    assert [(d["resource_id"], d["created_at"]) for d in delivery] == [(cid, stamp)]
    # a conversation dated after the sandbox's now is not listed until the clock passes it
    later = sb.add_conversation(date=SIM_START + timedelta(days=10, hours=2))
    assert ids(sim_ok(api, clock, "/conversations", limit="1")["conversations"]) == [cid]
    clock.now = SIM_START + timedelta(days=10, hours=3)
    sb.set_processed(later, processed=True)
    assert sb.summary(later)["updated_at"] == "2026-03-11T13:00:00.000Z"  # type: ignore[index]
    assert ids(sim_ok(api, clock, "/conversations", limit="2")["conversations"]) == [later, cid]
    request = sb.notetaker_requests()
    assert request == []
    answer = api.post("/notetaker", {"meeting_url": "https://zoom.us/j/1"})
    assert answer.status_code == 201
    assert answer.json()["created_at"] == "2026-03-11T13:00:00.000Z"
    # the rate limit's headers stay on real time
    reset = int(api.get("/me").headers["X-RateLimit-Reset"])
    assert time.time() - 1 <= reset <= time.time() + 61
    # back to the real clock: the window follows it again
    sb.clock = None
    assert abs(sb.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_the_quota_day_follows_the_sandbox_clock(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    clock = SimClock(datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC))
    sb = sandbox_factory(clock=clock, daily_quota=2)
    api = Api(sb)
    a, b, c = ids(sb.listed_conversations()[:3])
    for cid in (a, b):
        assert api.get(f"/conversations/{cid}").status_code == 200
    over = api.get(f"/conversations/{c}")
    assert (over.status_code, over.json()["error"]) == (429, "quota_exceeded")
    assert over.headers["Retry-After"] == "30"  # to midnight of the sandbox clock
    clock.now = datetime(2026, 3, 1, 23, 59, 59, 500_000, tzinfo=UTC)
    assert api.get(f"/conversations/{c}").headers["Retry-After"] == "1"
    assert sb.counters.quota_used() == 2
    clock.now = datetime(2026, 3, 2, 0, 0, 0, 1000, tzinfo=UTC)  # midnight passed
    assert sb.counters.quota_used() == 0
    assert api.get(f"/conversations/{c}").status_code == 200
    assert api.get(f"/conversations/{a}").status_code == 200
    assert sb.counters.quota_used() == 2
    over = api.get(f"/conversations/{b}")
    assert over.status_code == 429
    assert over.headers["Retry-After"] == "86400"
    # new_day() still works on top of the clock's day
    sb.new_day()
    assert sb.counters.quota_used() == 0
    assert api.get(f"/conversations/{b}").status_code == 200
    assert sb.counters.quota_used() == 1
    # a clock going back to the earlier day is a different day key: fresh usage
    clock.now = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    assert sb.counters.quota_used() == 0
    assert sb.counters.requests(status=429) == 3


# --- answers that heal later --------------------------------------------------------------


def bare_detail(sb: Sandbox, conv_id: str) -> dict[str, Any]:
    """The detail without transcript and insights (what a plain GET answers)."""
    return sb.conversation_detail(conv_id, include_transcript=False, include_insights=False)


def complete_conv(sb: Sandbox, skip: int = 0) -> str:
    """A listed conversation whose every endpoint answers 200 (summary and transcript)."""
    complete = [
        c["id"]
        for c in sb.listed_conversations()
        if sb.summary(c["id"]) is not None and sb.transcript(c["id"]) is not None
    ]
    return complete[skip]


@pytest.mark.parametrize(
    ("endpoint", "status", "code"),
    [
        ("detail", 404, "not_found"),
        ("summary", 500, "internal_error"),
        ("transcript", 502, "internal_error"),
        ("insights", 503, "internal_error"),
        ("recording", 404, "not_found"),
        ("detail", 429, "rate_limited"),
    ],
)
def test_fail_next_answers_exactly_times_then_heals(
    sandbox: Sandbox, endpoint: str, status: int, code: str
) -> None:
    cid, other = complete_conv(sandbox), complete_conv(sandbox, 1)
    path = f"/conversations/{cid}" + ("" if endpoint == "detail" else f"/{endpoint}")
    template = "/conversations/{id}" + ("" if endpoint == "detail" else f"/{endpoint}")
    sandbox.fail_next(cid, endpoint, times=3, status=status)
    api = Api(sandbox)
    # another conversation's same endpoint is not affected (and consumes nothing)
    api.ok(path.replace(cid, other), template)
    for _ in range(3):
        response = api.get(path)
        body = response.json()
        assert response.status_code == status, response.text
        validate(body, "#/components/schemas/Error")
        assert body["error"] == code
        assert "Retry-After" not in response.headers  # retry_after=None: no header
        assert "X-RateLimit-Limit" in response.headers
    assert sandbox.counters.quota_used() == 1  # only `other`
    assert sandbox.counters.faults_injected["fail_next"] == 3
    assert sandbox.counters.retry_after_violations() == 0
    healed = api.ok(path, template)
    if endpoint == "detail":
        assert healed == bare_detail(sandbox, cid)
    assert api.ok(path, template) == healed
    assert sandbox.counters.quota_used() == 2
    assert sandbox.counters.faults_injected["fail_next"] == 3
    assert sandbox.counters.by_endpoint()[template] == {200: 3, status: 3}
    assert sandbox.server_errors == []


def test_fail_next_queues_and_429_retry_after_is_policed_and_free(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sb = sandbox_factory(rate_limit=3, rate_window_seconds=60.0)
    cid = complete_conv(sb)
    api = Api(sb)
    path = f"/conversations/{cid}/summary"
    sb.fail_next(cid, "summary", times=2, status=429, retry_after=7)
    sb.fail_next(cid, "summary", times=1, status=503)
    sb.fail_next(cid, "summary", times=1, status=429)
    first = api.get(path)
    assert (first.status_code, first.json()["error"]) == (429, "rate_limited")
    assert first.headers["Retry-After"] == "7"
    second = api.get(path)  # 7 s early: counted as a violation
    assert (second.status_code, second.headers["Retry-After"]) == (429, "7")
    assert sb.counters.retry_after_violations(sb.token) == 1
    third = api.get(path)
    assert (third.status_code, third.json()["error"]) == (503, "internal_error")
    fourth = api.get(path)
    assert fourth.status_code == 429
    assert "Retry-After" not in fourth.headers
    assert sb.counters.faults_injected["fail_next"] == 4
    assert sb.counters.quota_used() == 0
    # the three 429s did not count against the window of 3; the 503 did
    assert [api.get(path).status_code for _ in range(3)] == [200, 200, 429]
    assert sb.counters.requests(endpoint="/conversations/{id}/summary", status=429) == 4
    assert sb.counters.quota_used() == 1
    with pytest.raises(ValueError, match="endpoint"):
        sb.fail_next(cid, "teams")
    with pytest.raises(ValueError, match="status"):
        sb.fail_next(cid, "detail", status=418)
    with pytest.raises(ValueError, match="times"):
        sb.fail_next(cid, "detail", times=0)
    with pytest.raises(KeyError):
        sb.fail_next("00000000-0000-4000-8000-000000000000", "detail")
    assert sb.server_errors == []


def test_answer_as_serves_another_detail_then_heals(sandbox: Sandbox) -> None:
    cid, other = complete_conv(sandbox), complete_conv(sandbox, 1)
    api = Api(sandbox)
    sandbox.answer_as(cid, other, times=2)
    path, template = f"/conversations/{cid}", "/conversations/{id}"
    wrong = api.ok(path, template, include_transcript="true", include_insights="true")
    assert wrong == sandbox.conversation_detail(other)
    assert wrong["id"] == other
    # sub-resources are not affected
    assert api.ok(f"{path}/summary", f"{template}/summary") == sandbox.summary(cid)
    assert api.ok(path, template) == bare_detail(sandbox, other)
    assert sandbox.counters.faults_injected["answer_as"] == 2
    assert api.ok(path, template) == bare_detail(sandbox, cid)
    assert api.ok(path, template)["id"] == cid
    assert sandbox.counters.faults_injected["answer_as"] == 2
    assert sandbox.counters.faults_injected["fail_next"] == 0
    assert sandbox.counters.quota_used() == 1  # charged for the requested id only
    assert sandbox.counters.by_endpoint()[template] == {200: 4}
    with pytest.raises(KeyError):
        sandbox.answer_as(cid, "00000000-0000-4000-8000-000000000000")


# --- removal --------------------------------------------------------------------------------


def test_remove_is_permanent_and_everywhere(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    before = ids(sandbox.listed_conversations())
    stored = sandbox.all_conversation_ids()
    cid, other = before[3], before[7]
    truth = sandbox.conversation_detail(cid)
    assert sandbox.removed_ids() == []
    sandbox.remove(cid)
    sandbox.remove(other)
    sandbox.remove(cid)  # idempotent
    assert sandbox.removed_ids() == [cid, other]
    expected = [i for i in before if i not in (cid, other)]
    assert len(expected) == len(before) - 2
    assert ids(sandbox.listed_conversations()) == expected
    assert [c["id"] for p in api.walk() for c in p["conversations"]] == expected
    assert sandbox.all_conversation_ids() == [i for i in stored if i not in (cid, other)]
    path, template = f"/conversations/{cid}", "/conversations/{id}"
    api.error(path, 404, "not_found", template)
    for sub in ("summary", "transcript", "insights", "recording"):
        api.error(f"{path}/{sub}", 404, "not_found", f"{template}/{sub}")
    assert sandbox.counters.quota_used() == 0
    assert sandbox.counters.by_endpoint()[template] == {404: 1}
    # unlike hide: unhide does not bring it back; the truth of what it was remains
    sandbox.unhide(cid)
    assert cid not in ids(sandbox.listed_conversations())
    api.error(path, 404, "not_found", template)
    assert sandbox.conversation_detail(cid) == truth
    assert sandbox.server_errors == []


# --- disabled departments, inactive users, fresh ones ---------------------------------------


def test_disabled_department_is_not_listed_but_still_referenced(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    departments = sandbox.departments()
    assert len(departments) == 4
    dep = departments[1]
    cid = conv_with(
        sandbox,
        lambda i: (sandbox.conversation_detail(i)["department"] or {}).get("id") == dep["id"],
    )
    referencing = ids(sandbox.listed_conversations(department_id=dep["id"]))
    assert cid in referencing
    sandbox.set_department_enabled(dep["id"], enabled=False)
    listed = api.ok("/departments")["departments"]
    assert ids(listed) == [departments[i]["id"] for i in (0, 2, 3)]
    assert listed == sandbox.departments()
    assert all(d["enabled"] for d in listed)
    detail = api.ok(f"/conversations/{cid}", "/conversations/{id}")
    assert detail["department"] == {"id": dep["id"], "name": dep["name"]}
    walked = api.walk(department_id=dep["id"])
    assert [c["id"] for p in walked for c in p["conversations"]] == referencing
    # enabled again: listed in its old place
    sandbox.set_department_enabled(dep["id"], enabled=True)
    assert api.ok("/departments")["departments"] == departments
    with pytest.raises(KeyError):
        sandbox.set_department_enabled("00000000-0000-4000-8000-000000000000", enabled=False)


def test_inactive_user_is_not_listed_but_still_referenced(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    users = sandbox.users()
    teams = sandbox.teams()
    assert len(users) == 8
    user = users[2]
    cid = conv_with(
        sandbox, lambda i: (sandbox.conversation_detail(i)["user"] or {}).get("id") == user["id"]
    )
    sandbox.set_user_active(user["id"], active=False)
    listed = api.ok("/users")["users"]
    assert ids(listed) == [u["id"] for u in users if u["id"] != user["id"]]
    assert len(listed) == 7
    assert listed == sandbox.users()
    assert api.ok("/teams")["teams"] == teams  # still a member of its team
    detail = api.ok(f"/conversations/{cid}", "/conversations/{id}")
    assert detail["user"] == {"id": user["id"], "name": user["full_name"], "email": user["email"]}
    assert cid in ids(sandbox.listed_conversations(user_id=user["id"]))
    sandbox.set_user_active(user["id"], active=True)
    assert api.ok("/users")["users"] == users
    with pytest.raises(KeyError):
        sandbox.set_user_active("00000000-0000-4000-8000-000000000000", active=False)


def test_fresh_departments_and_users(sandbox: Sandbox) -> None:
    api = Api(sandbox)
    team = sandbox.teams()[1]
    dep_id = sandbox.add_department("Nya kunder & Co")
    user_id = sandbox.add_user("Ny Användare", team_id=team["id"])
    departments = api.ok("/departments")["departments"]
    assert len(departments) == 5
    assert departments[-1] == {
        "id": dep_id,
        "name": "Nya kunder & Co",
        "slug": "nya-kunder-co",
        "enabled": True,
        "display_name": None,
    }
    users = api.ok("/users")["users"]
    assert len(users) == 9
    assert users[-1] == {
        "id": user_id,
        "full_name": "Ny Användare",
        "email": f"user-{user_id[:8]}@telco-demo.test",
        "role": "member",
        "team_id": team["id"],
        "team_name": team["name"],
    }
    members = next(t for t in api.ok("/teams")["teams"] if t["id"] == team["id"])["members"]
    assert members[-1] == {"id": user_id, "full_name": "Ny Användare", "email": users[-1]["email"]}
    assert len(members) == len(team["members"]) + 1
    cid = sandbox.add_conversation(department_id=dep_id, user_id=user_id)
    listed = api.ok("/conversations", department_id=dep_id)["conversations"]
    assert ids(listed) == [cid]
    assert listed[0]["department"] == {"id": dep_id, "name": "Nya kunder & Co"}
    assert listed[0]["user"] == {"id": user_id, "name": "Ny Användare", "email": users[-1]["email"]}
    # a conversation without department or user
    bare = sandbox.add_conversation(department_id=None, user_id=None)
    detail = api.ok(f"/conversations/{bare}", "/conversations/{id}")
    assert (detail["department"], detail["user"]) == (None, None)
    with pytest.raises(KeyError):
        sandbox.add_user("Nobody", team_id="00000000-0000-4000-8000-000000000000")
