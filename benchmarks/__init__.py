"""clustrix benchmarks against their floors: run ``python -m benchmarks`` (see __main__)."""
