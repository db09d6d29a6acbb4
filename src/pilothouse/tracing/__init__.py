"""Tracing: OTLP ingestion, semantic-convention mapping, the span writer and queries."""
