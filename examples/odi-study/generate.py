"""Writes the synthetic example study in this folder: card.toml's patients (patients.csv) and their summaries
(summary.csv, rounded as a paper would print them). Deterministic; not real patients.

Run: .venv/bin/python examples/odi-study/generate.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
ITEMS = ["pain_intensity", "personal_care", "lifting", "walking", "sitting", "standing", "sleeping", "sex_life", "social_life",
         "travelling"]
LEVELS = ["myeloma", "breast", "lung"]
SIZES = {("screws", "myeloma"): 9, ("cement", "myeloma"): 10, ("screws", "breast"): 8, ("cement", "breast"): 9,
         ("screws", "lung"): 7, ("cement", "lung"): 8}


def patients(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows, k = [], 0
    for (arm, hist), n in SIZES.items():
        for _ in range(n):
            k += 1
            pre = rng.binomial(5, rng.uniform(0.4, 0.8), size=10)
            p_post = np.clip(0.55 - (0.15 if arm == "screws" else 0.05) - 0.05 * LEVELS.index(hist) + 0.25 * (pre.mean() / 5 - 0.6), 0.02, 0.98)
            post = rng.binomial(5, p_post, size=10)
            row = {"Patient": f"P{k:03d}", "Group": arm, "Histology": hist, "ODI_baseline": int(pre.sum()), "ODI_6m": int(post.sum())}
            row.update({f"{it}_pre": int(v) for it, v in zip(ITEMS, pre, strict=True)})
            row.update({f"{it}_post": int(v) for it, v in zip(ITEMS, post, strict=True)})
            row["Revised"] = int(rng.random() < (0.1 if arm == "screws" else 0.35))
            rows.append(row)
    return pd.DataFrame(rows)


def summary_csv(df: pd.DataFrame) -> str:
    lines = ["# format: bayes-sacral-summary/1", "# study: odi-example",
             "id,quantity,arm,histology,time,category,statistic,value,unit,n,source,label"]
    for (arm, hist), g in df.groupby(["Group", "Histology"]):
        n, tag = len(g), f"{arm}.{hist}"
        lines.append(f"n.{tag},patients,{arm},{hist},,,count,{n},patients,,Table 1,n")
        for t, col in (("pre", "ODI_baseline"), ("post", "ODI_6m")):
            lines.append(f"odi.{tag}.{t},odi_total,{arm},{hist},{t},,mean,{g[col].mean():.1f},points,{n},Table 2,mean")
            for it in ITEMS:
                lines.append(f"{it}.{tag}.{t},odi_{it},{arm},{hist},{t},,mean,{g[f'{it}_{t}'].mean():.1f},points,{n},Table 2,mean")
        ch = g["ODI_6m"] - g["ODI_baseline"]
        lines.append(f"chg.{tag}.mean,odi_total,{arm},{hist},change,,mean,{ch.mean():.1f},points,{n},Table 3,change")
        lines.append(f"chg.{tag}.sd,odi_total,{arm},{hist},change,,sd,{ch.std(ddof=1):.1f},points,{n},Table 3,change")
        lines.append(f"rev.{tag},revision,{arm},{hist},,,count,{int(g['Revised'].sum())},patients,{n},Results,revisions")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    df = patients()
    df.to_csv(HERE / "patients.csv", index=False, lineterminator="\n")
    (HERE / "summary.csv").write_text(summary_csv(df))
