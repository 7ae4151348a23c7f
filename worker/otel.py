"""The worker's OpenTelemetry pipeline: a tracer provider exporting over OTLP/HTTP.

``[otel] enabled`` makes ``SeenWorker`` build one (``OtelPipeline.from_settings``) and hand
its provider to the engine's ``JobTracing``; ``aclose()`` sends what is still buffered, within
a bound. The rest is OpenTelemetry's own configuration, read from the standard ``OTEL_*``
variables, so the worker behaves like any other instrumented service:

- the endpoint: ``otel.endpoint``, else ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
  ``OTEL_EXPORTER_OTLP_ENDPOINT``, else ``http://localhost:4318/v1/traces``; headers (an API
  key), timeouts, compression, TLS files: ``OTEL_EXPORTER_OTLP_*``;
- the resource: ``service.name = seen-worker`` and ``service.instance.id`` = the worker id,
  unless ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` say otherwise;
- batching: ``OTEL_BSP_*`` (export every 5 s or 512 spans, at most 2048 queued: a collector
  that is away costs dropped spans, never a blocked job);
- sampling: parent-based (a job with a trace follows its producer's sampled flag), and
  ``otel.sample_ratio`` of the jobs without one start a trace.

The provider also becomes the process's global one when nothing set one before, so the
spans a job's own code makes (``opentelemetry.trace.get_tracer(...)``) go the same way, under
the job's span. Imported only when tracing is on: the ``otel`` extra's modules load here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from worker.settings import OtelSettings

log = logging.getLogger("seen.worker.tracing")

SERVICE_NAME = "seen-worker"


class OtelPipeline:
    """One process's tracer provider and its OTLP/HTTP export (one owner: ``aclose()``)."""

    def __init__(self, provider: TracerProvider, endpoint: str) -> None:
        self.provider = provider
        self.endpoint = endpoint

    @classmethod
    def from_settings(cls, settings: OtelSettings, worker_id: str) -> OtelPipeline:
        """The pipeline ``settings`` describe. Nothing connects here: spans are sent by the
        batch processor's thread, a failed export is logged by OpenTelemetry and dropped."""
        defaults = Resource.create({"service.name": SERVICE_NAME, "service.instance.id": worker_id})
        resource = defaults.merge(OTELResourceDetector().detect())  # OTEL_* variables win
        provider = TracerProvider(
            resource=resource,
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
            shutdown_on_exit=False,  # aclose() ends it, bounded; never an exit that waits
        )
        exporter = OTLPSpanExporter(endpoint=settings.endpoint)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)  # the job code's own spans: see the docstring
        # what the exporter resolved from the settings, the environment or its default
        endpoint = str(getattr(exporter, "_endpoint", settings.endpoint or "OTEL_EXPORTER_OTLP_*"))
        log.info("tracing on: spans to %s", _safe(endpoint))
        return cls(provider, endpoint)

    async def aclose(self, within: float) -> None:
        """Send the buffered spans and stop, waiting at most ``within`` seconds: the export
        runs in a daemon thread, so an unreachable collector never holds up the stop."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def shut() -> None:
            try:
                self.provider.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop ended: nobody waits
                    loop.call_soon_threadsafe(_resolve, done)

        threading.Thread(target=shut, name="otel-shutdown", daemon=True).start()
        try:
            await asyncio.wait_for(asyncio.shield(done), within)
        except TimeoutError:
            log.warning("tracing: spans not sent within %.1fs of the stop are dropped", within)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _safe(url: str) -> str:
    """``url`` without credentials or query (the endpoint may come from the environment)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
