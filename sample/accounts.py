"""Bank accounts: a class-based entity, an audit entity and a transfer in a critical section.

- `Account` is a `DurableEntity` subclass: its public methods are the operations
  `deposit`, `withdraw`, `balance` and the inherited `delete`. Compare it with the
  function-based `counter` entity in sample/counter.py.
- `audit` is a function-based entity that an account signals after each large
  withdrawal (entity to entity).
- `transfer_funds` is an orchestrator that moves an amount between two accounts
  inside `lock_entities`, so no other orchestration can touch either account
  between the balance check and the withdrawal.
- `account_operation` is an orchestrator that calls one account operation, because
  a client can only signal an entity and never hears whether the operation failed.

Importing this module starts nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from durabletask import task
from durabletask.entities import DurableEntity, EntityContext, EntityInstanceId

logger = logging.getLogger(__name__)

ACCOUNT_ENTITY = "account"
AUDIT_ENTITY = "audit"
ACCOUNT_OPERATIONS = ("deposit", "withdraw", "balance", "delete")
AUDIT_OPERATIONS = ("record", "get", "delete")
# The operations account_operation calls; `delete` is sent as a signal instead.
CALLED_OPERATIONS = ("deposit", "withdraw", "balance")

# A withdrawal of at least this amount is reported to the account's audit entity.
LARGE_WITHDRAWAL = 1000
# The audit entity keeps only the latest entries, because entity state is stored
# as one JSON document (at most 1 MB on the Durable Task Scheduler).
MAX_AUDIT_ENTRIES = 100


class AccountError(ValueError):
    """An amount, account key or operation that the accounts do not accept."""


class OverdraftError(AccountError):
    """A withdrawal larger than the balance."""


def account_id(key: str) -> EntityInstanceId:
    """Return the entity instance ID `@account@<key>`."""
    return EntityInstanceId(ACCOUNT_ENTITY, key)


def audit_id(key: str) -> EntityInstanceId:
    """Return the entity instance ID `@audit@<key>` of the audit trail for account `key`."""
    return EntityInstanceId(AUDIT_ENTITY, key)


def validate_amount(amount: Any) -> int:
    """Return the amount if it is an integer greater than 0, else raise AccountError."""
    # bool is a subclass of int in Python, but `deposit True` is a bug, not a 1.
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise AccountError(
            f"Invalid amount {amount!r} ({type(amount).__name__}): "
            "it must be a whole number such as 25."
        )
    if amount <= 0:
        raise AccountError(f"Invalid amount {amount}: it must be greater than 0.")
    return amount


def validate_account_key(key: Any) -> str:
    """Return the key if it can name an account, else raise AccountError."""
    if not isinstance(key, str) or not key or "@" in key:
        raise AccountError(
            f"Invalid account key {key!r}: it must be a non-empty string without '@', "
            "such as alice."
        )
    return key


class Account(DurableEntity):
    """A bank account whose state is its balance, a whole number that never goes below 0.

    The SDK creates a new instance for every operation, so attributes set on `self`
    are lost when the operation returns: the balance lives only in get_state/set_state.
    """

    def deposit(self, amount: object) -> int:
        """Add `amount` to the balance and return the new balance."""
        balance = self._balance() + validate_amount(amount)
        self.set_state(balance)
        logger.info("%s deposit %s -> %d", self.entity_context.entity_id, amount, balance)
        return balance

    def withdraw(self, amount: object) -> int:
        """Take `amount` from the balance and return the new balance; raise on an overdraft."""
        value = validate_amount(amount)
        entity_id = self.entity_context.entity_id
        balance = self._balance()
        if value > balance:
            # Raising discards this operation's state change and outgoing signals.
            raise OverdraftError(
                f"Withdrawal of {value} from {entity_id} rejected: the balance is {balance}. "
                "Deposit more first, or withdraw at most the balance."
            )

        balance -= value
        self.set_state(balance)
        logger.info("%s withdraw %d -> %d", entity_id, value, balance)
        if value >= LARGE_WITHDRAWAL:
            # Entity to entity: a one-way signal, sent only if this operation succeeds.
            self.signal_entity(
                audit_id(entity_id.key), "record", {"withdrawal": value, "balance": balance}
            )
        return balance

    def balance(self) -> int:
        """Return the balance; an account that never had a deposit has 0."""
        return self._balance()

    def set_state(self, state: Any) -> None:
        # NOTE: durabletask 1.12.0 runs any attribute named by an operation, including
        # inherited helpers such as set_state and schedule_new_orchestration. This guard
        # stops a signal named "set_state" from writing a balance; the others remain
        # reachable by anyone who can signal the entity.
        if self.entity_context.operation not in ACCOUNT_OPERATIONS:
            raise AccountError(
                f"Unknown operation {self.entity_context.operation!r} on "
                f"{self.entity_context.entity_id}; allowed operations: "
                f"{', '.join(ACCOUNT_OPERATIONS)}."
            )
        super().set_state(state)

    def _balance(self) -> int:
        balance: int = self.get_state(int, 0)
        return balance


def audit(ctx: EntityContext, input: Any) -> list[dict[str, Any]]:
    """Keep the latest large withdrawals of one account and return them, oldest first.

    `record` appends an entry, `get` returns the entries, and `delete` removes the
    state, which is how a function-based entity deletes itself.
    """
    entries: list[dict[str, Any]] = ctx.get_state(list, [])
    if ctx.operation == "record":
        entries = [*entries, input][-MAX_AUDIT_ENTRIES:]
        ctx.set_state(entries)
        logger.info("%s record %s", ctx.entity_id, input)
    elif ctx.operation == "delete":
        ctx.set_state(None)
        logger.info("%s delete", ctx.entity_id)
        return []
    elif ctx.operation != "get":
        raise AccountError(
            f"Unknown operation {ctx.operation!r} on {ctx.entity_id}; "
            f"allowed operations: {', '.join(AUDIT_OPERATIONS)}."
        )
    return entries


@dataclass(frozen=True)
class Transfer:
    """A request to move `amount` from account `source` to account `target`."""

    source: str
    target: str
    amount: int

    @classmethod
    def from_input(cls, value: Any) -> Transfer:
        """Build a transfer from `{"source": ..., "target": ..., "amount": ...}`, validated."""
        if not isinstance(value, dict):
            raise AccountError(
                f"Invalid transfer input {value!r}: expected "
                '{"source": "alice", "target": "bob", "amount": 25}.'
            )
        source = validate_account_key(value.get("source"))
        target = validate_account_key(value.get("target"))
        if source == target:
            raise AccountError(
                f"Invalid transfer from {account_id(source)} to itself: "
                "name two different accounts."
            )
        return cls(source, target, validate_amount(value.get("amount")))

    def to_input(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "amount": self.amount}


def transfer_funds(
    ctx: task.OrchestrationContext, request: Any
) -> Generator[task.Task[Any], Any, dict[str, Any]]:
    """Move an amount between two accounts if the source balance covers it.

    The result contains the request, whether the amount moved, and both balances after it.
    """
    transfer = Transfer.from_input(request)
    source, target = account_id(transfer.source), account_id(transfer.target)

    # The critical section: until the block ends, the scheduler delivers no operation
    # from another orchestration to either account. So the balance read below is still
    # the balance when the withdrawal runs, and no other orchestration can read the
    # accounts between the withdrawal and the deposit.
    with (yield ctx.lock_entities([source, target])):
        source_balance = yield ctx.call_entity(source, "balance")
        moved = source_balance >= transfer.amount
        if moved:
            source_balance = yield ctx.call_entity(source, "withdraw", input=transfer.amount)
            target_balance = yield ctx.call_entity(target, "deposit", input=transfer.amount)
        else:
            target_balance = yield ctx.call_entity(target, "balance")

    return {
        **transfer.to_input(),
        "moved": moved,
        "source_balance": source_balance,
        "target_balance": target_balance,
    }


def account_operation(
    ctx: task.OrchestrationContext, request: Any
) -> Generator[task.Task[Any], Any, dict[str, Any]]:
    """Call `deposit`, `withdraw` or `balance` on one account and return the outcome.

    The result is `{"balance": <new balance>}`, or `{"rejected": <reason>}` when the
    account rejected the operation, for example an overdraft.
    """
    if not isinstance(request, dict) or request.get("operation") not in CALLED_OPERATIONS:
        raise AccountError(
            f"Invalid account request {request!r}: expected "
            '{"key": "alice", "operation": "deposit", "amount": 25}.'
        )
    entity_id = account_id(validate_account_key(request.get("key")))
    try:
        balance = yield ctx.call_entity(entity_id, request["operation"], request.get("amount"))
    except task.TaskFailedError as error:
        # The SDK wraps the entity's exception; the inner failure keeps its type and message.
        inner = error.details.inner_failure
        if inner is None or not inner.error_type.endswith(_REJECTIONS):
            raise
        return {"rejected": inner.message}
    return {"balance": balance}


_REJECTIONS = (AccountError.__name__, OverdraftError.__name__)
