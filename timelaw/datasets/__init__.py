"""Published measurements read as timelaw inputs (no data ships with the package; pass the files)."""
