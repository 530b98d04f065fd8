"""A realistic synthetic customer-churn data set: numbers, categories, missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd

PLANS = ["bronze", "silver", "gold", "platinum"]
CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["card", "bank-transfer", "paypal", "invoice"]
REGIONS = ["north", "south", "east", "west", "central"]
TARGET = "churned"


def churn_frame(n: int = 20_000, seed: int = 7) -> pd.DataFrame:
    """`n` customers with 12 features and the `churned` label (about a quarter churn)."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 14.0, n).round().astype("int64")
    plan = rng.choice(PLANS, n, p=[0.35, 0.3, 0.25, 0.1])
    contract = rng.choice(CONTRACTS, n, p=[0.55, 0.25, 0.2])
    base = {"bronze": 25.0, "silver": 45.0, "gold": 70.0, "platinum": 110.0}
    monthly = np.array([base[p] for p in plan]) + rng.normal(0, 6, n)
    total = monthly * np.maximum(tenure, 1) + rng.normal(0, 30, n)
    support_calls = rng.poisson(1.2, n)
    complaints = rng.poisson(0.25 + 0.15 * support_calls)
    age = rng.integers(18, 85, n)
    usage = rng.lognormal(2.5, 0.8, n)
    last_login = rng.exponential(9, n).round()
    payment = rng.choice(PAYMENTS, n)
    region = rng.choice(REGIONS, n)
    logit = (
        -1.3 - 0.045 * tenure + 0.5 * (contract == "month-to-month") - 0.6 * (contract == "two-year")
        + 0.35 * support_calls + 0.55 * complaints + 0.012 * (monthly - 50)
        + 0.04 * last_login - 0.15 * np.log1p(usage) + 0.3 * (payment == "invoice")
    )
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({
        "tenure": tenure, "plan": plan, "contract": contract,
        "monthly_charges": monthly.round(2), "total_charges": total.round(2),
        "support_calls": support_calls, "complaints": complaints, "age": age,
        "data_usage_gb": usage.round(2), "days_since_login": last_login,
        "payment_method": payment, "region": region,
        TARGET: np.where(churned, "yes", "no"),
    })
    # Real exports have holes: new customers have no total yet, some records lack a payment
    # method or a login date.
    frame.loc[rng.random(n) < 0.03, "total_charges"] = np.nan
    frame.loc[rng.random(n) < 0.02, "payment_method"] = None
    frame.loc[rng.random(n) < 0.05, "days_since_login"] = np.nan
    return frame


def dirty_batch(frame: pd.DataFrame, seed: int = 11) -> pd.DataFrame:
    """A scoring batch from `frame` with the faults of the field: typos, unseen plans, gaps."""
    rng = np.random.default_rng(seed)
    out = frame.drop(columns=[TARGET]).astype(
        {"tenure": "object", "age": "object", "monthly_charges": "object"}).copy()
    out.insert(0, "customer_id", [f"C{100000 + i}" for i in range(len(out))])
    idx = rng.choice(len(out), 12, replace=False)
    out.loc[out.index[idx[:4]], "plan"] = "diamond"          # a plan launched after training
    out.loc[out.index[idx[4:7]], "tenure"] = "unknown"        # not a number
    out.loc[out.index[idx[7:9]], "monthly_charges"] = "72,50"  # a decimal comma
    out.loc[out.index[idx[9:]], "age"] = 130                  # outside the training range
    return out
