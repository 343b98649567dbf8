//! apiserver (being assembled: the lead keeps the full module list aside until the pieces land)

pub mod discovery;
pub mod openapi;
pub mod table;
