//! kubecur's shared core: the allocation domain (pure), the ports it needs, the use case that drives
//! them, and the adapters behind them.
//!
//! - [`domain`]: flavour detection, tag mapping, cost rules, SQL rendering, the result model. No I/O.
//! - [`ports`]: capability traits ([`ports::QueryEngine`], [`ports::Progress`]) that adapters implement.
//! - [`service`]: the allocation use case over any [`ports::QueryEngine`].
//! - [`adapters`]: the embedded DataFusion engine (feature `local-engine`).
//! - `sample` (feature `local-engine`): the synthetic CUR generator.

pub mod adapters;
pub mod domain;
pub mod ports;
pub mod service;

#[cfg(feature = "local-engine")]
pub mod sample;
