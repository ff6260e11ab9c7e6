"""Prometheus metrics under TGI's names (tgi_request_count, tgi_request_duration, tgi_queue_size,
tgi_batch_current_size...), in a registry per app so several apps can live in one process (tests).

TGI's counters carry no `_total` suffix; prometheus_client would add one to a Counter, so counters that must
keep TGI's exact name are exported as monotonic gauges. Updated by `server.engine` and `server.app`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.request_count = Gauge("tgi_request_count", "Requests received", registry=r)
        self.request_success = Gauge("tgi_request_success", "Requests that finished generating", registry=r)
        self.request_failure = Gauge("tgi_request_failure", "Requests that failed", ["err"], registry=r)
        self.request_duration = Histogram("tgi_request_duration", "End-to-end request seconds",
                                          buckets=_DURATION_BUCKETS, registry=r)
        self.validation_duration = Histogram("tgi_request_validation_duration", "Validation seconds",
                                             buckets=_DURATION_BUCKETS, registry=r)
        self.queue_duration = Histogram("tgi_request_queue_duration", "Seconds waiting in the queue",
                                        buckets=_DURATION_BUCKETS, registry=r)
        self.inference_duration = Histogram("tgi_request_inference_duration", "Seconds from prefill to last token",
                                            buckets=_DURATION_BUCKETS, registry=r)
        self.time_per_token = Histogram("tgi_request_mean_time_per_token_duration", "Mean seconds per token",
                                        buckets=_DURATION_BUCKETS, registry=r)
        self.input_length = Histogram("tgi_request_input_length", "Prompt tokens", buckets=_TOKEN_BUCKETS,
                                      registry=r)
        self.generated_tokens = Histogram("tgi_request_generated_tokens", "Generated tokens",
                                          buckets=_TOKEN_BUCKETS, registry=r)
        self.max_new_tokens = Histogram("tgi_request_max_new_tokens", "Requested max_new_tokens",
                                        buckets=_TOKEN_BUCKETS, registry=r)
        self.queue_size = Gauge("tgi_queue_size", "Requests waiting to join the batch", registry=r)
        self.batch_size = Gauge("tgi_batch_current_size", "Sequences in the running batch", registry=r)
        self.batch_count = Gauge("tgi_batch_inference_count", "Forward passes", ["method"], registry=r)
        self.batch_duration = Histogram("tgi_batch_forward_duration", "Seconds per forward pass", ["method"],
                                        buckets=_DURATION_BUCKETS, registry=r)
        self.prefix_reused = Gauge("inhouse_prefix_cache_reused_tokens", "Prompt tokens served from the prefix cache",
                                   registry=r)
        self.draft_proposed = Gauge("inhouse_draft_tokens_proposed", "Prompt-lookup draft tokens checked",
                                    registry=r)
        self.draft_accepted = Gauge("inhouse_draft_tokens_accepted", "Draft tokens the sampler agreed with",
                                    registry=r)

    def draft_tokens(self, proposed: int, accepted: int) -> None:
        self.draft_proposed.inc(proposed)
        self.draft_accepted.inc(accepted)

    def failure(self, err: str) -> None:
        self.request_failure.labels(err=err).inc()

    def success(self, inference_s: float, tokens: int) -> None:
        self.request_success.inc()
        self.inference_duration.observe(inference_s)
        self.generated_tokens.observe(tokens)
        if tokens:
            self.time_per_token.observe(inference_s / tokens)

    def batch_forward(self, method: str, seconds: float) -> None:
        self.batch_count.labels(method=method).inc()
        self.batch_duration.labels(method=method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
