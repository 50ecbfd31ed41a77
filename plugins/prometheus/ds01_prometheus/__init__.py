"""The ``prometheus`` plugin: ds01's state as Prometheus metrics, alerts and dashboards."""
