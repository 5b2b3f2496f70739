//! Tracing's export: with `[telemetry] otlp_endpoint` (or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`) set, spans go over OTLP/HTTP (protobuf)
//! from the SDK's batch thread, sampled parent-based: a producer's sampled
//! trace is continued, a trace started here is kept at `sampling_ratio`
//! (`OTEL_TRACES_SAMPLER_ARG`). Off otherwise: no tracer, no spans.

use std::sync::Arc;

use anyhow::Context;
use opentelemetry::global::BoxedTracer;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::settings::Config;

/// The tracer provider (flushed by [`Tracing::shutdown`]) and the tracer
/// every span comes from.
pub struct Tracing {
    provider: SdkTracerProvider,
    pub tracer: Arc<BoxedTracer>,
}

impl Tracing {
    /// `None` when no endpoint is configured.
    pub fn start(config: &Config) -> anyhow::Result<Option<Self>> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let endpoint = Some(config.telemetry.otlp_endpoint.clone())
            .filter(|e| !e.trim().is_empty())
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let Some(endpoint) = endpoint else {
            return Ok(None);
        };
        let ratio = match env("OTEL_TRACES_SAMPLER_ARG") {
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .with_context(|| {
                    format!("OTEL_TRACES_SAMPLER_ARG {v:?} must be a ratio between 0 and 1")
                })?,
            None => config.telemetry.sampling_ratio,
        };
        let service =
            env("OTEL_SERVICE_NAME").unwrap_or_else(|| config.telemetry.service_name.clone());
        let url = traces_url(&endpoint);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url.clone())
            .build()
            .with_context(|| format!("cannot export spans to {url}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(service)
                    .with_attribute(opentelemetry::KeyValue::new(
                        "service.version",
                        env!("CARGO_PKG_VERSION"),
                    ))
                    .build(),
            )
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        tracing::info!(endpoint = %url, sampling_ratio = ratio, "exporting spans over OTLP/HTTP");
        Ok(Some(Self {
            provider,
            tracer: Arc::new(opentelemetry::global::tracer("hookd")),
        }))
    }

    /// Sends what is still buffered (at shutdown).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "flushing spans at shutdown failed");
        }
    }
}

/// The traces path under an OTLP/HTTP base URL (kept when already there).
fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.ends_with("/v1/traces") {
        endpoint.to_string()
    } else {
        format!("{endpoint}/v1/traces")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            super::traces_url("http://c:4318"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            super::traces_url("http://c:4318/"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            super::traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
