//! The one integration-test binary: modules per area, all against a whole server in process.

mod api;
mod bad_input;
mod daemonsets;
mod deletion;
mod deployments;
mod dns;
mod incluster;
mod jobs;
mod kubectl;
mod kubelet;
mod patch;
mod pods;
mod registry;
mod security;
mod server;
mod services;
mod statefulset;
mod volumes;
mod watch;
