"""The streams' schemas agree with the API contract, docs/openapi.yaml, field by field.

Types (nullability included), formats, enums and nested shapes must be the contract's.
The tap adds only what it declares here (a child record's parent id, a segment's
position) and leaves out only the envelope and the parts other streams carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tap_conversations import schemas

CONTRACT = yaml.safe_load(
    (Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml").read_text(encoding="utf-8")
)
#: What no stream carries: the API's envelope, and the detail's parts of other streams.
ENVELOPE = {"_meta"}


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """`node` with `$ref` followed and `allOf` merged."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return resolve(CONTRACT["components"]["schemas"][name])
    if "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}}
        for part in node["allOf"]:
            merged["properties"].update(resolve(part).get("properties", {}))
        return merged
    return node


def response(path: str) -> dict[str, Any]:
    """The 200 answer's schema of GET `path`."""
    answer = CONTRACT["paths"][path]["get"]["responses"]["200"]
    return resolve(answer["content"]["application/json"]["schema"])


def component(name: str) -> dict[str, Any]:
    return resolve({"$ref": f"#/components/schemas/{name}"})


def types_of(node: dict[str, Any]) -> set[str]:
    declared = node.get("type", [])
    return {declared} if isinstance(declared, str) else set(declared)


def differences(ours: dict[str, Any], contract: dict[str, Any], where: str) -> list[str]:
    """Every way `ours` differs from the contract's schema at `where`."""
    contract = resolve(contract)
    found = []
    if types_of(ours) != types_of(contract):
        found.append(f"{where}: type {sorted(types_of(ours))} != {sorted(types_of(contract))}")
    found.extend(
        f"{where}: {key} {ours.get(key)!r} != {contract[key]!r}"
        for key in ("format", "enum")
        if key in contract and ours.get(key) != contract[key]
    )
    if "properties" in contract:
        mine, theirs = ours.get("properties", {}), contract["properties"]
        for name in sorted(set(theirs) - ENVELOPE):
            if name not in mine:
                found.append(f"{where}.{name}: missing")
            else:
                found += differences(mine[name], theirs[name], f"{where}.{name}")
        found += [
            f"{where}.{name}: not in the contract" for name in sorted(set(mine) - set(theirs))
        ]
    if "items" in contract:
        found += differences(ours.get("items", {}), contract["items"], f"{where}[]")
    return found


def record_schema(
    contract: dict[str, Any],
    *,
    drop: frozenset[str] = frozenset(),
    add: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A record's contract: the API object's, less `drop`, plus what the tap adds."""
    properties = {k: v for k, v in contract["properties"].items() if k not in drop}
    return {"type": "object", "properties": {**properties, **(add or {})}}


UUID = {"type": "string", "format": "uuid"}
SEGMENTS = component("Transcript")["properties"]["segments"]

STREAMS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "account": (schemas.ACCOUNT, component("Account")),
    "users": (schemas.USER, component("User")),
    "teams": (schemas.TEAM, component("Team")),
    "departments": (schemas.DEPARTMENT, component("Department")),
    "conversations": (
        schemas.CONVERSATION,
        # The transcript and the insights are streams of their own.
        record_schema(component("ConversationDetail"), drop=frozenset({"transcript", "insights"})),
    ),
    "transcripts": (
        schemas.TRANSCRIPT,
        record_schema({"properties": {}}, add={"conversation_id": UUID, "segments": SEGMENTS}),
    ),
    "transcript_segments": (
        schemas.TRANSCRIPT_SEGMENT,
        record_schema(
            SEGMENTS["items"],
            add={"conversation_id": UUID, "segment_index": {"type": "integer"}},
        ),
    ),
    "insights": (
        schemas.INSIGHT,
        record_schema(component("Insight"), add={"conversation_id": UUID}),
    ),
    "summaries": (schemas.SUMMARY, response("/conversations/{id}/summary")),
    "recordings": (schemas.RECORDING, response("/conversations/{id}/recording")),
    "webhook_deliveries": (schemas.WEBHOOK_DELIVERY, component("WebhookDelivery")),
}


@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_the_streams_schema_is_the_contracts(stream: str) -> None:
    ours, contract = STREAMS[stream]
    assert differences(ours, contract, stream) == []


def test_every_stream_is_checked() -> None:
    from tap_conversations.tap import TapConversations  # noqa: PLC0415

    tap = TapConversations(config={"api_token": "mt_x", "api_url": "https://x.example/api/v1"})
    from_the_api = {name for name, stream in tap.streams.items() if stream.in_the_api}  # type: ignore[attr-defined]
    assert from_the_api == set(STREAMS)
    assert set(tap.streams) - from_the_api == {"sync_ledger", "removed_conversations"}


def test_a_drift_is_found() -> None:
    """The comparison itself: a changed type, a lost null, a new field are each found."""
    contract = component("User")
    drifted = {**schemas.USER, "properties": dict(schemas.USER["properties"])}
    drifted["properties"]["role"] = {"type": ["integer"]}
    drifted["properties"]["team_id"] = {"type": ["string"], "format": "uuid"}
    drifted["properties"]["nickname"] = {"type": ["string"]}
    assert differences(drifted, contract, "users") == [
        "users.role: type ['integer'] != ['string']",
        "users.team_id: type ['string'] != ['null', 'string']",
        "users.nickname: not in the contract",
    ]
