"""The SQLite photo library: schema and migrations, the one writer, scan, watch and search. No ML here."""
