"""Benchmarks of rsretrieval's own code (``rsretrieval bench <name>``): each prints ratios measured in one run."""
