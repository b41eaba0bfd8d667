"""The projection engine: runs reducers over the log, snapshots, the derived store (DESIGN.md §5)."""
