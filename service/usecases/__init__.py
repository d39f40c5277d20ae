"""The things the service does, one module per face of it; each takes the wired App (bootstrap.py) and holds the
order of steps, while the algorithms live in clustering/ and the I/O behind the App's ports (ports.py, wired in bootstrap.py).

- ingest.py    a file from the inbox into the vector store and the history
- arrivals.py  arrivals placed between rebuilds; a new story noticed in the noise they leave
- rebuild.py   the full rebuild, one chain of named steps
- alerts.py    new and surging stories, recorded and told
- report.py    a run's page
- queries.py   search, story, topic, export, status
"""

from .alerts import raise_alerts, raise_alerts_safely
from .arrivals import assign_arrivals, new_story_in_noise_pool
from .common import Progress
from .ingest import (MAX_INTERNAL_ATTEMPTS, MAX_NAME_BYTES, IngestResult, Interrupted, ingest_copy, ingest_file, recover, sha256_of,
                     short_name)
from .queries import EXPORT_COLUMNS, export_csv, export_csv_file, search, status, story_detail, topic_detail
from .rebuild import RebuildResult, read_graph, rebuild, rebuild_due, restore_missing_vectors
from .report import write_cut_off_page, write_report

__all__ = ["EXPORT_COLUMNS", "MAX_INTERNAL_ATTEMPTS", "MAX_NAME_BYTES", "IngestResult", "Interrupted", "Progress", "RebuildResult",
           "assign_arrivals", "export_csv", "export_csv_file", "ingest_copy", "ingest_file",
           "new_story_in_noise_pool", "raise_alerts", "raise_alerts_safely", "read_graph", "rebuild", "rebuild_due", "recover",
           "restore_missing_vectors", "search", "short_name", "sha256_of", "status", "story_detail", "topic_detail",
           "write_cut_off_page", "write_report"]
