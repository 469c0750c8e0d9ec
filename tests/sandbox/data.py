# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Deterministic fake data for the sandbox API.

Everything here is derived from a seed and an *anchor* (the sandbox's start time on
its clock, the real UTC clock by default): the same seed and size give the same ids,
texts and relative dates.
"""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

UTC = timezone.utc
MEDIUMS = ("call", "video", "email", "chat", "live")
LIST_WINDOW = timedelta(days=30)
WEBHOOK_WINDOW = timedelta(days=7)
DATA_SPAN = timedelta(days=40)
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")

# Positions (0 = newest generated conversation) that get a guaranteed feature, so
# every sandbox of a reasonable size contains them inside the 30-day window.
_POS_BIG_TRANSCRIPT = 3  # > 1000 segments (only when conversations >= 50)
_POS_NO_TRANSCRIPT = (8, 20)  # processed, but no transcript at all (endpoint 404)
_POS_NO_SUMMARY = (11, 30)  # processed, summary null (endpoint 404)
_POS_EMPTY_TRANSCRIPT = 14  # transcript with zero segments
_POS_LONG_TITLE = 16
_POS_LONG_SUMMARY = 17
_POS_NO_DEPARTMENT = 9
_POS_NO_USER = 10
_TIE_PAIRS = ((5, 6), (40, 41))  # (a, b): b gets exactly a's date
_BIG_TRANSCRIPT_SEGMENTS = 1200


def iso(dt: datetime) -> str:
    """Format like the API: ``2026-02-07T09:00:00.000Z`` (UTC, milliseconds)."""
    dt = dt.astimezone(UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 timestamp (``Z`` or offset; naive = UTC).

    Raises:
        ValueError: when the value is not an ISO timestamp.
    """
    text = value
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def to_utc(value: datetime | str) -> datetime:
    """Accept a datetime (naive = UTC) or an ISO string."""
    if isinstance(value, str):
        return parse_iso(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def truncate_ms(dt: datetime) -> datetime:
    """Drop the sub-millisecond part (the API's timestamps have milliseconds)."""
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def now_ms() -> datetime:
    """Return the current real UTC time truncated to milliseconds."""
    return truncate_ms(datetime.now(UTC))


def is_uuid(value: str) -> bool:
    """Tell whether ``value`` is a canonical 8-4-4-4-12 hex UUID."""
    return bool(UUID_RE.match(value))


# --- text pools: realistic Unicode and awkward strings --------------------------------

TITLES: tuple[str | None, ...] = (
    "Discovery call — Acme",
    "Uppföljning: offert för Åre-kontoret",
    "Demo för Göteborgs Hamn AB",
    "Spotkanie w Łodzi – wdrożenie",  # noqa: RUF001 - awkward Unicode is the point
    "与李先生的续约电话",
    "Renewal 🚀 kickoff 🎉",
    "Quarterly review \"Q3\" — 'final' numbers",
    "Support: can't log in\nsecond line of the title",
    "",
    "Onboarding · Müller & Söhne GmbH",
    "Price objection <b>not</b> HTML",
    "Backslash \\ and\ttab",
    "Café crème ☕ chat",
    "Zero\u200bwidth and non\u00a0breaking spaces",
    "Ελληνικά και русский текст",
    "עברית ו-العربية (RTL)",  # noqa: RUF001 - awkward Unicode is the point
    None,
    "Weekly sync",
    "Follow-up on pricing",
    "Kundtjänstärende #4711",
)
COMPANIES: tuple[str | None, ...] = (
    "Acme",
    "Müller & Söhne GmbH",
    "Łódź Logistics Sp. z o.o.",
    "北京科技有限公司",
    'O\'Reilly "Media"',
    "",
    "Smörgås AB 🥪",
    "Société Générale d'Électricité",
    None,
    "Initech",
    "Øresund Energi A/S",
)
SENTENCES = (
    "Hello!",
    "Hej, hur mår du?",
    "Can you hear me? 🎧",
    "We need SSO — and SAML, ideally.",
    "Dziękuję bardzo, to wszystko.",
    "好的，我们下周再谈。",  # noqa: RUF001 - awkward Unicode is the point
    'She said "that\'s fine" and left.',
    "Line one\nLine two",
    "",
    "Um…",
    "The price is $1,200/month (ex. VAT).",
    "Okay 👍",
    "C:\\Users\\erik\\notes.txt",
    "Let me share my screen.",
    "Ça marche, à demain !",
    "Vi återkommer med en offert på fredag.",
    "Can we move the go-live to Q2?",
    "<script>alert('x')</script> is just text here.",
    "Tak, dokładnie tak.",
    "👍👍👍",
)
SUMMARIES: tuple[str, ...] = (
    "Customer wants a follow-up on pricing and onboarding timeline.",
    "Kunden vill ha en uppföljning om priset.\n\n- Punkt 1: offert\n- Punkt 2: avtal",
    "客户要求在下周提供报价。",
    'Quote: "We\'ll sign" — maybe next week.',
    "Emoji summary 😀😃😄 with a tab\tand a backslash \\.",
    "",
    "Klient prosi o wycenę wdrożenia w Łodzi.",
    "Support case resolved: password reset, SSO pending.",
)
PARTICIPANT_NAMES: tuple[str | None, ...] = (
    "Jane Doe",
    "Åsa Öberg",
    None,
    "李娜",
    "Zoë O'Brien",
    "",
    "Jürgen Groß",
    "Paweł Król",
)
SENTIMENTS: tuple[str | None, ...] = ("positive", "neutral", "negative", "mixed", None)
CONVERSATION_TYPES: tuple[str | None, ...] = ("sales", "support", "onboarding", "internal", None)
INSIGHT_KPIS = (
    ("sso", "SSO"),
    ("pricing", "Pricing"),
    ("next_step", "Next step"),
    ("competitor", "Competitor mentioned"),
    ("churn_risk", "Churn risk ⚠️"),
)
USERS_SEED: tuple[tuple[str, str, str, int | None], ...] = (
    # full_name, email, role, team index (None = no team)
    ("Erik Lindström", "erik.lindstrom@telco-demo.test", "owner", 0),
    ("Åsa Öberg", "asa.oberg@telco-demo.test", "admin", 0),
    ("Łukasz Wróbel", "lukasz.wrobel@telco-demo.test", "member", 1),
    ("李娜", "li.na@telco-demo.test", "member", 1),
    ("Zoë O'Brien-Smith", "zoe.obrien@telco-demo.test", "member", 2),
    ('Anna "Nan" Svensson', "anna.svensson@telco-demo.test", "member", 2),
    ("Björn 🐻 Berg", "bjorn.berg@telco-demo.test", "member", 0),
    ("Fatima Al-Sayed", "fatima.alsayed@telco-demo.test", "viewer", None),
)
TEAMS_SEED = ("Sales", "Support", "Customer Success — Nordics")
DEPARTMENTS_SEED: tuple[tuple[str, str, str | None], ...] = (
    ("B2B Sales", "b2b-sales", "Sales"),
    ("Kundtjänst", "kundtjanst", "Customer Service"),
    ("Onboarding & Training", "onboarding-training", None),
    ("Partners", "partners", "Partner Channel"),
)


@dataclass
class Conversation:
    """One stored conversation: list fields plus its full processed content."""

    id: str
    date: datetime
    title: str | None
    company: str | None
    duration: int | None
    medium: str
    sentiment: str | None
    conversation_type: str | None
    department: dict[str, Any] | None
    user: dict[str, Any] | None
    participants: list[dict[str, Any]]
    full_summary: str | None
    full_transcript: list[dict[str, Any]] | None
    full_insights: list[dict[str, Any]]
    has_recording: bool
    recording_expires_at: datetime
    processed: bool = True
    hidden: bool = False
    removed: bool = False  # deleted for good: not listed, every endpoint 404
    summary_created_at: datetime | None = None
    summary_updated_at: datetime | None = None
    list_json: bytes | None = field(default=None, repr=False)

    @property
    def sort_key(self) -> tuple[datetime, str]:
        """Listing order key (descending): date, then id."""
        return (self.date, self.id)

    def list_item(self) -> dict[str, Any]:
        """Shape of one item of ``GET /conversations``."""
        return {
            "id": self.id,
            "title": self.title,
            "company": self.company,
            "date": iso(self.date),
            "duration": self.duration,
            "medium": self.medium,
            "sentiment": self.sentiment,
            "conversation_type": self.conversation_type,
            "department": dict(self.department) if self.department is not None else None,
            "user": dict(self.user) if self.user is not None else None,
        }

    def summary_text(self) -> str | None:
        """The summary as the API shows it now (None while unprocessed)."""
        return self.full_summary if self.processed else None

    def transcript(self) -> dict[str, Any] | None:
        """``{"segments": [...]}`` or None when there is no transcript (yet)."""
        if not self.processed or self.full_transcript is None:
            return None
        return {"segments": [dict(s) for s in self.full_transcript]}

    def insights(self) -> list[dict[str, Any]]:
        """Insights as the API shows them now ([] while unprocessed)."""
        if not self.processed:
            return []
        return [dict(i) for i in self.full_insights]

    def detail(self, *, include_transcript: bool, include_insights: bool) -> dict[str, Any]:
        """Detail shape; ``transcript`` only when requested and existing."""
        item = self.list_item()
        out: dict[str, Any] = {
            k: item[k]
            for k in (
                "id",
                "title",
                "company",
                "date",
                "duration",
                "medium",
                "sentiment",
                "conversation_type",
            )
        }
        out["summary"] = self.summary_text()
        out["department"] = item["department"]
        out["user"] = item["user"]
        out["participants"] = [dict(p) for p in self.participants]
        if include_transcript:
            transcript = self.transcript()
            if transcript is not None:
                out["transcript"] = transcript
        if include_insights:
            out["insights"] = self.insights()
        return out

    def summary(self) -> dict[str, Any] | None:
        """Summary endpoint body (without _meta) or None (endpoint 404)."""
        text = self.summary_text()
        if text is None or self.summary_created_at is None:
            return None
        updated = self.summary_updated_at or self.summary_created_at
        return {
            "conversation_id": self.id,
            "summary": text,
            "created_at": iso(self.summary_created_at),
            "updated_at": iso(updated),
        }

    def recording(self) -> dict[str, Any]:
        """Recording endpoint body (without _meta)."""
        if not self.has_recording:
            return {
                "conversation_id": self.id,
                "has_recording": False,
                "url": None,
                "expires_at": None,
            }
        expires = int(self.recording_expires_at.timestamp())
        signature = hashlib.sha256(f"{self.id}:{expires}".encode()).hexdigest()[:32]
        return {
            "conversation_id": self.id,
            "has_recording": True,
            "url": (
                f"https://recordings.sandbox.invalid/{self.id}.mp3"
                f"?expires={expires}&signature={signature}"
            ),
            "expires_at": iso(self.recording_expires_at),
        }


@dataclass
class Delivery:
    """A webhook delivery record (``token_id`` is not part of the API shape)."""

    id: str
    resource_id: str
    token_id: str
    status: str
    attempts: int
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    response_status: int | None
    created_at: datetime
    event_type: str = "conversation.completed"

    def as_dict(self) -> dict[str, Any]:
        """API shape."""
        return {
            "id": self.id,
            "event_type": self.event_type,
            "resource_id": self.resource_id,
            "status": self.status,
            "attempts": self.attempts,
            "last_attempt_at": iso(self.last_attempt_at) if self.last_attempt_at else None,
            "delivered_at": iso(self.delivered_at) if self.delivered_at else None,
            "response_status": self.response_status,
            "created_at": iso(self.created_at),
        }


class DataGenerator:
    """Seeded generator of the sandbox's reference data and conversations."""

    def __init__(self, seed: int, anchor: datetime) -> None:
        """Create the generator; ``anchor`` is "now" for relative dates."""
        self.rng = random.Random(seed)
        self.anchor = anchor
        self.account = self._account()
        self.teams = self._teams()
        self.users = self._users()
        for team in self.teams:
            team["members"] = [
                {"id": u["id"], "full_name": u["full_name"], "email": u["email"]}
                for u in self.users
                if u["team_id"] == team["id"]
            ]
        self.departments = self._departments()

    def uuid(self) -> str:
        """Return a deterministic version-4 UUID string."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _account(self) -> dict[str, Any]:
        return {
            "id": self.uuid(),
            "name": "Telco Demo",
            "created_at": iso(self.anchor - timedelta(days=400, hours=3, milliseconds=452)),
            "updated_at": iso(self.anchor - timedelta(days=2, hours=5)),
            "brand_name": "Dstny",
            "brand_logo_url": None,
        }

    def _teams(self) -> list[dict[str, Any]]:
        return [
            {
                "id": self.uuid(),
                "name": name,
                "created_at": iso(self.anchor - timedelta(days=390 - 7 * i, minutes=13 * i)),
                "members": [],
            }
            for i, name in enumerate(TEAMS_SEED)
        ]

    def _users(self) -> list[dict[str, Any]]:
        users = []
        for full_name, email, role, team_index in USERS_SEED:
            team = self.teams[team_index] if team_index is not None else None
            users.append(
                {
                    "id": self.uuid(),
                    "full_name": full_name,
                    "email": email,
                    "role": role,
                    "team_id": team["id"] if team else None,
                    "team_name": team["name"] if team else None,
                }
            )
        return users

    def _departments(self) -> list[dict[str, Any]]:
        return [
            {"id": self.uuid(), "name": name, "slug": slug, "enabled": True, "display_name": disp}
            for name, slug, disp in DEPARTMENTS_SEED
        ]

    def department_ref(self, department_id: str) -> dict[str, Any]:
        """Ref shape of a department.

        Raises:
            KeyError: unknown department id.
        """
        for d in self.departments:
            if d["id"] == department_id:
                return {"id": d["id"], "name": d["name"]}
        raise KeyError(department_id)

    def user_ref(self, user_id: str) -> dict[str, Any]:
        """UserRef shape of a user.

        Raises:
            KeyError: unknown user id.
        """
        for u in self.users:
            if u["id"] == user_id:
                return {"id": u["id"], "name": u["full_name"], "email": u["email"]}
        raise KeyError(user_id)

    # --- conversations ---------------------------------------------------------------

    def initial_conversations(self, n: int) -> list[Conversation]:
        """Generate the initial store, newest first."""
        rng = self.rng
        span_ms = int(DATA_SPAN.total_seconds() * 1000)
        edge_lo = int((LIST_WINDOW - timedelta(hours=1)).total_seconds() * 1000)
        edge_hi = int((LIST_WINDOW + timedelta(hours=1)).total_seconds() * 1000)
        offsets: list[int] = []
        for i in range(n):
            if i == 0:
                # at least one conversation within a few hours of now
                offsets.append(rng.randrange(20 * 60_000, 2 * 3_600_000))
                continue
            while True:
                off = rng.randrange(5 * 60_000, span_ms)
                # keep clear of the 30-day edge so listings are stable for an hour
                if not edge_lo <= off <= edge_hi:
                    break
            offsets.append(off)
        offsets.sort()
        dates = [self.anchor - timedelta(milliseconds=off) for off in offsets]
        for a, b in _TIE_PAIRS:
            if b < n:
                dates[b] = dates[a]
        convs = [self.conversation(d, position=p, n=n) for p, d in enumerate(dates)]
        convs.sort(key=lambda c: c.sort_key, reverse=True)
        return convs

    def conversation(  # noqa: C901, PLR0912 - one place that decides every field
        self,
        date: datetime,
        *,
        position: int | None = None,
        n: int = 0,
        processed: bool = True,
        now: datetime | None = None,
    ) -> Conversation:
        """Generate one conversation at ``date``.

        ``position`` (0 = newest of the initial store) forces guaranteed features;
        ``None`` is a late conversation (always gets a summary and a transcript).
        ``now`` (default: the anchor) bounds its summary times and dates its
        recording's expiry.
        """
        now = self.anchor if now is None else now
        rng = self.rng
        conv_id = self.uuid()
        if position is not None and position < len(MEDIUMS):
            medium = MEDIUMS[position]
        else:
            medium = rng.choice(MEDIUMS)
        spoken = medium in ("call", "video", "live")
        if spoken:
            duration: int | None = rng.randrange(60, 3600)
        else:
            duration = rng.choice((None, rng.randrange(30, 900)))
        title = rng.choice(TITLES)
        summary: str | None = rng.choice(SUMMARIES)
        if position == _POS_LONG_TITLE:
            title = "A very long title: " + "lorem ipsum dolor sit åäö — " * 180
        if position == _POS_LONG_SUMMARY:
            summary = "\n".join(
                f"{i}. {rng.choice(SENTENCES)} {rng.choice(SUMMARIES)}" for i in range(400)
            )
        department: dict[str, Any] | None = self.department_ref(rng.choice(self.departments)["id"])
        user: dict[str, Any] | None = self.user_ref(rng.choice(self.users)["id"])
        if position == _POS_NO_DEPARTMENT or (position is not None and rng.random() < 0.08):
            department = None
        if position == _POS_NO_USER or (position is not None and rng.random() < 0.06):
            user = None
        participants = [
            {
                "name": rng.choice(PARTICIPANT_NAMES),
                "email": rng.choice((None, f"guest{rng.randrange(1000)}@example.com")),
                "role": rng.choice(("customer", "host", "guest", None)),
            }
            for _ in range(rng.randrange(0, 4))
        ]
        if position is not None and n >= 50 and position == _POS_BIG_TRANSCRIPT:
            n_segments = _BIG_TRANSCRIPT_SEGMENTS
        elif position == _POS_EMPTY_TRANSCRIPT:
            n_segments = 0
        else:
            n_segments = rng.randrange(1, 40)
        speakers: list[str | None] = [p["name"] for p in participants]
        speakers += [user["name"] if user else None, "Speaker 2"]
        transcript: list[dict[str, Any]] | None = self._segments(n_segments, speakers)
        if position in _POS_NO_TRANSCRIPT:
            transcript = None
        if position in _POS_NO_SUMMARY:
            summary = None
        insights = [self._insight(n_segments) for _ in range(rng.choice((0, 0, 1, 2, 3, 5)))]
        has_recording = spoken and rng.random() < 0.85
        delay = timedelta(seconds=(duration or 0) + rng.randrange(60, 900))
        created = min(date + delay, now)
        updated = created + timedelta(seconds=rng.choice((0, 0, 5, 20, 3600)))
        conv = Conversation(
            id=conv_id,
            date=date,
            title=title,
            company=rng.choice(COMPANIES),
            duration=duration,
            medium=medium,
            sentiment=rng.choice(SENTIMENTS),
            conversation_type=rng.choice(CONVERSATION_TYPES),
            department=department,
            user=user,
            participants=participants,
            full_summary=summary,
            full_transcript=transcript,
            full_insights=insights,
            has_recording=has_recording,
            recording_expires_at=now + timedelta(days=7),
            processed=processed,
            summary_created_at=created if summary is not None else None,
            summary_updated_at=min(updated, now) if summary is not None else None,
        )
        if position is None:
            # late data: always has something to fill in once processed
            if conv.full_summary is None:
                conv.full_summary = SUMMARIES[0]
            if conv.full_transcript is None:
                conv.full_transcript = self._segments(3, speakers)
        return conv

    def _segments(self, n: int, speakers: list[str | None]) -> list[dict[str, Any]]:
        rng = self.rng
        t = 0.0
        out = []
        for _ in range(n):
            length = round(rng.uniform(0.4, 12.0), 2)
            out.append(
                {
                    "speaker": rng.choice(speakers),
                    "text": rng.choice(SENTENCES),
                    "start": round(t, 2),
                    "end": round(t + length, 2),
                }
            )
            t += length + round(rng.uniform(0.0, 1.5), 2)
        return out

    def _insight(self, n_segments: int) -> dict[str, Any]:
        rng = self.rng
        kind = rng.choice(("kpi", "kpi", "topic", "action_item", "question"))
        slug, label = rng.choice(INSIGHT_KPIS) if kind == "kpi" else (None, None)
        start = rng.choice((None, float(rng.randrange(0, 3000))))
        return {
            "id": self.uuid(),
            "insight_type": kind,
            "insight_text": rng.choice((*SENTENCES[:6], None)),
            "kpi_slug": slug,
            "kpi_label": label,
            "impact": rng.choice(("high", "medium", "low", None)),
            "start_time_seconds": start,
            "end_time_seconds": start + rng.randrange(5, 120) if start is not None else None,
            "message_index": rng.randrange(0, n_segments) if n_segments and start else None,
        }

    def initial_deliveries(self, convs: list[Conversation], token_id: str) -> list[Delivery]:
        """Webhook deliveries for conversations completed in the last 7 days."""
        rng = self.rng
        out: list[Delivery] = []
        recent = [
            c
            for c in convs
            if (c.summary_created_at or c.date) >= self.anchor - WEBHOOK_WINDOW + timedelta(hours=1)
        ]
        for i, c in enumerate(recent):
            created = c.summary_created_at or min(
                c.date + timedelta(seconds=(c.duration or 0) + 120), self.anchor
            )
            if i == 1:
                status = "failed"
            elif i == 3:  # a fixed position: pending
                status = "pending"
            else:
                status = rng.choices(("delivered", "failed", "pending"), (90, 7, 3))[0]
            if status == "delivered":
                attempts, code = rng.choice((1, 1, 1, 2)), 200
                last = created + timedelta(seconds=rng.randrange(1, 30))
                delivered: datetime | None = last
            elif status == "failed":
                attempts, code = 3, rng.choice((500, 502, 404, 410))
                last = created + timedelta(minutes=rng.randrange(10, 120))
                delivered = None
            else:
                attempts, code, delivered = 0, None, None
                last = None
            out.append(
                Delivery(
                    id=self.uuid(),
                    resource_id=c.id,
                    token_id=token_id,
                    status=status,
                    attempts=attempts,
                    last_attempt_at=min(last, self.anchor) if last else None,
                    delivered_at=min(delivered, self.anchor) if delivered else None,
                    response_status=code if status != "pending" else None,
                    created_at=created,
                )
            )
        return out
