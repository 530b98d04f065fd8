"""Reports: one self-contained HTML file with plots of a model's drift, input quality,
predictions and performance, over `monitor` (imports no channel), and of a deployment's
models compared (`build_comparison_report`, over `evaluation.compare_deployment`). Needs
the `reports` extra (matplotlib, Jinja2)."""

from .comparison import build_comparison_report
from .from_log import log_report
from .html import build_report
from .inputs import ReportInput, WindowStart, report_input

__all__ = ["ReportInput", "WindowStart", "build_comparison_report", "build_report", "log_report",
           "report_input"]
