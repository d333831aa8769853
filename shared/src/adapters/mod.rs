//! Adapters: implementations of the ports.
//!
//! - [`datafusion`] (feature `local-engine`): `DataFusionQueryEngine`, the embedded engine over CUR files
//!   on disk or in S3.

#[cfg(feature = "local-engine")]
pub mod datafusion;
