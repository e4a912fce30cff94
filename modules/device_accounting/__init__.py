"""Device accounting: every job on the customers' MFPs charged to a print user and a cost center (second seed)."""
