"""The one MQTT topic table of a tower: names, QoS, retain flags and command verbs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# A topic level we generate from configuration or data must not contain MQTT
# wildcards, separators or NUL, or a subscriber's filter would match the wrong tower.
_LEVEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERB_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class Direction(StrEnum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"


@dataclass(frozen=True)
class TopicSpec:
    """One row of the topic table: a pattern below the tower root and how it is sent."""

    pattern: str
    qos: int
    retain: bool
    direction: Direction
    description: str


STATUS = TopicSpec(
    "status",
    1,
    True,
    Direction.PUBLISH,
    "retained tower status; the Last Will sets it to offline",
)
ALARM = TopicSpec("alarm", 1, False, Direction.PUBLISH, "towerwatch.alarm/1 state changes")
SNAPSHOT = TopicSpec(
    "alarm/{alarm_id}/snapshot",
    1,
    False,
    Direction.PUBLISH,
    "JPEG, thermal and visible side by side with the hotspot marked",
)
ALARM_STATE = TopicSpec(
    "alarm/{alarm_id}/state",
    1,
    True,
    Direction.PUBLISH,
    "retained latest towerwatch.alarm/1 of an open alarm; deleted (empty) once it ends",
)
COMMAND = TopicSpec("cmd/{verb}", 1, False, Direction.SUBSCRIBE, "remote command from the hub")
COMMAND_REPLY = TopicSpec(
    "cmd/{verb}/reply", 1, False, Direction.PUBLISH, "reply to a command: ok or a refusal reason"
)

TOPIC_TABLE: tuple[TopicSpec, ...] = (
    STATUS,
    ALARM,
    ALARM_STATE,
    SNAPSHOT,
    COMMAND,
    COMMAND_REPLY,
)

# Alarm states after which an alarm is no longer open: its retained state is deleted.
FINAL_ALARM_STATES = frozenset({"cleared", "test"})


class CommandVerb(StrEnum):
    """Commands a hub may send on `cmd/<verb>`; each has a payload schema in edge.messages."""

    RECHECK = "recheck"
    GOTO = "goto"
    TEST_ALARM = "test-alarm"
    RELAY_RESET = "relay-reset"


def check_level(value: str, what: str) -> str:
    """Return `value` if it is safe as one topic level, else raise ValueError naming `what`."""
    if not _LEVEL_RE.match(value):
        raise ValueError(
            f"{what}: {value!r} is not usable in an MQTT topic "
            "(1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit)"
        )
    return value


@dataclass(frozen=True)
class TowerTopics:
    """Concrete topics of one tower under `<prefix>/<tower_id>/`."""

    prefix: str
    tower_id: str

    def __post_init__(self) -> None:
        for level in self.prefix.split("/"):
            check_level(level, "mqtt.topic_prefix")
        check_level(self.tower_id, "tower.id")

    @property
    def root(self) -> str:
        return f"{self.prefix}/{self.tower_id}/"

    def topic(self, spec: TopicSpec, **fields: str) -> str:
        return self.root + spec.pattern.format(**fields)

    @property
    def status(self) -> str:
        return self.topic(STATUS)

    @property
    def alarm(self) -> str:
        return self.topic(ALARM)

    def snapshot(self, alarm_id: str) -> str:
        return self.topic(SNAPSHOT, alarm_id=check_level(alarm_id, "alarm_id"))

    def alarm_state(self, alarm_id: str) -> str:
        return self.topic(ALARM_STATE, alarm_id=check_level(alarm_id, "alarm_id"))

    def command(self, verb: str) -> str:
        return self.topic(COMMAND, verb=verb)

    def command_reply(self, verb: str) -> str:
        return self.topic(COMMAND_REPLY, verb=verb)

    @property
    def command_filter(self) -> str:
        """The subscription for every command verb (one level, so replies do not match)."""
        return self.topic(COMMAND, verb="+")

    def command_verb(self, topic: str) -> str | None:
        """The verb of a command topic of this tower, or None when `topic` is not one.

        A verb not in CommandVerb is still returned so it can be refused with a reply.
        """
        head = self.root + "cmd/"
        if not topic.startswith(head):
            return None
        verb = topic[len(head) :]
        if not _VERB_RE.match(verb):
            return None
        return verb
