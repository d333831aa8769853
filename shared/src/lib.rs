//! kubecur's shared core: the allocation domain (pure), the ports it needs, the use case that drives
//! them, and the adapters behind them.
//!
//! - [`domain`]: flavour detection, tag mapping, cost rules, SQL rendering, the result model. No I/O.
//! - [`ports`]: capability traits ([`ports::AllocationEngine`], [`ports::Progress`]) that adapters implement.
//! - [`service`]: the allocation use case over any [`ports::AllocationEngine`].
//! - [`config`]: the functions' environment variables, typed.
//! - [`pipeline`]: the ingest, writer and reconciler use cases of the AWS pipeline, over ports.
//! - [`deployment`]: `kubecur doctor` and `kubecur setup tags` over two ports; their AWS adapter
//!   (`deployment::aws`) comes with the feature `deployment`.
//! - [`api`]: the allocation API (routes, parameters, JSON/CSV), shared by the Lambda and `kubecur serve`.
//! - [`adapters`]: the local engine (feature `native-engine`); AWS adapters (feature `aws`).
//! - `sample` (feature `sample`, part of `native-engine`): the synthetic CUR generator.

pub mod adapters;
pub mod api;
pub mod config;
pub mod domain;
pub mod ports;
pub mod service;

pub mod pipeline;

pub mod deployment;

#[cfg(feature = "sample")]
pub mod sample;
