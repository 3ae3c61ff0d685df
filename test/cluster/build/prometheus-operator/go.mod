// The Prometheus Operator's CRDs (its module's example/prometheus-operator-crd/), for the chart's
// ServiceMonitor and PrometheusRule on the real apiserver; nothing of it is built.
module meshsync.test/cluster/prometheus-operator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
