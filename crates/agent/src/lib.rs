//! The node agent: a kubelet for one machine. It registers the Node, keeps images
//! (`image`), runs pods as isolated Linux containers through a runtime (`runtime`), and keeps
//! their status true (`kubelet`).

pub mod fsroot;
pub mod image;
pub mod kubelet;
pub mod node;
pub mod pidlock;
pub mod runtime;
