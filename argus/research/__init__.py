"""Research lab: splitters, walk-forward, bootstrap and deploy gates (DESIGN.md §7). Pure functions on numpy."""
