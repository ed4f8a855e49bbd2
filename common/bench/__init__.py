"""`closet bench`: every stage measured against its anchor in one run."""
