"""Selection reports: look at what was picked, and why, before paying for labels.

:func:`write_report` writes one self-contained HTML file (no server, no
network) with a summary of the run, a 2-D map, the coverage of the
pseudo-classes, a gallery of the picks grouped by pseudo-class (BiLAF's
boundary picks beside the cores they lie between) and a sample of the noise
the denoising removed. ``bilaf report`` is its command.
"""

from .build import as_result, build_report_data, load_selection
from .html import THUMBNAIL_MODES, render_html, write_report
from .samples import SampleSource, resolve_source

__all__ = ["write_report", "load_selection", "build_report_data", "render_html", "as_result", "resolve_source",
           "SampleSource", "THUMBNAIL_MODES"]
