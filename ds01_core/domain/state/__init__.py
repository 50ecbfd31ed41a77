"""The state store and its tables: each module owns the SQL of the tables it names."""
