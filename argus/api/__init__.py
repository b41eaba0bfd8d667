"""The gRPC API: servicers over the library, and the proto <-> domain conversions (DESIGN.md §8)."""
