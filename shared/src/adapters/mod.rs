//! Adapters: implementations of the ports.
//!
//! - [`native`] (feature `native-engine`): `NativeEngine`, kubecur's local engine over CUR files on disk
//!   or in S3; it runs the allocation plan directly (`ports::AllocationEngine`), no SQL.
//! - [`files`] (feature `files`, with the local engine): finding CUR files locally or in S3.
//! - [`aws`] (feature `aws`): DynamoDB, Athena, Glue and S3 adapters for the Lambda functions.
//! - [`memory`]: Athena, Glue and S3 in memory, for the pipeline's tests and fault simulation.
//! - [`spill`] (with the local engine): sorted runs of display rows in temporary files.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "files")]
pub mod files;
pub mod memory;
#[cfg(feature = "native-engine")]
pub mod native;
#[cfg(feature = "native-engine")]
pub mod spill;
