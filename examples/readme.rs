//! The README, whose code samples `cargo test` compiles as doctests, so the first code
//! a reader sees keeps building.
#![doc = include_str!("../README.md")]
