"""The concurrency budget in the DynamoDB table (:mod:`framefarm.concurrency`).

One partition, ``PK=SLOTS``: a counter item (``SK=COUNTER``, ``in_use``) and one small item per
runner holding or wanting slots (``SK=HOLDER#<run id>``: job, held, wants, priority, since,
lease_until). Not one item listing every holder: 1,000 slots of long run ids would not fit in
DynamoDB's 400 KB, and every take would rewrite it all. A take of n slots is one transaction: the
counter's ``ADD in_use :n`` on condition ``in_use <= limit - n``, and the holder's ``ADD held :n`` (a
job with many attempts waiting asks once, not once per attempt); giving back is the reverse. A
holder whose lease ran out is reclaimed by whoever sees it first: one transaction deletes it (on
condition its lease is still out and it still holds what was read) and subtracts its slots
from the counter. Fair share is decided on a consistent read of the partition just before the write
(the counter's condition alone keeps the limit, whatever races).
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Callable
from typing import Any

from framefarm.backoff import Backoff
from framefarm.concurrency import SlotAsk, SlotHolder, grantable
from framefarm.repositories.dynamodb.items import ItemCodec
from framefarm.repositories.dynamodb.table import PK, SK, TTL_ATTRIBUTE

SLOTS_PARTITION, COUNTER, HOLDER_PREFIX = "SLOTS", "COUNTER", "HOLDER#"
KEEP_AFTER_LEASE = 86_400  # a holder item nobody reclaimed expires (TTL) a day after its lease


def _key(sort_key: str) -> dict[str, Any]:
    return {PK: {"S": SLOTS_PARTITION}, SK: {"S": sort_key}}


class SlotItems:
    """The budget's operations on the table (the repository delegates to these)."""

    def __init__(self, client: Any, table: str, codec: ItemCodec, *, sleep: Callable[[float], None],
                 backoff: Backoff, tries: int) -> None:
        self.client, self.table, self._codec = client, table, codec
        self._sleep, self._backoff, self._tries = sleep, backoff, tries

    def holders(self) -> builtins.list[SlotHolder]:
        return [_holder(item) for item in self._partition() if item[SK].startswith(HOLDER_PREFIX)]

    def take(self, ask: SlotAsk, *, count: int, limit: int, now: float) -> int:
        holders = self.holders()
        for holder in holders:
            if holder.lease_until <= now:
                self._reclaim(holder, now)
        current = next((holder for holder in holders if holder.owner == ask.owner and holder.lease_until > now), None)
        taken = grantable(ask, holders, limit, now, count)
        if not taken:
            if current is None or (current.wants, current.priority) != (ask.wants, ask.priority):
                # its place in the queue, and what it wants (asked again unchanged, nothing is written)
                self.client.update_item(TableName=self.table, Key=_key(HOLDER_PREFIX + ask.owner),
                                        **self._holder_update(ask, now, added=0))
            return 0
        try:
            self.client.transact_write_items(TransactItems=[
                {"Update": {"TableName": self.table, "Key": _key(COUNTER),
                            "UpdateExpression": "ADD #in_use :taken",
                            "ConditionExpression": "attribute_not_exists(#in_use) OR #in_use <= :room",
                            "ExpressionAttributeNames": {"#in_use": "in_use"},
                            "ExpressionAttributeValues": self._codec.encode({":taken": taken,
                                                                             ":room": limit - taken})}},
                {"Update": {"TableName": self.table, "Key": _key(HOLDER_PREFIX + ask.owner),
                            **self._holder_update(ask, now, added=taken)}},
            ])
            return taken
        except self.client.exceptions.TransactionCanceledException:
            return 0  # the budget is spent (a racing take won): the caller asks again

    def give(self, owner: str, *, wants: int) -> None:
        """Give one slot back; a transaction that conflicted with another on the counter is tried again
        (``tries`` times in all), one refused because the holder is gone is done: a holder reclaimed
        meanwhile (its lease ran out) gave its slots back already."""
        for tries in range(1, self._tries + 1):
            try:
                self._give(owner, wants)
                return
            except self.client.exceptions.TransactionCanceledException as exc:
                codes = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
                if codes[:1] == ["ConditionalCheckFailed"] or tries == self._tries:
                    return  # gone; or still held after every try: the run's leave (or lease) settles it
                self._sleep(self._backoff.delay(tries))

    def _give(self, owner: str, wants: int) -> None:
        self.client.transact_write_items(TransactItems=[
            {"Update": {"TableName": self.table, "Key": _key(HOLDER_PREFIX + owner),
                        "UpdateExpression": "ADD #held :minus SET #wants = :wants",
                        "ConditionExpression": "#held > :zero",
                        "ExpressionAttributeNames": {"#held": "held", "#wants": "wants"},
                        "ExpressionAttributeValues": self._codec.encode({":minus": -1, ":wants": wants,
                                                                         ":zero": 0})}},
            self._counter_down(1),
        ])

    def renew(self, owner: str, until: float) -> None:
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table, Key=_key(HOLDER_PREFIX + owner), UpdateExpression="SET #until = :until",
                ConditionExpression="attribute_exists(#until)", ExpressionAttributeNames={"#until": "lease_until"},
                ExpressionAttributeValues=self._codec.encode({":until": until}))

    def leave(self, owner: str) -> None:
        for _ in range(3):  # an attempt may give a slot back between the read and the delete
            found = self.client.get_item(TableName=self.table, Key=_key(HOLDER_PREFIX + owner), ConsistentRead=True)
            if "Item" not in found:
                return
            if self._drop(owner, int(self._codec.decode(found["Item"])["held"]), condition=None):
                return

    def _reclaim(self, holder: SlotHolder, now: float) -> None:
        """Give back the slots of a runner whose lease ran out (it died, or lost its store)."""
        self._drop(holder.owner, holder.held, condition=("#until <= :now", {":now": now}))

    def _drop(self, owner: str, held: int, *, condition: tuple[str, dict[str, Any]] | None) -> bool:
        """Delete a holder item that still holds ``held`` slots, and take them off the counter."""
        expression, values = condition or ("attribute_exists(#held)", {})
        delete = {"Delete": {"TableName": self.table, "Key": _key(HOLDER_PREFIX + owner),
                             "ConditionExpression": f"{expression} AND #held = :held",
                             "ExpressionAttributeNames": {"#held": "held",
                                                          **({"#until": "lease_until"} if condition else {})},
                             "ExpressionAttributeValues": self._codec.encode({**values, ":held": held})}}
        try:
            self.client.transact_write_items(TransactItems=[delete, *([self._counter_down(held)] if held else [])])
            return True
        except self.client.exceptions.TransactionCanceledException:
            return False

    def _counter_down(self, slots: int) -> dict[str, Any]:
        return {"Update": {"TableName": self.table, "Key": _key(COUNTER), "UpdateExpression": "ADD #in_use :minus",
                           "ExpressionAttributeNames": {"#in_use": "in_use"},
                           "ExpressionAttributeValues": self._codec.encode({":minus": -slots})}}

    def _holder_update(self, ask: SlotAsk, now: float, *, added: int) -> dict[str, Any]:
        names = {f"#{name}": name for name in ("held", "wants", "priority", "lease_until", "job_id", "since", "owner")}
        return {
            "UpdateExpression": "ADD #held :added SET #wants = :wants, #priority = :priority, "
                                "#lease_until = :until, #job_id = :job, #owner = :owner, "
                                "#since = if_not_exists(#since, :now), #expires = :expires",
            "ExpressionAttributeNames": {**names, "#expires": TTL_ATTRIBUTE},
            "ExpressionAttributeValues": self._codec.encode({
                ":added": added, ":wants": ask.wants, ":priority": ask.priority, ":until": ask.lease_until,
                ":job": ask.job_id, ":owner": ask.owner, ":now": now,
                ":expires": int(ask.lease_until + KEEP_AFTER_LEASE)}),
        }

    def _partition(self) -> builtins.list[dict[str, Any]]:
        request: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True,
                                   "KeyConditionExpression": "#pk = :slots", "ExpressionAttributeNames": {"#pk": PK},
                                   "ExpressionAttributeValues": {":slots": {"S": SLOTS_PARTITION}}}
        items: builtins.list[dict[str, Any]] = []
        while True:
            page = self.client.query(**request)
            items.extend(self._codec.decode(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _holder(item: dict[str, Any]) -> SlotHolder:
    return SlotHolder(owner=item["owner"], job_id=item["job_id"], held=int(item["held"]), wants=int(item["wants"]),
                      priority=float(item["priority"]), since=float(item["since"]),
                      lease_until=float(item["lease_until"]))
