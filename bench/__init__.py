"""`make bench`: the sale-opening rush, against plain Django views and the database alone."""
