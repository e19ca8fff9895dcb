"""A Python engine using govd_guards: reserve_or_raise, settle, release, require_prod_eligible.

Usage: guards_client.py STUBS_DIR HOST:PORT
Prints one JSON object with what it saw.
"""
import json
import os
import sys

sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402
import govd_guards  # noqa: E402
from governance.v1 import heimdall_pb2, heimdall_pb2_grpc, risk_pb2_grpc  # noqa: E402


def main() -> None:
    channel = grpc.insecure_channel(sys.argv[2])
    grpc.channel_ready_future(channel).result(timeout=10)
    risk = risk_pb2_grpc.RiskServiceStub(channel)
    heimdall = heimdall_pb2_grpc.HeimdallServiceStub(channel)
    out = {}

    # Reserve, act, settle with the realized loss; release when the work fails.
    r = govd_guards.reserve_or_raise(risk, "CAPITAL", "100.00", correlation_id="pyg-1",
                                     actor="py-engine")
    settled = govd_guards.settle(risk, r.reservation_id, "5.00", correlation_id="pyg-1/settle")
    out["settled_loss"] = settled.reservation.realized_loss
    r2 = govd_guards.reserve_or_raise(risk, "CAPITAL", "50.00", correlation_id="pyg-2")
    released = govd_guards.release(risk, r2.reservation_id, correlation_id="pyg-2/release",
                                   reason="work failed")
    out["released_status"] = released.reservation.status

    try:
        govd_guards.reserve_or_raise(risk, "CAPITAL", "5000.00", correlation_id="pyg-3")
        out["big"] = "allowed"
    except govd_guards.ReservationDenied as denied:
        out["big"] = denied.reason_name
        out["big_message"] = denied.message

    rec = heimdall.Recommend(heimdall_pb2.RecommendRequest(
        domain="BUYER_MATCH", confidence=0.95, recommendation_json="{}"), timeout=5)
    try:
        govd_guards.require_prod_eligible(heimdall, rec.recommendation_id, actor="py-engine")
        out["prod"] = "eligible"
    except govd_guards.ProdIneligible as denied:
        out["prod"] = denied.reason_name
        out["prod_gates"] = len(denied.gates)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
