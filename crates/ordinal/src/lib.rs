//! ordinal library
