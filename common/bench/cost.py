"""Dollars per 1000 images at Cloud Run list prices, from the measured stage times."""

from __future__ import annotations

import math
from typing import Any

# Cloud Run request-based billing, Tier 1 regions, list prices (USD).
PRICE_VCPU_S = 0.000024
PRICE_GIB_S = 0.0000025
PRICE_REQUEST = 0.40 / 1_000_000
BILLING_STEP_S = 0.1  # request time is billed rounded up to 100 ms

# What each function is deployed with: (vCPU, GiB).
SIZES: dict[str, tuple[float, float]] = {
    "ingest": (1, 0.5),
    "remove_background": (2, 2.0),
    "segment": (2, 2.0),
    "expand": (1, 0.5),
    "finalize": (2, 1.0),
}
# The system we replace: one blocking request of 5 min 53 s; size assumed, not documented.
SEED_SECONDS = 353.0
SEED_SIZE = (4, 16.0)


def _dollars(seconds: float, vcpu: float, gib: float) -> float:
    billed = math.ceil(seconds / BILLING_STEP_S) * BILLING_STEP_S
    return billed * (vcpu * PRICE_VCPU_S + gib * PRICE_GIB_S) + PRICE_REQUEST


def cost(stages_ms: dict[str, float]) -> dict[str, Any]:
    per_image = 0.0
    cpu_s = gib_s = 0.0
    for stage, (vcpu, gib) in SIZES.items():
        seconds = stages_ms.get(stage, 0.0) / 1000
        per_image += _dollars(seconds, vcpu, gib)
        cpu_s += seconds * vcpu
        gib_s += seconds * gib
    seed = _dollars(SEED_SECONDS, *SEED_SIZE)
    return {
        "usd_per_1000_images": round(per_image * 1000, 4),
        "cpu_s_per_image": round(cpu_s, 2),
        "gib_s_per_image": round(gib_s, 2),
        "seed_usd_per_1000_images": round(seed * 1000, 2),
        "assumptions": [
            f"Cloud Run request-based billing, tier 1: ${PRICE_VCPU_S}/vCPU-s, "
            f"${PRICE_GIB_S}/GiB-s, $0.40 per million requests, time rounded up to 100 ms",
            "sizes (vCPU, GiB): "
            + ", ".join(f"{name} {v:g}/{g:g}" for name, (v, g) in SIZES.items()),
            "billed time = each stage's measured median; idle min-instances, free tier, "
            "storage, Pub/Sub, Firestore and network not counted",
            f"old system: one request of {SEED_SECONDS:g} s (5 min 53 s) at an assumed "
            f"{SEED_SIZE[0]} vCPU / {SEED_SIZE[1]:g} GiB, generative calls not counted",
        ],
    }
