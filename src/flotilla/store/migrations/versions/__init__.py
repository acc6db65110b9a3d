"""One module per schema revision. Frozen once released: add a new one instead."""
