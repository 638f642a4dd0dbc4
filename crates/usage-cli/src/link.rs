//! Links every exporter crate compiled in (cargo features, all on by default).

pub(crate) fn link_all() {
    usage_core::link_exporters!(usage_file);
    #[cfg(feature = "kafka")]
    usage_core::link_exporters!(usage_kafka);
    #[cfg(feature = "s3")]
    usage_core::link_exporters!(usage_s3);
    #[cfg(feature = "clickhouse")]
    usage_core::link_exporters!(usage_clickhouse);
    #[cfg(feature = "http")]
    usage_core::link_exporters!(usage_http);
    #[cfg(feature = "otlp")]
    usage_core::link_exporters!(usage_otlp);
}
