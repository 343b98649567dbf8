//! Pure decision logic. Every planner takes snapshots (and `now` where time matters) and returns
//! actions; nothing here does I/O, reads a clock, or awaits. Controllers apply the actions.

pub mod container;
pub mod gc;
pub mod statefulset;
