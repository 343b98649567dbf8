//! The node agent: a kubelet for one machine. Today: the image store (`ordinal image
//! import|ls|rm`). Running pods as isolated Linux containers is issue 4's remaining work.

pub mod image;
pub mod node;
