"""Alert: rule files, rule evaluation and the alert lifecycle (inactive → pending → firing → resolved).

Owns turning detections (and metric values) into :class:`~tunewatch.alert.model.Alert` state changes with
their explanations. Imports ``process`` (metric catalogue, dimension sets) and ``detect`` (detection frames);
the notification pipeline (``notify``) consumes its output. Modules: ``rules`` (rule files), ``engine``
(lifecycle), ``windows`` (look-back conditions: rate of change, SLO burn rate), ``explain`` (annotations),
``log`` (the one alert log: every state change in SQLite, and the latest per fingerprint). Scoring alerts against
labels lives in :mod:`tunewatch.evaluate`.
"""

from tunewatch.alert.engine import AlertEngine
from tunewatch.alert.model import Alert, fingerprint
from tunewatch.alert.rules import Rule, RuleSet, default_rules_path, load_rules

__all__ = ["Alert", "AlertEngine", "Rule", "RuleSet", "default_rules_path", "fingerprint", "load_rules"]
