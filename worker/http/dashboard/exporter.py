"""``/metrics`` of the dashboard: the fleet exporter (``worker.http.fleet``), once per scrape."""
