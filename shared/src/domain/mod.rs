//! The allocation domain: everything that decides *what* a CUR line item costs and *where* it goes.
//! Pure: no I/O, no AWS crate, no query engine.

pub mod allocation;
pub mod columns;
pub mod deliveries;
pub mod delivery;
pub mod dimension;
pub mod doctor;
pub mod error;
pub mod evaluate;
pub mod expr;
pub mod flavour;
pub mod label;
pub mod metric;
pub(crate) mod named;
pub mod plan;
pub mod resources;
pub mod run;
pub mod share;
pub mod snapshot;
pub mod sql;
pub mod tags;
pub mod window;

pub use allocation::{Allocation, AllocationRow, CostVector, Summary};
pub use dimension::Dimension;
pub use error::DomainError;
pub use flavour::Flavour;
pub use label::Label;
pub use metric::CostMetric;
pub use plan::{AllocationPlan, AllocationRequest};
pub use sql::TableRef;
pub use tags::{Concept, TagMapping};
pub use window::UsageWindow;

/// The value every Kubernetes dimension takes when the line item carries no tag for it.
pub const UNALLOCATED: &str = "__unallocated__";
