"""Options intelligence: chains, spreads, IV consensus, surfaces and the Heston PoP (DESIGN.md §6)."""
