"""OpenTelemetry tracing. When OTEL_EXPORTER_OTLP_ENDPOINT is set (or the embedding process
installed a tracer provider of its own), Temporal's TracingInterceptor, on every client we
build, carries the trace from the gateway's request through the workflow into each
activity; spans are exported over OTLP/HTTP."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from shared.config import Settings


def tracing_active() -> bool:
    """Spans go somewhere: a real tracer provider is installed, not the API's default."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def configure_tracing(settings: Settings, component: str) -> None:
    """Export spans when an OTLP endpoint is configured; otherwise leave the global tracer
    provider as it is (a no-op, or whatever the embedding process installed)."""
    if settings.otel_exporter_otlp_endpoint is None:
        return
    resource = Resource.create(
        {"service.name": settings.otel_service_name, "service.namespace": component}
    )
    provider = TracerProvider(resource=resource)
    endpoint = f"{settings.otel_exporter_otlp_endpoint}/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
