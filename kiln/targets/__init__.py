"""kiln.targets — filled in by the codegen work (see DESIGN.md)."""
