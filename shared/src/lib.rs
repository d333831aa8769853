//! kubecur's shared core: the allocation domain (pure), the ports it needs, and the adapters behind them.
//!
//! - [`domain`]: flavour detection, tag mapping, cost rules, SQL rendering, the result model. No I/O.
//! - [`ports`]: capability traits ([`ports::QueryEngine`]) that adapters implement.
//! - [`adapters`]: the embedded DataFusion engine (feature `local-engine`) and the synthetic CUR generator.

pub mod adapters;
pub mod domain;
pub mod ports;
