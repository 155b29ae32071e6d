//! (crate overview to be written with the crate)
