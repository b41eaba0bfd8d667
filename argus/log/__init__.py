"""The LMDB event log (DESIGN.md §3)."""

from argus.log.group_commit import GroupCommitter
from argus.log.store import AppendRequest, AppendResult, EventLog, LogInfo, LogReader, VerifyReport

__all__ = ["GroupCommitter", "AppendRequest", "AppendResult", "EventLog", "LogInfo", "LogReader", "VerifyReport"]
