//! The controller: watch pods, nodes and owners; check each unique image
//! reference on a schedule; judge every container; report transitions as
//! Events and the current state as metrics. `scan` and `explain` use the
//! same state with lists instead of watches.

pub mod advice;
pub mod events;
pub mod fake;
pub mod leader;
pub mod oneshot;
pub mod output;
pub mod owner;
pub mod publish;
pub mod reconcile;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod secrets;
pub mod store;
pub mod verify;
pub mod wire;
