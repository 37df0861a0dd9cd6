"""Regenerates the synthetic patient-level test files in this folder (not real patients).

Run: python tests/data/generate_ipd.py   (deterministic; the CSVs are committed)
"""

import csv
from pathlib import Path

import numpy as np

ITEMS = ["pain", "emotional_acceptance", "use_of_supports", "walking_ability", "gait", "function"]
HERE = Path(__file__).parent
CELLS = [("psfs", "pathological", 9), ("sacroplasty", "pathological", 12), ("psfs", "impending", 2), ("sacroplasty", "impending", 7)]


def items_for(total_target: float, rng) -> list[int]:
    vals = np.clip(np.round(rng.normal(total_target / 6, 0.8, 6)), 0, 5).astype(int)
    return vals.tolist()


def main() -> None:
    rng = np.random.default_rng(20251)
    rows = []
    pid = 0
    for arm, frac, n in CELLS:
        for _ in range(n):
            pid += 1
            pre_mean = 8 if frac == "pathological" else 16
            gain = (15 if arm == "psfs" else 8) if frac == "pathological" else (10 if arm == "psfs" else 9)
            pre = items_for(pre_mean + rng.normal(0, 3), rng)
            post = [int(min(5, max(0, p + round(gain / 6 + rng.normal(0, 0.7))))) for p in pre]
            sec = int(rng.random() < (0.05 if arm == "psfs" else 0.35))
            fu = int(rng.integers(14, 1100))
            row = {
                "patient_id": f"S{pid:03d}", "arm": arm, "fracture": frac,
                "msts_pre": sum(pre), "msts_post": sum(post),
                **{f"{k}_pre": v for k, v in zip(ITEMS, pre, strict=True)},
                **{f"{k}_post": v for k, v in zip(ITEMS, post, strict=True)},
                "secondary_procedure": sec,
                "days_to_secondary": int(rng.integers(14, fu)) if sec else "",
                "followup_days": fu,
                "narcotic_change": rng.choice(["decrease", "stable", "increase"], p=[0.5, 0.35, 0.15]),
                "prior_radiotherapy": int(rng.random() < 0.45),
                "ablation": rng.choice(["none", "radiofrequency", "cryoablation", "microwave"], p=[0.65, 0.2, 0.1, 0.05]),
                "age": int(rng.integers(40, 85)),
                "sex": rng.choice(["male", "female"]),
                "cancer_type": rng.choice(["multiple myeloma", "renal", "liver", "breast", "lung"]),
                "date_preop": f"2020-01-{1 + pid % 27:02d}",
                "date_procedure": f"2020-02-{1 + pid % 27:02d}",
                "date_postop": f"2020-05-{1 + pid % 27:02d}",
            }
            rows.append(row)
    cols = list(rows[0])
    with open(HERE / "ipd_valid.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    # minimal valid file: required columns only
    with open(HERE / "ipd_minimal.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["patient_id", "arm", "fracture", "msts_pre", "msts_post"])
        for r in rows:
            w.writerow([r["patient_id"], r["arm"], r["fracture"], r["msts_pre"], r["msts_post"]])


if __name__ == "__main__":
    main()
