"""``alseg audit``: check that every round's files of a run tell one consistent story, summarise the run,
and show where two experiments part (docs/audit.md).

No step here imports torch: model files are read with numpy (:mod:`alseg.torchfile`).
"""

from alseg.audit.files import Experiment, Finding, load_run_config, run_experiments
from alseg.audit.run import AuditReport, audit_run
from alseg.audit.summary import compare_items, markdown_report, summary_rows, text_table

__all__ = ["AuditReport", "Experiment", "Finding", "audit_run", "compare_items", "load_run_config",
           "markdown_report", "run_experiments", "summary_rows", "text_table"]
