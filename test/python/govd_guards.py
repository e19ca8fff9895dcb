"""The seed's engine helpers for Python engines, on the stubs generated from proto/.

reserve_or_raise and require_prod_eligible raise a GovdDenied subclass carrying the deny
reason (the enum value and its name) and the sidecar's message; settle and release close a
reservation. Calls keyed by a correlation_id are retried with the same id when the sidecar was
unreachable or late (the sidecar answers a retry with its first answer). docs/engines.md shows
them in use; test/python/guards_client.py runs them against a sidecar.
"""
import time

import grpc
from governance.v1 import common_pb2, heimdall_pb2, risk_pb2

RETRY_ON = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class GovdDenied(Exception):
    """The sidecar denied an action: reason (enum value), reason_name, message."""

    def __init__(self, what, answer):
        self.reason = answer.reason
        self.reason_name = common_pb2.DenyReason.Name(answer.reason)
        self.message = answer.message
        self.policy_revision = answer.policy_revision
        super().__init__(f"{what} denied ({self.reason_name}): {answer.message}")


class ReservationDenied(GovdDenied):
    """Reserve was denied: a cap, a throttle, go-live or the kill switch."""


class ProdIneligible(GovdDenied):
    """RequireProdEligible was denied; gates holds each gate with its verdict."""

    def __init__(self, what, answer):
        super().__init__(what, answer)
        self.gates = list(answer.gates)


def _call(method, request, timeout, attempts):
    for attempt in range(1, attempts + 1):
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as err:
            if err.code() not in RETRY_ON or attempt == attempts:
                raise
            time.sleep(0.05 * 2 ** (attempt - 1))


def reserve_or_raise(risk, engine, amount, *, correlation_id, actor="", reason="",
                     timeout=2.0, attempts=3):
    """Reserves amount (a decimal string) for engine, or raises ReservationDenied."""
    answer = _call(risk.Reserve, risk_pb2.ReserveRequest(
        engine=engine, amount=amount, actor=actor, reason=reason,
        correlation_id=correlation_id), timeout, attempts)
    if not answer.allowed:
        raise ReservationDenied(f"reserve {amount} for {engine}", answer)
    return answer


def settle(risk, reservation_id, realized_loss, *, correlation_id, actor="", timeout=2.0,
           attempts=3):
    """Settles a reservation with its realized loss (a decimal string)."""
    return _call(risk.Settle, risk_pb2.SettleRequest(
        reservation_id=reservation_id, realized_loss=realized_loss, actor=actor,
        correlation_id=correlation_id), timeout, attempts)


def release(risk, reservation_id, *, correlation_id, actor="", reason="", timeout=2.0,
            attempts=3):
    """Releases a reservation without loss (the work did not happen)."""
    return _call(risk.Release, risk_pb2.ReleaseRequest(
        reservation_id=reservation_id, actor=actor, reason=reason,
        correlation_id=correlation_id), timeout, attempts)


def require_prod_eligible(heimdall, recommendation_id, *, actor="", correlation_id="",
                          timeout=2.0, attempts=3):
    """Re-checks a recommendation's gates and go-live now, or raises ProdIneligible."""
    request = heimdall_pb2.RequireProdEligibleRequest(
        recommendation_id=recommendation_id, actor=actor, correlation_id=correlation_id)
    # Without a correlation_id the call is not deduplicated: try once.
    answer = _call(heimdall.RequireProdEligible, request, timeout,
                   attempts if correlation_id else 1)
    if not answer.allowed:
        raise ProdIneligible(f"production use of recommendation {recommendation_id}", answer)
    return answer
