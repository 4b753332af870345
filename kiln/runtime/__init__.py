"""kiln.runtime — filled in by the codegen work (see DESIGN.md)."""
