//! Cross-crate integration tests live in `tests/tests/`. This library only
//! compiles the workspace README's example as a doctest, so it stays true.
#![doc = include_str!("../../README.md")]
