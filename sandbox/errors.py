"""Klarna's error answers, as the sandbox raises them: `{error_code, error_messages,
correlation_id}` with Klarna's codes and wording (docs/klarna.md §6, §7)."""
from __future__ import annotations


class ApiError(Exception):
    """An answer in Klarna's error shape: `{error_code, error_messages, correlation_id}`."""

    def __init__(self, status: int, error_code: str, messages: list[str] | str):
        super().__init__(error_code)
        self.status, self.error_code = status, error_code
        self.messages = [messages] if isinstance(messages, str) else list(messages)


def bad_value(errors: list[str]) -> ApiError:
    """400 BAD_VALUE, one `Bad value: <field>` per field, as Klarna words them."""
    return ApiError(400, "BAD_VALUE", [f"Bad value: {e}" for e in errors])


def not_found(order_id: str) -> ApiError:
    return ApiError(404, "NOT_FOUND",
                    "We did not find any order with given ID. You need to create a new order.")


def no_such_order(order_id: str, acknowledge: bool = False) -> ApiError:
    text = f"Order {order_id} cannot be found."
    return ApiError(404, "NO_SUCH_ORDER", text + (" Acknowledgement not possible." if acknowledge else ""))
