"""Workload detection: Docker containers and host GPU processes, attributed to users."""
