"""Reading request data from the platform's PostgreSQL (the `table` form of `data`)."""
