"""How much each modality, word and image region contributes to a jftzoo model's predictions.

`explain_dataset(model, records)` and `explain_record(model, text, image)`; see docs/explain.md.
"""

from __future__ import annotations

from jftzoo.explain.api import DatasetExplanation, RecordExplanation, explain_dataset, explain_record

__all__ = ["DatasetExplanation", "RecordExplanation", "explain_dataset", "explain_record"]
