//! Adapters: implementations of the ports.
//!
//! - [`datafusion`] (feature `local-engine`): `DataFusionQueryEngine`, the embedded engine over CUR files
//!   on disk or in S3.
//! - [`native`] (feature `native-engine`): `NativeEngine`, kubecur's own local engine over the same
//!   files, without DataFusion; it runs the allocation plan directly (`ports::AllocationEngine`).
//! - [`files`] (feature `files`, with either local engine): finding CUR files locally or in S3.
//! - [`aws`] (feature `aws`): DynamoDB, Athena, Glue and S3 adapters for the Lambda functions.
//! - [`memory`]: Athena, Glue and S3 in memory, for the pipeline's tests and fault simulation.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "local-engine")]
pub mod datafusion;
#[cfg(feature = "files")]
pub mod files;
pub mod memory;
#[cfg(feature = "native-engine")]
pub mod native;
