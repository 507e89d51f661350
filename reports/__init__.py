"""Program-manager reports: the K-Cloud evidence report and the allocation report, built from the
deployment ledger and the rollups in PostgreSQL, rendered as HTML, PDF, CSV or JSON, and verifiable
against the database later (`kcloud report verify`). `reports.http` is their HTTP router, which the
application mounts on the gateway.

A stage: imports only the core (`kcloud`).
"""

from reports.build import VerifyResult, build, render, verify
from reports.common import BuildContext
from reports.params import ReportError, ReportParams

__all__ = ["BuildContext", "ReportError", "ReportParams", "VerifyResult", "build", "render", "verify"]
