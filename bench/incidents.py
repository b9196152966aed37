"""Detection quality on the randomized scenario family (issue 13): per volume band, on seeds not tuned on.

Usage: python bench/incidents.py [--seeds held-out|dev|fresh|unseen] [--per-band 6] [--bands 100-1k,1k-10k,10k-100k]
                                 [--rules RULES.yaml] [--max-volume 100000] [--verbose]
                                 [--kinds K1,K2] [--depths D1,D2]   (targeted sets: only these incident kinds/depths)
                                 [--recovery]   (each seed's world with one market's traffic 98 % down for 2 hours)

Seed ranges (fixed, so that a figure always says which it rests on):
  * dev      1000-4999: the only seeds looked at while developing and tuning the rule pack and detectors;
  * held-out 5000-8999: never looked at while developing; the figures in docs/benchmarks.md come from here
    (but the first 8 scenarios per band of 100-1k and 1k-10k were looked at in earlier passes);
  * fresh    9000-9999: added 2026-12-07 before the count-tail work of issue 13 item 4 and measured once, at
    its end, before and after; nobody looked at them before (they have been looked at once since);
  * unseen   10000-13999: added 2026-12-07 (later that day) before the group-wait / re-rooting work of issue
    13; run once with main's code at its start (result unread until its end) and once with the final code.

Each seed draws one scenario (tunewatch.simulate.scenarios: volume 100-100,000 events/min, 3-30 markets, one
incident of random kind, depth, magnitude and duration); the bench takes seeds in order until every band has
``--per-band`` scenarios, simulates each in memory and runs it through the pipeline with the rule pack, then
scores the alerts (tunewatch.evaluate.scenarios). Reported per band: recall on the right dimension (alert with
exactly the incident's dims within 5 minutes of its start), collateral alerts per incident (during the incident,
other dims), false alerts per day (outside every incident, per day of data), median time to detect.

``--recovery`` replaces each seed's incident by the shape of unseen seed 10007 (issue 13): a market (drawn as the
family draws one) loses 98 % of its traffic for 2 hours, with an hour after it, so that what its return raises
(entity series that learnt the lower level reading it as a surge) is scored: collateral within 15 minutes of the
end, false after.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from tunewatch.evaluate.backtest import fired_at
from tunewatch.evaluate.scenarios import BandScore, run_scenario
from tunewatch.simulate.scenarios import PlannedIncident, Scenario, draw_scenario

SEED_RANGES = {
    "dev": range(1000, 5000),
    "held-out": range(5000, 9000),
    "fresh": range(9000, 10000),
    "unseen": range(10000, 14000),
}
BANDS = ("100-1k", "1k-10k", "10k-100k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", choices=sorted(SEED_RANGES), default="held-out")
    parser.add_argument("--per-band", type=int, default=6)
    parser.add_argument("--bands", default=",".join(BANDS))
    parser.add_argument("--rules", default=None)
    parser.add_argument("--max-volume", type=float, default=100_000, help="skip scenarios above this volume")
    parser.add_argument("--kinds", default="", help="only scenarios of these incident kinds (comma-separated)")
    parser.add_argument("--depths", default="", help="only scenarios at these depths, e.g. global,market")
    parser.add_argument("--recovery", action="store_true", help="a market's traffic 98 %% down for 2 hours")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args()
    bands = [b for b in args.bands.split(",") if b]
    totals = {b: BandScore() for b in bands}
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for seed in SEED_RANGES[args.seeds]:
        if all(totals[b].scenarios >= args.per_band for b in bands):
            break
        sc = draw_scenario(seed)
        if args.recovery:
            sc = recovery_scenario(sc)
        full = sc.band not in totals or totals[sc.band].scenarios >= args.per_band
        if full or sc.events_per_minute > args.max_volume:
            continue
        if (args.kinds and sc.incident.kind not in args.kinds.split(",")) or (
            args.depths and sc.incident.depth not in args.depths.split(",")
        ):
            continue
        run = run_scenario(sc, args.rules)
        report, inc = run.report, run.incidents[0]
        totals[sc.band].add(run)
        res = report.incidents[0]
        detected = res.detected_by is not None
        dims = ",".join(f"{k}={v}" for k, v in inc.dims.items()) or "global"
        kinds[sc.incident.kind][0] += 1
        kinds[sc.incident.kind][1] += detected
        line = (f"seed {seed} {sc.band:>8} {sc.events_per_minute:>8,.0f}/min {sc.markets:>2} mkts "
                f"{sc.incident.kind}@{dims} x{sc.incident.magnitude:.2f} {sc.incident.duration_minutes}min: "
                f"{'ttd ' + format(res.time_to_detect_s, '.0f') + 's' if detected else 'MISSED'} "
                f"coll {len(report.collateral)} false {len(report.false_alerts)} ({run.seconds:.0f}s)")  # fmt: skip
        print(line, flush=True)
        if args.verbose:
            for a in report.collateral + report.false_alerts:
                kind = "collateral" if a in report.collateral else "false"
                print(f"    {kind}: {a.name} {a.labels} at +{(fired_at(a) - inc.start) / 60_000:.0f} min")
    chosen = "".join(f", {k}: {v}" for k, v in (("kinds", args.kinds), ("depths", args.depths)) if v)
    print(f"\nseeds: {args.seeds}, rules: {args.rules or 'default pack'}{chosen}\n")
    print("| volume (events/min) | scenarios | right dimension | collateral / incident | false / day | "
          "median time to detect |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for b in bands:
        bs = totals[b]
        ttd = bs.median_time_to_detect_s
        print(f"| {b} | {bs.scenarios} | {bs.detected} / {bs.scenarios} | {bs.collateral_per_incident:.2f} | "
              f"{bs.false_per_day:.1f} | {'-' if ttd is None else f'{ttd:.0f} s'} |")  # fmt: skip
    print("\nby kind (detected / scenarios): "
          + ", ".join(f"{k} {v[1]}/{v[0]}" for k, v in sorted(kinds.items())))  # fmt: skip
    for b in bands:
        if totals[b].missed:
            print(f"missed in {b}: {'; '.join(totals[b].missed)}")


def recovery_scenario(sc: Scenario) -> Scenario:
    """``sc``'s world with its incident replaced by a 98 % traffic drop of one market for 2 hours, and an hour after
    it (the shape of unseen seed 10007: what the market's return raises)."""
    start = sc.incident.start_minute
    plan = PlannedIncident("traffic_drop", "market", 0.98, start, 120)
    return Scenario(sc.seed, sc.events_per_minute, sc.markets, start + 120 + 60, plan)


if __name__ == "__main__":
    main()
