"""`make bench`: the sale-opening rush measured against the machine's own limits."""
