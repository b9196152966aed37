"""Evaluate: how well tunewatch detects, measured against labels (not used for alerting).

Owns scoring alerts against labelled incidents (``backtest``: recall, precision, collateral and false alerts,
time to detect; ``tunewatch backtest``), the backtest plot (``plot``), scenario scoring over the randomized
scenario family (``scenarios``: simulate, run the pipeline, score, totals per volume band), and detector
evaluation on labelled series: the NAB harness (``nab``) and scorer (``nab_score``), the generalisation
protocol (``generalise``), a seeded synthetic suite (``synthetic``), peer detectors (``peers``) and the
detectors by name (``registry``). It sits above the pipeline and imports from every stage; nothing in the
product imports it but the CLI's ``backtest`` command and the benches.
"""
