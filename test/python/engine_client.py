"""An engine written in Python: the govd workflow through stubs generated from proto/.

Usage: engine_client.py STUBS_DIR HOST:PORT
Prints one JSON object with what it saw; exits non-zero when a step does not behave.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from governance.v1 import common_pb2, golive_pb2, golive_pb2_grpc  # noqa: E402
from governance.v1 import regression_pb2, regression_pb2_grpc  # noqa: E402
from governance.v1 import risk_pb2, risk_pb2_grpc  # noqa: E402


def main() -> None:
    channel = grpc.insecure_channel(sys.argv[2])
    grpc.channel_ready_future(channel).result(timeout=10)
    golive = golive_pb2_grpc.GoLiveServiceStub(channel)
    risk = risk_pb2_grpc.RiskServiceStub(channel)
    regression = regression_pb2_grpc.RegressionServiceStub(channel)
    out = {}

    # 1. May production actions run at all?
    check = golive.CheckGoLive(
        golive_pb2.CheckGoLiveRequest(execution_class=common_pb2.EXECUTION_CLASS_PROD_EXEC),
        timeout=5,
    )
    out["go_live_allowed"] = check.allowed

    # 2. Reserve before acting: money is a decimal string.
    reserve = risk.Reserve(
        risk_pb2.ReserveRequest(
            engine="WHOLESALE", amount="250.00", actor="py-engine", correlation_id="py-deal-1",
            metadata={"deal": "d-1"},
        ),
        timeout=5,
    )
    out["reserve_allowed"] = reserve.allowed
    out["exposure_left"] = reserve.engine_remaining.exposure
    # A retry with the same correlation_id books nothing twice.
    retry = risk.Reserve(
        risk_pb2.ReserveRequest(
            engine="WHOLESALE", amount="250.00", actor="py-engine", correlation_id="py-deal-1",
            metadata={"deal": "d-1"},
        ),
        timeout=5,
    )
    out["retry_same_reservation"] = retry.reservation_id == reserve.reservation_id

    # 3. A denial is an answer, not an error.
    big = risk.Reserve(
        risk_pb2.ReserveRequest(engine="WHOLESALE", amount="5000.00", correlation_id="py-deal-2"),
        timeout=5,
    )
    out["big_allowed"] = big.allowed
    out["big_reason"] = common_pb2.DenyReason.Name(big.reason)

    # 4. Settle after acting, with the realized loss.
    settled = risk.Settle(
        risk_pb2.SettleRequest(
            reservation_id=reserve.reservation_id, realized_loss="12.50",
            correlation_id="py-deal-1-settle",
        ),
        timeout=5,
    )
    out["settled_status"] = risk_pb2.ReservationStatus.Name(settled.reservation.status)

    # 5. Bad input is an error naming the field.
    try:
        risk.Reserve(
            risk_pb2.ReserveRequest(engine="WHOLESALE", amount="1e3", correlation_id="py-bad"),
            timeout=5,
        )
        out["invalid"] = "accepted"
    except grpc.RpcError as err:
        out["invalid"] = f"{err.code().name}: {err.details()}"

    # 6. Record outcomes for the regression tripwire.
    kpis = []
    for i in range(3):
        r = regression.RecordKpi(
            regression_pb2.RecordKpiRequest(
                domain="WHOLESALE", metric="contract_rate", success=i != 1, value=1.0,
                correlation_id=f"py-kpi-{i}",
            ),
            timeout=5,
        )
        kpis.append(regression_pb2.TripwireStatus.Name(r.state.status))
    out["kpi_statuses"] = kpis
    print(json.dumps(out))


if __name__ == "__main__":
    main()
