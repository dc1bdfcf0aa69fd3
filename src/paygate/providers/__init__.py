"""Provider adapters; each imports its SDK. ``import paygate`` imports none of them."""
